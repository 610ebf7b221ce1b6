/* bench_purge.c - purge latency and calls under a purge storm, timed by the
 * program itself (run under vrange-run by benchmarks/run.py).
 *
 *   latency ROUNDS OTHERS
 *                    OTHERS one-page volatile ranges (never touched) and one
 *                    64 KiB range.  Each round re-pins the 64 KiB range,
 *                    fills it, marks it volatile, sends SIGUSR1 to
 *                    vrange-run and polls mincore() until none of its pages
 *                    is resident: request -> pages gone.  Three rounds first
 *                    are not counted (the first purge starts vrange-run's
 *                    purger thread in this process).
 *                    "median_us=.. p90_us=.. max_us=.. min_us=.. rounds=..
 *                     others=.. setup_ms=.."
 *   storm RANGES SECONDS PERIOD_US
 *                    RANGES one-page ranges, resident and volatile.  For
 *                    SECONDS, step k re-pins range k % RANGES (NONVOLATILE),
 *                    writes its page and makes it volatile again; the two
 *                    calls are one pair, timed without the write.  A helper
 *                    thread sends SIGUSR1 to vrange-run every PERIOD_US
 *                    (0: no storm), so each purge finds the pages written
 *                    since the last one.
 *                    "pairs=.. pair_median_us=.. pair_p99_us=.. pair_max_us=..
 *                     call_max_us=.. over_10ms=.. signals=.. purged_answers=.."
 *   repin RANGES PERIOD_US
 *                    RANGES one-page ranges, resident and volatile, purged
 *                    by one SIGUSR1 (waited for).  Then each is re-pinned
 *                    (NONVOLATILE: purged=1), while a helper thread sends
 *                    SIGUSR1 every PERIOD_US (0: none), though nothing is
 *                    left to purge.
 *                    "repins=.. total_ms=.. repin_median_us=.. repin_max_us=..
 *                     purged_answers=.. signals=.."
 *   grow RANGES
 *                    RANGES one-page ranges, each filled and made volatile in
 *                    turn (run under a memory limit smaller than them, the
 *                    older ones are purged meanwhile), then each re-pinned;
 *                    a range not reported purged must keep its data.
 *                    "ranges=.. purged=.. kept=.. bad=.. total_ms=.."
 * Times from CLOCK_MONOTONIC.  Exit 1 if a purge never comes (5 s) or a call
 * fails.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "vrange.h"

#define PAGE 4096
#define TARGET (64 << 10)


static pid_t supervisor(void)
{
    const char *sup = getenv("VRANGE_SUPERVISOR_PID");
    return sup ? atoi(sup) : getppid();
}

static void call(void *p, size_t len, int mode, int *purged)
{
    if (vrange((unsigned long)p, len, mode, 0, purged) != (ssize_t)len) {
        perror("vrange");
        exit(1);
    }
}

static int resident(char *p, size_t len)
{
    unsigned char vec[TARGET / PAGE];
    if (mincore(p, len, vec))
        exit(4);
    int n = 0;
    for (size_t i = 0; i < len / PAGE; i++)
        n += vec[i] & 1;
    return n;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of v[0..n) (sorted in place). */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, by_value);
    return v[(size_t)(q * (n - 1) + 0.5)];
}

/* One-page volatile ranges with one-page gaps (so they stay separate). */
static char *ranges(long n, int touch)
{
    char *p = anon(2 * (size_t)(n ? n : 1) * PAGE);
    for (long i = 0; i < n; i++) {
        if (touch)
            p[2 * i * PAGE] = 1;
        call(p + 2 * i * PAGE, PAGE, VRANGE_VOLATILE, NULL);
    }
    return p;
}

static int latency(long rounds, long others)
{
    double t = now_us();
    ranges(others, 0);
    double setup_ms = (now_us() - t) / 1e3;
    char *target = anon(TARGET);
    double *v = malloc(rounds * sizeof *v);
    pid_t sup = supervisor();
    for (long r = -3; r < rounds; r++) {
        int purged;
        call(target, TARGET, VRANGE_NONVOLATILE, &purged);
        memset(target, (int)r, TARGET);
        call(target, TARGET, VRANGE_VOLATILE, NULL);
        if (resident(target, TARGET) != TARGET / PAGE)
            exit(5);
        t = now_us();
        kill(sup, SIGUSR1);
        while (resident(target, TARGET)) {
            if (now_us() - t > 5e6) {
                printf("latency: round %ld: the pages were never purged\n", r);
                return 1;
            }
            sched_yield();
        }
        if (r >= 0)
            v[r] = now_us() - t;
    }
    double sum = 0;
    for (long r = 0; r < rounds; r++)
        sum += v[r];
    double median = quantile(v, rounds, 0.5);
    printf("median_us=%.1f p90_us=%.1f max_us=%.1f min_us=%.1f mean_us=%.1f rounds=%ld "
           "others=%ld setup_ms=%.1f\n", median, quantile(v, rounds, 0.9), v[rounds - 1], v[0],
           sum / rounds, rounds, others, setup_ms);
    return 0;
}

static long signals;
static long period_us;
static double storm_end;   /* now_us() */

/* SIGUSR1 to vrange-run every period_us until storm_end, whether or not the
 * main thread's calls get through meanwhile (so the run always ends). */
static void *storm(void *arg)
{
    pid_t sup = *(pid_t *)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        next.tv_nsec += period_us * 1000;
        while (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        if (now_us() >= storm_end)
            return NULL;
        kill(sup, SIGUSR1);
        signals++;
    }
}

static int calls_in_storm(long n, double seconds)
{
    char *p = ranges(n, 1);
    size_t cap = 1 << 16, pairs = 0;
    double *v = malloc(cap * sizeof *v), call_max = 0;
    long purged_answers = 0, over = 0;
    pid_t sup = supervisor();
    pthread_t helper;
    double start = now_us();
    storm_end = start + seconds * 1e6;
    if (period_us > 0 && pthread_create(&helper, NULL, storm, &sup))
        return 3;
    for (long k = 0; now_us() < storm_end; k++) {
        char *page = p + 2 * (k % n) * PAGE;
        int purged = 0;
        double t0 = now_us();
        call(page, PAGE, VRANGE_NONVOLATILE, &purged);
        double t1 = now_us();
        *page = (char)k;
        double t2 = now_us();
        call(page, PAGE, VRANGE_VOLATILE, NULL);
        double t3 = now_us();
        double one = t1 - t0 > t3 - t2 ? t1 - t0 : t3 - t2;
        call_max = one > call_max ? one : call_max;
        purged_answers += purged;
        if (pairs == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[pairs] = (t1 - t0) + (t3 - t2);
        over += v[pairs++] > 10e3;
    }
    double elapsed = now_us() - start;
    if (period_us > 0)
        pthread_join(helper, NULL);
    double median = quantile(v, pairs, 0.5);
    printf("pairs=%zu pair_median_us=%.1f pair_p99_us=%.1f pair_max_us=%.1f call_max_us=%.1f "
           "over_10ms=%ld signals=%ld purged_answers=%ld ranges=%ld period_us=%ld "
           "pairs_per_s=%.0f\n",
           pairs, median, quantile(v, pairs, 0.99), v[pairs - 1], call_max, over, signals,
           purged_answers, n, period_us, pairs / elapsed * 1e6);
    return 0;
}

static int repin_purged(long n)
{
    char *p = ranges(n, 1);
    pid_t sup = supervisor();
    kill(sup, SIGUSR1);
    double t = now_us();
    for (long i = n - 1; i >= 0; i--) {   /* wait until every page is gone */
        unsigned char vec;
        if (mincore(p + 2 * i * PAGE, PAGE, &vec))
            exit(4);
        if (vec & 1) {
            if (now_us() - t > 5e6) {
                printf("repin: the pages were never purged\n");
                return 1;
            }
            sched_yield();
            i++;
        }
    }
    double *v = malloc(n * sizeof *v);
    long purged_answers = 0;
    pthread_t helper;
    storm_end = 1e300;
    if (period_us > 0 && pthread_create(&helper, NULL, storm, &sup))
        return 3;
    double start = now_us();
    for (long i = 0; i < n; i++) {
        int purged = 0;
        double t0 = now_us();
        call(p + 2 * i * PAGE, PAGE, VRANGE_NONVOLATILE, &purged);
        v[i] = now_us() - t0;
        purged_answers += purged;
    }
    double total = now_us() - start;
    storm_end = 0;
    if (period_us > 0)
        pthread_join(helper, NULL);
    double median = quantile(v, n, 0.5);
    printf("repins=%ld total_ms=%.1f repin_median_us=%.1f repin_max_us=%.1f purged_answers=%ld "
           "signals=%ld period_us=%ld\n", n, total / 1e3, median, v[n - 1], purged_answers,
           signals, period_us);
    return 0;
}

static int grow(long n)
{
    char *p = anon(2 * (size_t)n * PAGE);
    double start = now_us();
    for (long i = 0; i < n; i++) {
        memset(p + 2 * i * PAGE, (int)(i % 251) + 1, PAGE);
        call(p + 2 * i * PAGE, PAGE, VRANGE_VOLATILE, NULL);
    }
    long purged_n = 0, bad = 0;
    for (long i = 0; i < n; i++) {
        char *q = p + 2 * i * PAGE;
        int purged = 0;
        call(q, PAGE, VRANGE_NONVOLATILE, &purged);
        purged_n += purged;
        for (int k = 0; !purged && k < PAGE; k++)
            if (q[k] != (char)((i % 251) + 1)) {
                bad++;
                break;
            }
    }
    printf("ranges=%ld purged=%ld kept=%ld bad=%ld total_ms=%.1f\n", n, purged_n, n - purged_n,
           bad, (now_us() - start) / 1e3);
    return bad != 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "latency"))
        return latency(atol(argv[2]), atol(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "storm")) {
        period_us = atol(argv[4]);
        return calls_in_storm(atol(argv[2]), atof(argv[3]));
    }
    if (argc == 3 && !strcmp(argv[1], "grow"))
        return grow(atol(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "repin")) {
        period_us = atol(argv[3]);
        return repin_purged(atol(argv[2]));
    }
    fprintf(stderr, "usage: bench_purge latency ROUNDS OTHERS | storm RANGES SECONDS PERIOD_US"
                    " | repin RANGES PERIOD_US | grow RANGES\n");
    return 2;
}
