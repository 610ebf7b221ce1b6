/* 2_memory_limit.c - a 256 MiB cache that lives inside a 64 MiB memory limit.
 *
 * The cache has 64 entries of 4 MiB.  An entry is VOLATILE whenever it is
 * not in use, so the system may take it back.  A lookup pins the entry
 * (NONVOLATILE), and the answer says whether it was purged: then the entry
 * is rebuilt (a miss), else its contents are checked (a hit).  Afterwards
 * it is made volatile again.
 *
 * Not under vrange-run the calls fail with ENOSYS; the program then simply
 * keeps everything, as a cache without vrange() would, and needs 256 MiB.
 *
 * Prints "lookups=N hits=H rebuilt=R wrong=W peak_rss_mib=P.P"; exit 0 iff W == 0.
 * Build: cc -O2 -I native/include -o demos/build/2_memory_limit demos/2_memory_limit.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vrange.h"

#define ENTRIES 64
#define ENTRY (4ul << 20)
#define LOOKUPS 300

static char *cache;
static int have_vrange = 1;

static uint64_t *entry(unsigned i) { return (uint64_t *)(cache + i * ENTRY); }

/* The "expensive" contents of entry i: a pattern we can check later. */
static uint64_t word(unsigned i, size_t k) { return ((uint64_t)i << 40) ^ (k * 0x9E3779B97F4A7C15ull); }

static void build(unsigned i)
{
    for (size_t k = 0; k < ENTRY / 8; k++)
        entry(i)[k] = word(i, k);
}

static int correct(unsigned i)
{
    for (size_t k = 0; k < ENTRY / 8; k++)
        if (entry(i)[k] != word(i, k))
            return 0;
    return 1;
}

/* Done with entry i for now: the system may discard it. */
static void release(unsigned i)
{
    if (have_vrange && vrange((unsigned long)entry(i), ENTRY, VRANGE_VOLATILE, 0, NULL) < 0) {
        if (errno != ENOSYS)
            exit(3);
        printf("vrange() is not available (ENOSYS): keeping every entry in memory\n");
        fflush(stdout);
        have_vrange = 0;
    }
}

/* Need entry i: pin it; returns 1 if it was purged while volatile. */
static int pin(unsigned i)
{
    int purged = 0;
    if (have_vrange)
        vrange((unsigned long)entry(i), ENTRY, VRANGE_NONVOLATILE, 0, &purged);
    return purged;
}

static double peak_rss_mib(void)   /* VmHWM: the most this process ever had resident */
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb / 1024.0;
}

int main(void)
{
    cache = mmap(NULL, ENTRIES * ENTRY, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (cache == MAP_FAILED)
        return 2;
    for (unsigned i = 0; i < ENTRIES; i++) {   /* fill the whole cache once */
        build(i);
        release(i);
    }
    printf("filled the cache: %d entries x 4 MiB = %lu MiB\n", ENTRIES, ENTRIES * ENTRY >> 20);
    fflush(stdout);

    unsigned long hits = 0, rebuilt = 0, wrong = 0;
    srand(1);
    for (int n = 0; n < LOOKUPS; n++) {        /* use it: random lookups */
        unsigned i = (unsigned)rand() % ENTRIES;
        if (pin(i)) {
            build(i);        /* purged: it reads as zeros, compute it again */
            rebuilt++;
        } else if (correct(i)) {
            hits++;
        } else {
            wrong++;         /* never: a page that was not purged keeps its data */
        }
        release(i);
    }
    printf("lookups=%d hits=%lu rebuilt=%lu wrong=%lu peak_rss_mib=%.1f\n",
           LOOKUPS, hits, rebuilt, wrong, peak_rss_mib());
    return wrong ? 1 : 0;
}
