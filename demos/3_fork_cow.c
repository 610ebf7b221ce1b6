/* 3_fork_cow.c - why pages shared with a child that needs them are not discarded.
 *
 * After fork(), parent and child share their memory copy-on-write: both map
 * the SAME physical pages until one of them writes.  The child inherits the
 * parent's volatile ranges (the v10 rule).  Two regions of 4 MiB:
 *
 *   A  the child re-pins it (NONVOLATILE): "I still need this data"
 *   B  the child leaves it volatile, like the parent
 *
 * The parent asks for a purge.  Discarding a page from the parent alone
 * would free nothing (the child still maps it) and would lose the parent's
 * data for nothing, so:
 *   A stays in BOTH processes (the child needs it),
 *   B goes from BOTH (every process that maps it agreed it may go).
 * When the child has exited, A belongs to the parent alone and a second
 * purge takes it.
 *
 * "resident" counts the pages in RAM (mincore), without touching them.
 * Build: cc -O2 -I native/include -o demos/build/3_fork_cow demos/3_fork_cow.c
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vrange.h"

#define PAGES 1024
#define LEN (PAGES * 4096ul)

static char *sync_page;

/* Ask vrange-run for a purge, as memory pressure would, and wait for it:
 * vrange-run finishes a purge asked for before it answers our next call. */
static void purge_now(void)
{
    int purged;
    kill(atoi(getenv("VRANGE_SUPERVISOR_PID")), SIGUSR1);
    vrange((unsigned long)sync_page, 4096, VRANGE_NONVOLATILE, 0, &purged);
}

static int resident(char *region)
{
    unsigned char vec[PAGES];
    int n = 0;
    mincore(region, LEN, vec);
    for (int i = 0; i < PAGES; i++)
        n += vec[i] & 1;
    return n;
}

/* Re-pin a region and say what is in it. */
static void repin(const char *who, const char *name, char *region, char expect)
{
    int purged = -1;
    size_t ok = 0;
    vrange((unsigned long)region, LEN, VRANGE_NONVOLATILE, 0, &purged);
    for (size_t i = 0; i < LEN; i++)
        ok += region[i] == expect;
    printf("%s re-pinned %s: purged=%d data=%s\n", who, name, purged,
           ok == LEN ? "intact" : ok == 0 ? "zeros" : "mixed");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* parent and child lines in order */
    char *a = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *b = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sync_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 'A', LEN);
    memset(b, 'B', LEN);
    vrange((unsigned long)a, LEN, VRANGE_VOLATILE, 0, NULL);
    vrange((unsigned long)b, LEN, VRANGE_VOLATILE, 0, NULL);
    printf("parent: A and B (4 MiB each) filled and marked VOLATILE; forking\n");

    int to_parent[2], to_child[2];
    char c;
    if (pipe(to_parent) || pipe(to_child))
        return 2;
    pid_t child = fork();
    if (child == 0) {
        int purged;
        vrange((unsigned long)a, LEN, VRANGE_NONVOLATILE, 0, &purged);
        printf("child:  re-pinned A (I still need it); B stays volatile\n");
        (void)!write(to_parent[1], "r", 1);
        (void)!read(to_child[0], &c, 1);          /* wait for the parent's purge */
        printf("child:  after the purge: A resident %d/%d pages, B resident %d/%d\n",
               resident(a), PAGES, resident(b), PAGES);
        size_t ok = 0;
        for (size_t i = 0; i < LEN; i++)
            ok += a[i] == 'A';
        printf("child:  A data %s\n", ok == LEN ? "intact" : "DAMAGED");
        repin("child: ", "B", b, 'B');
        _exit(ok == LEN ? 0 : 1);
    }

    (void)!read(to_parent[0], &c, 1);             /* the child has re-pinned A */
    printf("parent: purge 1 (SIGUSR1 to vrange-run) while the child is alive\n");
    purge_now();
    printf("parent: after purge 1: A resident %d/%d pages, B resident %d/%d\n",
           resident(a), PAGES, resident(b), PAGES);
    (void)!write(to_child[1], "p", 1);
    int status;
    waitpid(child, &status, 0);
    printf("parent: the child exited with status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    printf("parent: purge 2, now that A is the parent's alone\n");
    purge_now();
    printf("parent: after purge 2: A resident %d/%d pages\n", resident(a), PAGES);
    repin("parent:", "A", a, 'A');
    repin("parent:", "B", b, 'B');
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
