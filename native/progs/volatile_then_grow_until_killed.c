/* volatile_then_grow_until_killed.c - outgrow a memory limit slowly, after a gate.
 *
 * A child, the grower, fills VOL_MB MiB and marks them volatile, then grows
 * 1 MiB at a time (every 5 ms) to GATE_MB MiB, prints "gate GATE_MB" and
 * waits for a line on stdin; then it grows on, 1 MiB every 10 ms, up to
 * MAX_MB ("grew to MAX_MB MiB", exit 0).  Every MiB is filled and read
 * back, so the compiler keeps it.  The parent prints "grower PID", waits
 * for it and prints "grower killed by signal S" or "grower exited E".
 *
 * Under `vrange-run --memory-limit SIZE` the volatile MiBs are purged once
 * the growth passes the high mark; past that only the kernel's limit (the
 * OOM killer) stops the grower.  The gate lets a test act (kill vrange-run)
 * at a known point, under pressure but before the limit is reached.
 * Usage: volatile_then_grow_until_killed VOL_MB GATE_MB MAX_MB
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vrange.h"

#define MIB (1ul << 20)

static unsigned long sum;   /* what was read back: printed, so nothing is optimised away */

static void grow_one(unsigned mib, long pause_ns)
{
    unsigned char *m = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (m == MAP_FAILED)
        _exit(3);
    memset(m, (int)(mib & 0xff) | 1, MIB);
    for (unsigned long i = 0; i < MIB; i += 4096)
        sum += m[i];
    printf("grown %u MiB\n", mib);
    fflush(stdout);
    struct timespec ts = {0, pause_ns};
    nanosleep(&ts, NULL);
}

static int grower(unsigned vol_mb, unsigned gate_mb, unsigned max_mb)
{
    char *vol = mmap(NULL, vol_mb * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (vol == MAP_FAILED)
        return 3;
    memset(vol, 'v', vol_mb * MIB);
    if (vrange((unsigned long)vol, vol_mb * MIB, VRANGE_VOLATILE, 0, NULL) < 0)
        perror("vrange");
    printf("volatile %u MiB\n", vol_mb);
    fflush(stdout);
    unsigned mib = 0;
    while (mib < gate_mb)
        grow_one(++mib, 5000000);
    printf("gate %u\n", mib);
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 4;
    while (mib < max_mb)
        grow_one(++mib, 10000000);
    printf("grew to %u MiB (sum %lu)\n", mib, sum);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s VOL_MB GATE_MB MAX_MB\n", argv[0]);
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0)
        _exit(grower(atoi(argv[1]), atoi(argv[2]), atoi(argv[3])));
    printf("grower %d\n", (int)pid);
    fflush(stdout);
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return 1;
    if (WIFSIGNALED(status))
        printf("grower killed by signal %d\n", WTERMSIG(status));
    else
        printf("grower exited %d\n", WEXITSTATUS(status));
    return 0;
}
