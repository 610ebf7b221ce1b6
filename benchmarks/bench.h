/* bench.h - shared by the benchmark probes in this folder. */
#ifndef VRANGE_BENCH_H
#define VRANGE_BENCH_H

#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

/* CLOCK_MONOTONIC in microseconds. */
static inline double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* Private anonymous read-write memory; exit status 3 if there is none. */
static inline char *anon(size_t len)
{
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        exit(3);
    return p;
}

#endif
