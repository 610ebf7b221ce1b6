/* threads_mark_concurrently.c - many threads call vrange at once.
 *
 * Each of NTHREADS threads owns a region of PAGES pages: it loops filling,
 * marking volatile and re-pinning it (no purge happens, so every answer
 * must be "not purged" and the data intact).  Then every thread leaves its
 * region volatile, the main thread asks for a purge, and each thread re-pins
 * and reports what it found.  Each thread also keeps a pinned region whose
 * data must survive everything.
 *
 * Prints per thread: "thread I loops_ok=L purged=P zero=Z pinned_good=G".
 * Usage: threads_mark_concurrently NTHREADS PAGES LOOPS
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGE 4096
static int pages, loops;
static pthread_barrier_t marked, purged_done;

struct worker { int id, loops_ok, purged, zero, pinned_good; pthread_t th; };

static void fill(uint64_t *w, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        w[i] = tag ^ (i * 0x9E3779B97F4A7C15ull);
}

static size_t count_good(uint64_t *w, size_t n, uint64_t tag)
{
    size_t good = 0;
    for (size_t p = 0; p < n / (PAGE / 8); p++) {
        int ok = 1;
        for (size_t i = p * (PAGE / 8); i < (p + 1) * (PAGE / 8); i++)
            ok &= w[i] == (tag ^ (i * 0x9E3779B97F4A7C15ull));
        good += ok;
    }
    return good;
}

static void *work(void *arg)
{
    struct worker *me = arg;
    size_t len = (size_t)pages * PAGE, words = len / 8;
    uint64_t *vol = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t *pin = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(pin, words, 0xABCD0000ull + me->id);
    for (int l = 0; l < loops; l++) {
        uint64_t tag = ((uint64_t)me->id << 32) | (uint64_t)l;
        fill(vol, words, tag);
        int purged = -1;
        ssize_t a = vrange((unsigned long)vol, len, VRANGE_VOLATILE, 0, NULL);
        ssize_t b = vrange((unsigned long)vol, len, VRANGE_NONVOLATILE, 0, &purged);
        if (a == (ssize_t)len && b == (ssize_t)len && purged == 0 &&
            count_good(vol, words, tag) == (size_t)pages)
            me->loops_ok++;
    }
    fill(vol, words, 0x5555);
    vrange((unsigned long)vol, len, VRANGE_VOLATILE, 0, NULL);
    pthread_barrier_wait(&marked);
    pthread_barrier_wait(&purged_done);
    vrange((unsigned long)vol, len, VRANGE_NONVOLATILE, 0, &me->purged);
    size_t zero = 0;
    for (size_t p = 0; p < (size_t)pages; p++) {
        int z = 1;
        for (size_t i = p * (PAGE / 8); i < (p + 1) * (PAGE / 8); i++)
            z &= vol[i] == 0;
        zero += z;
    }
    me->zero = (int)zero;
    me->pinned_good = (int)count_good(pin, words, 0xABCD0000ull + me->id);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8;
    pages = argc > 2 ? atoi(argv[2]) : 16;
    loops = argc > 3 ? atoi(argv[3]) : 200;
    struct worker *w = calloc((size_t)n, sizeof *w);
    pthread_barrier_init(&marked, NULL, (unsigned)n + 1);
    pthread_barrier_init(&purged_done, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        w[i].id = i;
        pthread_create(&w[i].th, NULL, work, &w[i]);
    }
    pthread_barrier_wait(&marked);
    /* The workers' next calls come after kill() returned: vrange-run serves
     * the purge before any of them. */
    request_purge();
    pthread_barrier_wait(&purged_done);
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].th, NULL);
        printf("thread %d loops_ok=%d purged=%d zero=%d pinned_good=%d\n", i, w[i].loops_ok,
               w[i].purged, w[i].zero, w[i].pinned_good);
    }
    return 0;
}
