/* ebizzy.c - an ebizzy-like workload for allocators (after ebizzy 0.3).
 *
 * Allocates N chunks of S bytes filled with records (record j holds j).
 * T threads then repeatedly pick a random chunk, malloc a copy, memcpy the
 * chunk into it, search the copy for a random key (a linear scan of the
 * records, ebizzy -l) and free the copy.  Every search is one record, as
 * ebizzy counts them.  All memory comes from malloc/free, so a preloaded
 * allocator (libvrcache.so) serves it.
 *
 * Usage: ebizzy [-S seconds] [-n chunks] [-s chunk_size] [-t threads]
 *               [-R seed] [-r]
 *   -S  may be fractional (0.5); the defaults are ebizzy's: 10 s, 10 chunks
 *       of 512 KiB, but 1 thread
 *   -r  copy a random number of records (1..S/8) each time, as ebizzy -R
 *       does (here -R is the seed): many size classes, a big allocator cache.
 * Prints "records_per_s=F maxrss_kb=K records=R seconds=E bad=B"; exit 1 if
 * a search ever failed (B > 0: the copy did not hold the chunk's records).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef size_t record_t;

static unsigned chunks = 10, threads = 1;
static double seconds = 10;
static size_t chunk_size = 512 * 1024;
static unsigned long seed = 1;
static int random_size;
static record_t **mem;
static volatile int running = 1;

struct worker {
    pthread_t tid;
    uint64_t state;
    unsigned long records, bad;
};

static uint64_t next_rand(uint64_t *s)   /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static const record_t *linear_search(record_t key, const record_t *base, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (base[i] == key)
            return &base[i];
    return NULL;
}

static void *search_mem(void *arg)
{
    struct worker *w = arg;
    size_t all = chunk_size / sizeof(record_t);
    while (running) {
        const record_t *src = mem[next_rand(&w->state) % chunks];
        size_t n = random_size ? next_rand(&w->state) % all + 1 : all;
        record_t *copy = malloc(n * sizeof(record_t));
        if (!copy) {
            perror("malloc");
            exit(3);
        }
        memcpy(copy, src, n * sizeof(record_t));
        record_t key = next_rand(&w->state) % n;
        const record_t *found = linear_search(key, copy, n);
        if (!found || (size_t)(found - copy) != key)
            w->bad++;
        free(copy);
        w->records++;
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "S:n:s:t:R:r")) != -1) {
        switch (opt) {
        case 'S': seconds = atof(optarg); break;
        case 'n': chunks = (unsigned)atoi(optarg); break;
        case 's': chunk_size = (size_t)strtoull(optarg, NULL, 0); break;
        case 't': threads = (unsigned)atoi(optarg); break;
        case 'R': seed = strtoul(optarg, NULL, 0); break;
        case 'r': random_size = 1; break;
        default:
            fprintf(stderr, "usage: %s [-S seconds] [-n chunks] [-s chunk_size] "
                    "[-t threads] [-R seed] [-r]\n", argv[0]);
            return 2;
        }
    }
    if (!chunks || !threads || chunk_size < sizeof(record_t) || !(seconds >= 0)) {
        fprintf(stderr, "ebizzy: chunks, threads, chunk size and seconds must be positive\n");
        return 2;
    }
    size_t n = chunk_size / sizeof(record_t);
    mem = malloc(chunks * sizeof *mem);
    for (unsigned i = 0; i < chunks; i++) {
        mem[i] = malloc(n * sizeof(record_t));
        if (!mem[i]) {
            perror("malloc");
            return 3;
        }
        for (size_t j = 0; j < n; j++)
            mem[i][j] = j;
    }
    struct worker *w = calloc(threads, sizeof *w);
    double start = now();
    for (unsigned t = 0; t < threads; t++) {
        w[t].state = (seed + 1) * 0x9E3779B97F4A7C15ull + t * 0xBF58476D1CE4E5B9ull;
        if (!w[t].state)
            w[t].state = 1;
        if (pthread_create(&w[t].tid, NULL, search_mem, &w[t])) {
            perror("pthread_create");
            return 3;
        }
    }
    struct timespec pause = {.tv_sec = (time_t)seconds,
                             .tv_nsec = (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&pause, &pause))
        ;
    running = 0;
    unsigned long records = 0, bad = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(w[t].tid, NULL);
        records += w[t].records;
        bad += w[t].bad;
    }
    double elapsed = now() - start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("records_per_s=%.1f maxrss_kb=%ld records=%lu seconds=%.3f bad=%lu\n",
           records / elapsed, ru.ru_maxrss, records, elapsed, bad);
    for (unsigned i = 0; i < chunks; i++)
        free(mem[i]);
    free(mem);
    free(w);
    return bad ? 1 : 0;
}
