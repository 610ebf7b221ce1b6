/* inproc_repin_race.c - threads re-pin while purges race them.
 *
 * Usage: inproc_repin_race THREADS SECONDS
 * Each worker thread owns CHUNKS chunks of PAGES pages.  Round after round
 * it writes a pattern into a chunk, marks it volatile, waits a little,
 * re-pins it, and checks: a page that reads zero when the re-pin said
 * "not purged" is a false answer; then it writes a new pattern into the
 * now non-volatile chunk and reads it back after a while: a page that lost
 * it was discarded while not volatile.  Meanwhile a storm thread asks
 * vrange-run to purge every 1 ms (SIGUSR1, sent with a raw syscall so the
 * purges race the calls instead of being waited for).
 * Prints "rounds=R purged=P false_not_purged=F lost_writes=L".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vrange.h"

#define PAGE 4096
#define CHUNKS 16
#define PAGES 4

static atomic_int stop;
static atomic_long rounds, purged_answers, false_not_purged, lost_writes;

static long raw_kill(long pid, long sig)
{
    long ret;
    __asm__ __volatile__("syscall" : "=a"(ret) : "a"(62L), "D"(pid), "S"(sig)
                         : "rcx", "r11", "memory");
    return ret;
}

static void spin(unsigned *seed)
{
    int n = rand_r(seed) % 20000;
    for (volatile int i = 0; i < n; i++)
        ;
}

static void fill(char *chunk, uint64_t value)
{
    for (int p = 0; p < PAGES; p++) {
        memcpy(chunk + p * PAGE, &value, sizeof value);
        memcpy(chunk + (p + 1) * PAGE - sizeof value, &value, sizeof value);
    }
}

/* Pages holding `value` at both ends; -1 if a page holds anything but it or zeros. */
static int holding(const char *chunk, uint64_t value)
{
    int n = 0;
    for (int p = 0; p < PAGES; p++) {
        uint64_t a, b;
        memcpy(&a, chunk + p * PAGE, sizeof a);
        memcpy(&b, chunk + (p + 1) * PAGE - sizeof b, sizeof b);
        if (a == value && b == value)
            n++;
        else if (a || b)
            return -1;
    }
    return n;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    uint64_t id = (uint64_t)(uintptr_t)arg << 40;
    char *mem = mmap(NULL, (size_t)CHUNKS * PAGES * PAGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        abort();
    for (uint64_t round = 1; !atomic_load(&stop); round++) {
        for (int c = 0; c < CHUNKS; c++) {
            char *chunk = mem + (size_t)c * PAGES * PAGE;
            uint64_t value = id | round << 8 | (uint64_t)c;
            fill(chunk, value);
            int purged = -1;
            if (vrange((unsigned long)chunk, PAGES * PAGE, VRANGE_VOLATILE, 0, &purged) < 0)
                abort();
            spin(&seed);
            if (vrange((unsigned long)chunk, PAGES * PAGE, VRANGE_NONVOLATILE, 0, &purged) < 0)
                abort();
            int kept = holding(chunk, value);
            if (purged)
                atomic_fetch_add(&purged_answers, 1);
            else if (kept != PAGES)
                atomic_fetch_add(&false_not_purged, 1);
            fill(chunk, value ^ 0xff);   /* pinned now: must stay */
            spin(&seed);
            if (holding(chunk, value ^ 0xff) != PAGES)
                atomic_fetch_add(&lost_writes, 1);
        }
        atomic_fetch_add(&rounds, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    double seconds = argc > 2 ? atof(argv[2]) : 2;
    const char *sup = getenv("VRANGE_SUPERVISOR_PID");
    long supervisor = sup ? atol(sup) : getppid();
    pthread_t t[64];
    for (int i = 0; i < threads && i < 64; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    struct timespec now, end, tick = { 0, 1000000 };
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += (time_t)seconds;
    end.tv_nsec += (long)((seconds - (time_t)seconds) * 1e9);
    do {
        raw_kill(supervisor, SIGUSR1);
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec < end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
    atomic_store(&stop, 1);
    for (int i = 0; i < threads && i < 64; i++)
        pthread_join(t[i], NULL);
    printf("rounds=%ld purged=%ld false_not_purged=%ld lost_writes=%ld\n", atomic_load(&rounds),
           atomic_load(&purged_answers), atomic_load(&false_not_purged), atomic_load(&lost_writes));
    return 0;
}
