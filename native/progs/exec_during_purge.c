/* exec_during_purge.c - a thread execs while a purge runs in the main thread.
 *
 *   exec_during_purge [ROUND]
 *
 * The main thread marks 128 MiB of filled memory volatile and sleeps; a
 * second thread asks vrange-run for a purge, waits ROUND ms (the purge is
 * being injected into the sleeping main thread by then) and execs this
 * program again with ROUND + 1, which starts over in a fresh image.  After
 * ROUNDS rounds it prints "exec rounds done" and exits 0.  vrange-run must
 * follow each exec instead of single-stepping the new image.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define SIZE (128UL << 20)
#define ROUNDS 12

static int round_no;

static void *exec_soon(void *arg)
{
    char next[16], self[4096];
    (void)arg;
    request_purge();
    usleep(1000 * (unsigned)round_no);
    snprintf(next, sizeof next, "%d", round_no + 1);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        _exit(3);
    self[n] = 0;
    execl(self, self, next, (char *)NULL);
    _exit(4);
}

int main(int argc, char **argv)
{
    round_no = argc > 1 ? atoi(argv[1]) : 0;
    if (round_no >= ROUNDS) {
        printf("exec rounds done\n");
        return 0;
    }
    char *region = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return 2;
    memset(region, 1, SIZE);
    int purged = 0;
    if (vrange((unsigned long)region, SIZE, VRANGE_VOLATILE, 0, &purged) != (long)SIZE)
        return 2;
    pthread_t t;
    pthread_create(&t, NULL, exec_soon, NULL);
    for (;;) {   /* sleep interruptibly: the purge picks this thread */
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
}
