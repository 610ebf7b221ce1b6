/* bench_untrapped.c - programs that never call vrange, timed by themselves
 * (so start-up is excluded) bare and under vrange-run by benchmarks/run.py.
 *
 *   syscalls N   N getppid() and N 64-byte reads of /dev/zero: "ms=.."
 *   compute N    N rounds of a xorshift chain, no syscall: "ms=.. x=.."
 *   forkexec N   N times fork, exec /bin/true in the child, wait for it: "ms=.."
 * Times from CLOCK_MONOTONIC.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "syscalls")) {
        char buf[64];
        int fd = open("/dev/zero", O_RDONLY);
        if (fd < 0)
            return 3;
        double t = now_ms();
        for (long i = 0; i < n; i++) {
            getppid();
            if (read(fd, buf, sizeof buf) != sizeof buf)
                return 4;
        }
        printf("ms=%.3f\n", now_ms() - t);
    } else if (!strcmp(argv[1], "compute")) {
        uint64_t x = 88172645463325252ull;
        double t = now_ms();
        for (long i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        printf("ms=%.3f x=%llu\n", now_ms() - t, (unsigned long long)(x % 1000));
    } else if (!strcmp(argv[1], "forkexec")) {
        double t = now_ms();
        for (long i = 0; i < n; i++) {
            pid_t child = fork();
            if (child < 0)
                return 3;
            if (child == 0) {
                execl("/bin/true", "true", (char *)NULL);
                _exit(127);
            }
            int status;
            if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
                return 4;
        }
        printf("ms=%.3f\n", now_ms() - t);
    } else {
        return 2;
    }
    return 0;
}
