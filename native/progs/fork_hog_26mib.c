/* fork_hog_26mib.c - the scenario from the vrange review, with fork.
 *
 * The parent fills 26 MiB (MiB i holds byte 'a'+i), marks every other MiB
 * volatile and forks.  The child (sharing all 26 MiB copy-on-write, the
 * volatile ranges inherited) turns into a memory hog: it allocates 1 MiB at
 * a time, without end.  Run under `vrange-run --memory-limit`: the shared
 * volatile MiBs are discarded from both, then, with nothing volatile left,
 * the limit must hit the hog, not the parent.  The parent then re-pins
 * every MiB and prints "mib I purged=P data=ok|zero|bad" and
 * "child killed by signal S".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vrange.h"

#define MIB (1u << 20)
#define N 26

int main(void)
{
    char *a = mmap(NULL, N * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < N; i++)
        memset(a + (size_t)i * MIB, 'a' + i, MIB);
    for (int i = 0; i < N; i += 2)
        vrange((unsigned long)(a + (size_t)i * MIB), MIB, VRANGE_VOLATILE, 0, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) {   /* the hog */
            char *m = malloc(MIB);
            if (!m)
                _exit(9);
            memset(m, 1, MIB);
        }
    }
    int status;
    waitpid(pid, &status, 0);
    for (int i = 0; i < N; i++) {
        int purged = -1;
        char *m = a + (size_t)i * MIB;
        vrange((unsigned long)m, MIB, VRANGE_NONVOLATILE, 0, &purged);
        size_t ok = 0, zero = 0;
        for (size_t k = 0; k < MIB; k++) {
            ok += m[k] == 'a' + i;
            zero += m[k] == 0;
        }
        printf("mib %d purged=%d data=%s\n", i, purged,
               ok == MIB ? "ok" : zero == MIB ? "zero" : "bad");
    }
    printf("child killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return 0;
}
