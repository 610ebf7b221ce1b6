/* threads_shared_tree_oracle.c - many threads change one range tree at once.
 *
 * PAGES pages in 4-page blocks, block b owned by thread b % NTHREADS.  Each
 * thread makes LOOPS random calls (VOLATILE or NONVOLATILE over 1-4 pages
 * inside one of its blocks) and keeps its own page bitmap of what it asked:
 * the sequential oracle (pages are disjoint, so the final state does not
 * depend on how the supervisor interleaved the threads).  Then one purge,
 * and every thread re-pins each of its pages one by one: purged must equal
 * the oracle's "volatile", and the data must be zero exactly where purged.
 * Prints per thread "thread T pages=N mismatches=M".
 * Usage: threads_shared_tree_oracle NTHREADS PAGES LOOPS
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGE 4096
static int nthreads, pages, loops;
static char *region;
static pthread_barrier_t marked, purged;

struct worker { int id, owned, mismatches; pthread_t th; };

static void *work(void *arg)
{
    struct worker *me = arg;
    unsigned seed = 1234u + (unsigned)me->id;
    char *oracle = calloc((size_t)pages, 1);
    int blocks = pages / 4;
    for (int l = 0; l < loops; l++) {
        int b;
        do b = rand_r(&seed) % blocks; while (b % nthreads != me->id);
        int first = b * 4 + rand_r(&seed) % 4;
        int n = 1 + rand_r(&seed) % (b * 4 + 4 - first);
        int vol = rand_r(&seed) & 1, p;
        if (vrange((unsigned long)(region + (size_t)first * PAGE), (size_t)n * PAGE,
                   vol ? VRANGE_VOLATILE : VRANGE_NONVOLATILE, 0, &p) != (ssize_t)n * PAGE)
            me->mismatches++;
        memset(oracle + first, vol, (size_t)n);
    }
    pthread_barrier_wait(&marked);
    pthread_barrier_wait(&purged);
    for (int pg = 0; pg < pages; pg++) {
        if ((pg / 4) % nthreads != me->id)
            continue;
        me->owned++;
        int p = -1;
        char *at = region + (size_t)pg * PAGE;
        vrange((unsigned long)at, PAGE, VRANGE_NONVOLATILE, 0, &p);
        int zero = at[0] == 0 && at[PAGE - 1] == 0;
        unsigned char fill = (unsigned char)((pg & 0x7F) + 1);
        int intact = (unsigned char)at[0] == fill && (unsigned char)at[PAGE - 1] == fill;
        if (p != oracle[pg] || (p ? !zero : !intact))
            me->mismatches++;
    }
    free(oracle);
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 8;
    pages = argc > 2 ? atoi(argv[2]) : 512;
    loops = argc > 3 ? atoi(argv[3]) : 300;
    region = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int pg = 0; pg < pages; pg++)
        memset(region + (size_t)pg * PAGE, (pg & 0x7F) + 1, PAGE);
    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_barrier_init(&marked, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&purged, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i].id = i;
        pthread_create(&w[i].th, NULL, work, &w[i]);
    }
    pthread_barrier_wait(&marked);
    /* The workers' next calls come after kill() returned: vrange-run serves
     * the purge before any of them. */
    request_purge();
    pthread_barrier_wait(&purged);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        printf("thread %d pages=%d mismatches=%d\n", i, w[i].owned, w[i].mismatches);
    }
    return 0;
}
