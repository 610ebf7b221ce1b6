/* exec_clears_ranges.c - volatility does not survive execve(2).
 *
 * First image: maps 64 pages, fills them, marks them volatile and execs
 * itself with the address.  Second image: maps fresh memory at that same
 * address (MAP_FIXED_NOREPLACE), fills it, asks for a purge and re-pins.
 * If the old ranges had survived exec, the new data would be discarded.
 * Prints "after exec purged=P intact=I" (I = intact pages of 64).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define LEN (64 * 4096)

int main(int argc, char **argv)
{
    if (argc == 1) {
        char *a = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memset(a, 'o', LEN);
        vrange((unsigned long)a, LEN, VRANGE_VOLATILE, 0, NULL);
        char addr[32];
        snprintf(addr, sizeof addr, "%lu", (unsigned long)a);
        execl("/proc/self/exe", argv[0], addr, (char *)NULL);
        return 127;
    }
    char *want = (char *)strtoul(argv[1], NULL, 10);
    char *a = mmap(want, LEN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (a != want)
        return 3;   /* the address is taken: nothing to show */
    memset(a, 'n', LEN);
    request_purge();
    int purged = -1;
    vrange((unsigned long)a, LEN, VRANGE_NONVOLATILE, 0, &purged);
    int intact = 0;
    for (int p = 0; p < 64; p++)
        intact += a[p * 4096] == 'n' && a[p * 4096 + 4095] == 'n';
    printf("after exec purged=%d intact=%d\n", purged, intact);
    return 0;
}
