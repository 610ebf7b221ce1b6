/* bench_fanout.c - many traced processes alive at once, for the supervisor's
 * memory per process (benchmarks/run.py reads vrange-run's VmRSS meanwhile).
 *
 *   bench_fanout N
 *
 * Forks N children.  Each marks one 64 KiB range volatile, reports to the
 * parent, and then waits on stdin until end of file.  Once all N have
 * reported, the parent prints "ready N" and waits for them.  Exit 0 only if
 * every child's vrange call succeeded and every child exited 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vrange.h"

#define LEN (64 << 10)

static void child(int ready)
{
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char ok = p != MAP_FAILED && vrange_mark_volatile(p, LEN) == 0 ? 'y' : 'n';
    if (write(ready, &ok, 1) != 1)
        _exit(3);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;   /* until the benchmark closes our stdin */
    _exit(ok == 'y' ? 0 : 1);
}

int main(int argc, char **argv)
{
    int n = argc == 2 ? atoi(argv[1]) : 0, ready[2];
    if (n <= 0 || pipe(ready))
        return 2;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 3;
        if (pid == 0) {
            close(ready[0]);
            child(ready[1]);
        }
    }
    close(ready[1]);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char ok;
        if (read(ready[0], &ok, 1) != 1)
            return 4;
        failed += ok != 'y';
    }
    printf("ready %d\n", n);
    fflush(stdout);
    int status;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status);
    return failed ? 1 : 0;
}
