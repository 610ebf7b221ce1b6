/* purge_amid_signals_and_exit.c - purges while signals fly or the program dies.
 *
 *   signals   a 1 ms interval timer (SIGALRM, counted by a handler) runs
 *             while 10 purges of 256 MiB happen; each round re-pins, checks
 *             the purged answer and refills.  Prints "rounds=10 purged=10
 *             alarms=A"; every signal held back during an injected syscall
 *             must still arrive (A > 0) and nothing may crash.
 *   exit      a second thread calls _exit(3) ~30 ms into a purge of 1 GiB:
 *             the program must end with status 3, whatever the purge was
 *             doing when it died.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

static volatile long alarms;

static void on_alarm(int sig) { (void)sig; alarms++; }

static void *exit_soon(void *arg)
{
    (void)arg;
    usleep(30000);
    _exit(3);
}

int main(int argc, char **argv)
{
    int dying = argc > 1 && !strcmp(argv[1], "exit");
    size_t len = (size_t)(dying ? 1024 : 256) << 20;
    char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dying) {
        memset(a, 1, len);
        vrange((unsigned long)a, len, VRANGE_VOLATILE, 0, NULL);
        pthread_t th;
        pthread_create(&th, NULL, exit_soon, NULL);
        for (;;) {   /* purge after purge until the other thread ends us */
            request_purge();
            int purged;
            vrange((unsigned long)a, len, VRANGE_NONVOLATILE, 0, &purged);
            memset(a, 1, len);
            vrange((unsigned long)a, len, VRANGE_VOLATILE, 0, NULL);
        }
    }
    signal(SIGALRM, on_alarm);
    struct itimerval it = { { 0, 1000 }, { 0, 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    int rounds = 0, purged_rounds = 0;
    for (; rounds < 10; rounds++) {
        memset(a, 1, len);
        vrange((unsigned long)a, len, VRANGE_VOLATILE, 0, NULL);
        request_purge();
        int purged = 0;
        while (vrange((unsigned long)a, len, VRANGE_NONVOLATILE, 0, &purged) < 0)
            ;   /* EINTR from the timer: ask again */
        purged_rounds += purged;
        if (a[len - 1] != 0 && purged)
            return 1;   /* reported purged, but the data is still there */
    }
    printf("rounds=%d purged=%d alarms=%s\n", rounds, purged_rounds, alarms > 0 ? "some" : "none");
    return 0;
}
