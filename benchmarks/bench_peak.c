/* bench_peak.c - run a program, then report the peak usage of the memory
 * cgroup we are in (run by benchmarks/run.py under vrange-run
 * --memory-limit, so that is the group vrange-run made for the program).
 *
 *   bench_peak ROOT VERSION PROGRAM [ARGS...]
 *
 * ROOT is where the cgroup hierarchy (v1 memory controller or v2) of VERSION
 * is mounted.  Runs PROGRAM (its output passes through), waits for it, then,
 * still inside the group, reads the kernel's high-water mark of the group's
 * usage (v1 memory.max_usage_in_bytes, v2 memory.peak) and prints
 * "max_usage=BYTES status=S" (S: the program's exit status, 128+N if killed
 * by signal N, e.g. by the OOM killer).  Exits with S.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int v2 = atoi(argv[2]) == 2;
    pid_t pid = fork();
    if (pid < 0)
        return 3;
    if (pid == 0) {
        execvp(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return 3;
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char line[512], path[1024] = "";
    FILE *cg = fopen("/proc/self/cgroup", "r");
    while (cg && fgets(line, sizeof line, cg)) {
        line[strcspn(line, "\n")] = 0;
        if ((v2 && !strncmp(line, "0::", 3)) || (!v2 && strstr(line, ":memory:")))
            snprintf(path, sizeof path, "%s%s/%s", argv[1], strrchr(line, ':') + 1,
                     v2 ? "memory.peak" : "memory.max_usage_in_bytes");
    }
    long usage = -1;
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%ld", &usage) != 1) {
        fprintf(stderr, "bench_peak: cannot read %s\n", path);
        return 4;
    }
    fclose(f);
    fflush(stdout);
    printf("max_usage=%ld status=%d\n", usage, status);
    return status;
}
