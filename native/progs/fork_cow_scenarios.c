/* fork_cow_scenarios.c - volatile pages shared copy-on-write after fork.
 *
 * The parent fills region A (64 pages, 'p'), marks it volatile and forks;
 * the child inherits the range.  Then, by MODE, the child
 *   untouched   does nothing with A,
 *   repins      re-pins A (it needs the data),
 *   writes      overwrites A with 'c' (breaking COW: every page copied).
 * The parent asks vrange-run to purge (SIGUSR1; the purge is done before its
 * next call is served), then both re-pin A and report, the child first:
 *   "child purged=P resident=R data=ok|zero|mixed"
 *   "parent purged=P resident=R data=ok|zero|mixed"
 * resident = pages of A resident right after the purge (mincore), before
 * the re-pin.  data: ok = as that process last wrote it.
 * On stderr, each also prints "WHO anon_rss_after_purge_kb=N" (RssAnon from
 * its /proc status right after the purge), for accounting checks.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGES 64
#define LEN (PAGES * 4096)

static void rss_line(const char *who)
{
    char line[128];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8))
            fprintf(stderr, "%s anon_rss_after_purge_kb=%ld\n", who, atol(line + 8));
    if (f)
        fclose(f);
}

static int resident(char *a)
{
    unsigned char vec[PAGES];
    mincore(a, LEN, vec);
    int n = 0;
    for (int i = 0; i < PAGES; i++)
        n += vec[i] & 1;
    return n;
}

static void report(const char *who, char *a, char expect, int res)
{
    int purged = -1;
    vrange((unsigned long)a, LEN, VRANGE_NONVOLATILE, 0, &purged);
    size_t ok = 0, zero = 0;
    for (size_t i = 0; i < LEN; i++) {
        ok += a[i] == expect;
        zero += a[i] == 0;
    }
    printf("%s purged=%d resident=%d data=%s\n", who, purged, res,
           ok == LEN ? "ok" : zero == LEN ? "zero" : "mixed");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "untouched";
    char *a = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 'p', LEN);
    vrange((unsigned long)a, LEN, VRANGE_VOLATILE, 0, NULL);
    int ready[2], purged_pipe[2], done[2];
    if (pipe(ready) || pipe(purged_pipe) || pipe(done))
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        char expect = 'p', c;
        if (!strcmp(mode, "repins")) {
            int p;
            vrange((unsigned long)a, LEN, VRANGE_NONVOLATILE, 0, &p);
        } else if (!strcmp(mode, "writes")) {
            memset(a, 'c', LEN);
            expect = 'c';
        }
        (void)!write(ready[1], "r", 1);
        (void)!read(purged_pipe[0], &c, 1);   /* the parent's purge is done */
        rss_line("child");
        report("child", a, expect, resident(a));
        (void)!write(done[1], "d", 1);
        _exit(0);
    }
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 3;
    request_purge();
    int p;   /* served after the purge, in every process */
    vrange((unsigned long)a + LEN - 4096, 0 + 4096, VRANGE_VOLATILE, 0, &p);
    int res = resident(a);
    rss_line("parent");
    (void)!write(purged_pipe[1], "p", 1);
    if (read(done[0], &c, 1) != 1)
        return 4;
    report("parent", a, 'p', res);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 5;
}
