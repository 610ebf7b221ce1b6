/* volatile_under_page_cache_churn.c - memory stalls without swap, for PSI.
 *
 * Keeps 48 MiB volatile and resident, then reads FILE over and over, dropping
 * its cache first, so that (inside a small memory cgroup) the kernel must
 * reclaim page cache to make room: those reclaims are memory stalls, which
 * PSI counts.  Stops when the volatile pages are gone (mincore): prints
 * "purged after S s", exit 0; or "not purged, resident N" after 10 s, exit 1.
 * Usage: volatile_under_page_cache_churn FILE
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vrange.h"

#define VOL (48u << 20)

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    char *v = mmap(NULL, VOL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(v, 1, VOL);
    if (vrange((unsigned long)v, VOL, VRANGE_VOLATILE, 0, NULL) < 0)
        return 3;
    static char buf[1 << 20];
    static unsigned char vec[VOL / 4096];
    double start = seconds();
    for (;;) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0)
            return 4;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);   /* charge the reads to us */
        while (read(fd, buf, sizeof buf) > 0)
            ;
        close(fd);
        mincore(v, VOL, vec);
        int resident = 0;
        for (size_t i = 0; i < sizeof vec; i++)
            resident += vec[i] & 1;
        if (resident == 0) {
            printf("purged after %.2f s\n", seconds() - start);
            return 0;
        }
        if (seconds() - start > 10) {
            printf("not purged, resident %d\n", resident);
            return 1;
        }
    }
}
