/* cache_under_limit.c - a volatile cache far larger than its memory limit.
 *
 * Keeps CHUNKS chunks of 4 MiB (256 MiB by default).  A chunk is volatile
 * while idle; each step re-pins a random chunk, checks the purged answer,
 * rebuilds the chunk if it was purged and verifies it by checksum if not,
 * then marks it volatile again.  A pinned "hot" region of HOT_MB MiB is
 * verified at the end.  Under vrange-run with a small --memory-limit the
 * kernel can take the idle chunks, so the program fits; without vrange-run
 * (calls fail with ENOSYS) it keeps everything and outgrows the limit.
 *
 * Prints "steps=S rebuilt=R verified=V bad=B hot_bad=H enosys=E"; exit 0
 * iff B == 0 and H == 0.
 * Usage: cache_under_limit [CHUNKS [STEPS [HOT_MB [SEED]]]]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vrange.h"

#define CHUNK (4u << 20)

static void build(uint64_t *w, unsigned id)
{
    for (size_t i = 0; i < CHUNK / 8; i++)
        w[i] = ((uint64_t)id << 40) ^ (i * 0x9E3779B97F4A7C15ull);
}

static int intact(const uint64_t *w, unsigned id)
{
    for (size_t i = 0; i < CHUNK / 8; i++)
        if (w[i] != (((uint64_t)id << 40) ^ (i * 0x9E3779B97F4A7C15ull)))
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    unsigned chunks = argc > 1 ? (unsigned)atoi(argv[1]) : 64;
    unsigned steps = argc > 2 ? (unsigned)atoi(argv[2]) : 400;
    unsigned hot_mb = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
    srand(argc > 4 ? (unsigned)atoi(argv[4]) : 1);
    size_t len = (size_t)chunks * CHUNK;
    char *cache = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *hot = mmap(NULL, (size_t)hot_mb << 20, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (cache == MAP_FAILED || hot == MAP_FAILED)
        return 3;
    memset(hot, 0x5A, (size_t)hot_mb << 20);
    unsigned long rebuilt = 0, verified = 0, bad = 0, enosys = 0;
    char *built = calloc(chunks, 1);
    for (unsigned s = 0; s < steps; s++) {
        unsigned id = (unsigned)rand() % chunks;
        uint64_t *w = (uint64_t *)(cache + (size_t)id * CHUNK);
        int purged = 0;
        if (vrange((unsigned long)w, CHUNK, VRANGE_NONVOLATILE, 0, &purged) < 0) {
            if (errno != ENOSYS)
                return 4;
            enosys++;   /* not emulated: nothing is ever discarded */
            purged = 0;
        }
        if (!built[id] || purged) {
            build(w, id);
            built[id] = 1;
            rebuilt++;
        } else if (intact(w, id)) {
            verified++;
        } else {
            bad++;
        }
        vrange((unsigned long)w, CHUNK, VRANGE_VOLATILE, 0, NULL);
    }
    unsigned long hot_bad = 0;
    for (size_t i = 0; i < ((size_t)hot_mb << 20); i++)
        hot_bad += hot[i] != 0x5A;
    printf("steps=%u rebuilt=%lu verified=%lu bad=%lu hot_bad=%lu enosys=%lu\n", steps, rebuilt,
           verified, bad, hot_bad, enosys);
    return bad || hot_bad ? 1 : 0;
}
