/* fork_storm_follows_ranges.c - forks, execs and exits that vrange-run's
 * native loop follows without Python, mixed with volatile ranges.
 *
 *   between N   N times, in a new process: fork while it has no range (a
 *               routine fork), then mark its pages volatile while the
 *               child lives.  The child never marked its copy, so the
 *               shared pages must survive a purge in both: parent
 *               purged=0 and data intact, the child's data intact.
 *   storm N     N children at once; every other one first execs this
 *               program again (a routine exec).  Each marks fresh pages
 *               volatile, forks a grandchild that inherits them (answers
 *               NONVOLATILE: purged and data must agree) and one that
 *               execs /bin/true, waits for both, asks for a purge and
 *               re-pins: purged=1 and zeros.  Exit 0 if all held.
 * Prints one summary line per mode; exit status 0 if everything held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGE 4096
#define PAGES 16
#define LEN (PAGES * PAGE)

static char *fresh(char fill)
{
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        exit(90);
    memset(p, fill, LEN);
    return p;
}

static size_t count(const char *p, char c)
{
    size_t n = 0;
    for (size_t i = 0; i < LEN; i++)
        n += p[i] == c;
    return n;
}

static int wait_ok(pid_t pid, int code)
{
    int status;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* One round of `between`, in a process of its own: no range yet. */
static int between_round(void)
{
    int bad = 0;
    char *p = fresh('p');
    int go[2];
    if (pipe(go))
        return 91;
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(92);
        _exit(count(p, 'p') == LEN ? 0 : 1);   /* its copy never volatile: intact */
    }
    close(go[0]);
    /* Marked after the fork event: the child's space must not have it. */
    if (vrange((unsigned long)p, LEN, VRANGE_VOLATILE, 0, NULL) != LEN)
        bad++;
    request_purge();
    int purged = -1;
    vrange((unsigned long)p, LEN, VRANGE_NONVOLATILE, 0, &purged);
    if (purged != 0 || count(p, 'p') != LEN)
        bad++;
    if (write(go[1], "g", 1) != 1 || !wait_ok(pid, 0))
        bad++;
    return bad;
}

static int between(int rounds)
{
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(between_round());
        bad += !wait_ok(pid, 0);
    }
    printf("between rounds=%d bad=%d\n", rounds, bad);
    return bad != 0;
}

/* One child of the storm: see the top. */
static int storm_child(void)
{
    char *p = fresh('s');
    if (vrange((unsigned long)p, LEN, VRANGE_VOLATILE, 0, NULL) != LEN)
        return 10;
    pid_t heir = fork();
    if (heir == 0) {   /* inherits the range: re-pins its copy */
        int purged = -1;
        vrange((unsigned long)p, LEN, VRANGE_NONVOLATILE, 0, &purged);
        size_t kept = count(p, 's'), zero = count(p, 0);
        _exit(purged == 0 ? (kept == LEN ? 3 : 11) : (purged == 1 && kept + zero == LEN ? 3 : 12));
    }
    pid_t runner = fork();
    if (runner == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(13);
    }
    if (!wait_ok(heir, 3) || !wait_ok(runner, 0))
        return 14;
    request_purge();
    int purged = -1;
    vrange((unsigned long)p, LEN, VRANGE_NONVOLATILE, 0, &purged);
    if (purged != 1 || count(p, 0) != LEN)
        return 15;
    return 0;
}

static int storm(const char *self, int n)
{
    pid_t pids[256];
    if (n > 256)
        n = 256;
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            if (i % 2)
                execl(self, self, "storm-child", (char *)NULL);
            _exit(storm_child());
        }
    }
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += wait_ok(pids[i], 0);
    printf("storm children=%d ok=%d\n", n, ok);
    return ok != n;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && !strcmp(argv[1], "storm-child"))
        return storm_child();
    if (argc != 3)
        return 2;
    int n = atoi(argv[2]);
    if (!strcmp(argv[1], "between"))
        return between(n);
    if (!strcmp(argv[1], "storm"))
        return storm("/proc/self/exe", n);
    return 2;
}
