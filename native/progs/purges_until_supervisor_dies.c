/* purges_until_supervisor_dies.c - purge after purge, until vrange-run is gone.
 *
 * Loops: fill a 16 MiB region, mark it volatile, ask for a purge (a 1-page
 * NONVOLATILE call follows as a barrier), re-pin it; meanwhile a pinned
 * region keeps a pattern.  When a vrange call fails with ENOSYS (the
 * supervisor was killed), it checks the pinned region and its signal mask
 * (every signal deliverable again), takes a signal, and prints
 * "survived rounds=N pinned_ok=1 mask_ok=1 signal_ok=1"; exit 0.  A test kills
 * vrange-run at random instants: the program must never die with it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define SIZE (16UL << 20)
#define PINNED (1UL << 20)

static volatile sig_atomic_t got_usr2;

static void on_usr2(int sig)
{
    (void)sig;
    got_usr2 = 1;
}

int main(void)
{
    char *region = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *pinned = mmap(NULL, PINNED, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED || pinned == MAP_FAILED)
        return 2;
    for (size_t i = 0; i < PINNED; i++)
        pinned[i] = (char)(i * 7 + 3);
    signal(SIGUSR2, on_usr2);
    long rounds = 0;
    for (;;) {
        int purged;
        memset(region, (int)rounds, SIZE);
        if (vrange((unsigned long)region, SIZE, VRANGE_VOLATILE, 0, &purged) < 0)
            break;
        request_purge();
        if (vrange((unsigned long)region, 4096, VRANGE_NONVOLATILE, 0, &purged) < 0)
            break;
        if (vrange((unsigned long)region, SIZE, VRANGE_NONVOLATILE, 0, &purged) < 0)
            break;
        if (++rounds == 1) {
            printf("first round done\n");   /* the test kills vrange-run from now on */
            fflush(stdout);
        }
    }
    int err = errno;
    int pinned_ok = 1;
    for (size_t i = 0; i < PINNED; i++)
        pinned_ok &= pinned[i] == (char)(i * 7 + 3);
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    int mask_ok = !sigismember(&mask, SIGUSR2) && !sigismember(&mask, SIGINT);
    raise(SIGUSR2);
    printf("survived rounds=%ld errno=%d pinned_ok=%d mask_ok=%d signal_ok=%d\n",
           rounds, err, pinned_ok, mask_ok, (int)got_usr2);
    return 0;
}
