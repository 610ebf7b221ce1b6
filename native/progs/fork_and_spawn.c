/* fork_and_spawn.c - a forking program keeps working under vrange-run.
 *
 * 1. Marks region A volatile and forks: the child inherits A's volatility,
 *    re-pins its copy and exits 7 (prints its answer).
 * 2. Runs a shell through system() (vfork + exec in glibc): the child's exec
 *    must not clear the parent's ranges.
 * 3. Asks for a purge while A (no longer shared) is still volatile, and
 *    re-pins it: purged must be 1 and the pages zero; region B, never
 *    volatile, must be intact.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGE 4096
#define PAGES 64

int main(void)
{
    size_t len = PAGES * PAGE;
    char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 'a', len);
    memset(b, 'b', len);
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("parent vol ret=%zd\n", vrange((unsigned long)a, len, VRANGE_VOLATILE, 0, NULL));

    pid_t pid = fork();
    if (pid == 0) {
        int purged = -1;
        ssize_t r = vrange((unsigned long)a, len, VRANGE_NONVOLATILE, 0, &purged);
        printf("child nonvol ret=%zd purged=%d\n", r, purged);
        _exit(7);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    printf("system exit=%d\n", WEXITSTATUS(system("exit 3")));

    request_purge();
    int purged = -1;
    ssize_t r = vrange((unsigned long)a, len, VRANGE_NONVOLATILE, 0, &purged);
    size_t zero = 0, b_good = 0;
    for (size_t i = 0; i < len; i++) {
        zero += a[i] == 0;
        b_good += b[i] == 'b';
    }
    printf("parent nonvol ret=%zd purged=%d zero=%zu b_good=%zu\n", r, purged, zero, b_good);
    return 0;
}
