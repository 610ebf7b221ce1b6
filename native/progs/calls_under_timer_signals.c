/* calls_under_timer_signals.c - vrange calls never fail with EINTR.
 *
 * A timer sends SIGALRM every 100 us to a handler installed WITHOUT
 * SA_RESTART while this process marks and unmarks a range N times (and a
 * second thread does the same, so signals also land between the calls of
 * two threads).  A kernel vrange() never sleeps, so it never fails with
 * EINTR; neither may the emulated one.
 * Prints "calls=C eintr=E other=O signals=S"; exit 0 iff E and O are 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "vrange.h"

#define N 20000
#define PAGES 4

static volatile sig_atomic_t signals;
static long calls[2], eintr[2], other[2];

static void on_alarm(int sig) { (void)sig; signals++; }

static void *marker(void *arg)
{
    long me = (long)arg;
    char *p = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 1, PAGES * 4096);
    for (int i = 0; i < N; i++) {
        int purged = 0;
        int r = i % 2 ? vrange_mark_nonvolatile(p, PAGES * 4096, &purged)
                      : vrange_mark_volatile(p, PAGES * 4096);
        calls[me]++;
        if (r < 0 && errno == EINTR)
            eintr[me]++;
        else if (r < 0)
            other[me]++;
    }
    return NULL;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;          /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &every, NULL);
    pthread_t t;
    pthread_create(&t, NULL, marker, (void *)1L);
    marker(0);
    pthread_join(t, NULL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("calls=%ld eintr=%ld other=%ld signals=%d\n", calls[0] + calls[1],
           eintr[0] + eintr[1], other[0] + other[1], (int)signals);
    return eintr[0] + eintr[1] + other[0] + other[1] ? 1 : 0;
}
