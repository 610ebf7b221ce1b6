/* purge_in_slices.c - a purge of many runs goes in slices, and a call made
 * after the request still sees the whole purge.
 *
 * N one-page volatile ranges, each filled, with a page between each two
 * (N runs to discard).  After asking vrange-run to purge (SIGUSR1), the
 * program re-pins the LAST range first (its run comes in the last slice),
 * then every other; each re-pin must say purged=1 and the page read zeros.
 * A range marked volatile after the request, while the purge is still under
 * way, is purged by a second request.
 * Prints "slices purged=P zero=Z of N late=L"; exit 0 iff P == Z == N, L == 1.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "testlib.h"
#include "vrange.h"

#ifndef N
#define N 1000
#endif
#define PAGE 4096

int main(void)
{
    char *p = mmap(NULL, (2 * N + 2) * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    for (int i = 0; i < N; i++) {
        memset(p + 2 * i * PAGE, 7, PAGE);
        if (vrange_mark_volatile(p + 2 * i * PAGE, PAGE))
            return 3;
    }
    request_purge();
    int purged_count = 0, zero = 0, purged;
    for (int k = 0; k < N; k++) {
        int i = (N - 1 + k) % N;   /* the last first */
        char *page = p + 2 * i * PAGE;
        purged = 0;
        if (vrange_mark_nonvolatile(page, PAGE, &purged))
            return 4;
        purged_count += purged;
        zero += page[0] == 0 && page[PAGE - 1] == 0;
        if (k == 0) {   /* meanwhile: a range made volatile after the request */
            char *late = p + 2 * N * PAGE;
            memset(late, 9, PAGE);
            if (vrange_mark_volatile(late, PAGE))
                return 5;
            request_purge();
        }
    }
    char *late = p + 2 * N * PAGE;
    purged = 0;
    if (vrange_mark_nonvolatile(late, PAGE, &purged))
        return 6;
    printf("slices purged=%d zero=%d of %d late=%d\n", purged_count, zero, N,
           purged && late[0] == 0);
    return purged_count == N && zero == N && purged ? 0 : 1;
}
