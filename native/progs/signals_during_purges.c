/* signals_during_purges.c - queued signals keep their payload, origin and
 * order while purges are injected into the thread they are sent to.
 *
 * A child sends SIGRTMIN with sigqueue() values 0..N-1 to this process while
 * it asks vrange-run, again and again, to purge a filled 32 MiB volatile
 * region (each purge is madvise run in this very thread).  The handler checks
 * each signal's si_code (SI_QUEUE), sender and value (the next in order).
 * Prints "rt received=R in_order=O si_queue=Q sender=S of N"; exit 0 iff all
 * four equal N.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define N 2000
#define SIZE (32UL << 20)

static volatile sig_atomic_t received, in_order, si_queue, from_child;
static pid_t child;

static void on_rt(int sig, siginfo_t *info, void *ctx)
{
    (void)sig; (void)ctx;
    in_order += info->si_value.sival_int == received;
    si_queue += info->si_code == SI_QUEUE;
    from_child += info->si_pid == child;
    received++;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN, &sa, NULL);
    char *region = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int go[2];
    if (region == MAP_FAILED || pipe(go))
        return 2;
    pid_t parent = getpid();
    child = fork();
    if (child == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        for (int i = 0; i < N; i++) {
            union sigval v = { .sival_int = i };
            while (sigqueue(parent, SIGRTMIN, v))
                usleep(100);   /* EAGAIN: the queue is full for now */
            usleep(300);   /* spread over many purges */
        }
        _exit(0);
    }
    if (write(go[1], "x", 1) != 1)
        return 2;
    int status, purged, done = 0;
    while (!done) {
        memset(region, 7, SIZE);
        vrange((unsigned long)region, SIZE, VRANGE_VOLATILE, 0, &purged);
        request_purge();
        vrange((unsigned long)region, 4096, VRANGE_NONVOLATILE, 0, &purged);   /* barrier */
        vrange((unsigned long)region, SIZE, VRANGE_NONVOLATILE, 0, &purged);
        done = waitpid(child, &status, WNOHANG) == child;
    }
    for (int i = 0; i < 100 && received < N; i++)
        usleep(1000);   /* what is still queued is delivered on the way back */
    printf("rt received=%d in_order=%d si_queue=%d sender=%d of %d\n",
           (int)received, (int)in_order, (int)si_queue, (int)from_child, N);
    return received == N && in_order == N && si_queue == N && from_child == N ? 0 : 1;
}
