/* purge_unstoppable_leader.c - purges must find a thread that can stop.
 *
 *   vfork         the parent marks A volatile and vforks; the child (sharing
 *                 the parent's memory, the parent blocked in the kernel) asks
 *                 for a purge and re-pins A, then _exits.
 *   pthread-exit  the main thread marks A volatile, starts a worker and calls
 *                 pthread_exit (the leader becomes a zombie); the worker asks
 *                 for a purge and re-pins A.
 * Both print "repin ret=R purged=P zero=Z" (Z = zero bytes in A) and exit 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define LEN (64 * 4096)
static char *a;

static void purge_and_repin(void)
{
    request_purge();
    int purged = -1;
    ssize_t r = vrange((unsigned long)a, LEN, VRANGE_NONVOLATILE, 0, &purged);
    size_t zero = 0;
    for (size_t i = 0; i < LEN; i++)
        zero += a[i] == 0;
    char line[96];
    int n = snprintf(line, sizeof line, "repin ret=%zd purged=%d zero=%zu\n", r, purged, zero);
    (void)!write(1, line, (size_t)n);   /* no stdio: the vfork child shares it */
}

static void *worker(void *arg)
{
    (void)arg;
    usleep(100000);   /* let the leader reach pthread_exit */
    purge_and_repin();
    exit(0);
}

int main(int argc, char **argv)
{
    a = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 'a', LEN);
    vrange((unsigned long)a, LEN, VRANGE_VOLATILE, 0, NULL);
    if (argc > 1 && !strcmp(argv[1], "vfork")) {
        pid_t pid = vfork();
        if (pid == 0) {
            purge_and_repin();
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    pthread_exit(NULL);
}
