/* purge_alternating_pages_keeps_mappings.c - a purge does not split a mapping per purged page.
 *
 * Maps NPAGES pages (argv[1], default 80000), writes every other one, so
 * resident pages alternate with pages never touched, marks the whole mapping
 * volatile and asks for a purge: NPAGES/2 separate runs are discarded.  The
 * SIGBUS trap of purged pages must cost a few mappings per volatile range,
 * not one per purged run (a mapping split per run reached vm.max_map_count,
 * 65530, and later mmap()s failed with ENOMEM).  Then 100 one-page mmap()s,
 * alternately read-only and read-write so that none can merge with another,
 * and a re-pin of the whole mapping.
 *
 * With "separate" as argv[2], each written page is a volatile range of its
 * own (NPAGES/2 ranges, each between pages that are not volatile): a trap
 * per range would split the mapping past vm.max_map_count, so vrange-run
 * traps no more ranges than leave the program room to map.
 *
 * Prints "maps before=B purged=A mmap_failed=F repinned=R was_purged=P":
 * the /proc/self/maps line counts before the purge, after it, and after the
 * re-pin (the 100 mappings unmapped again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testlib.h"
#include "vrange.h"

#define PAGE 4096

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int lines = 0, c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

int main(int argc, char **argv)
{
    size_t npages = argc > 1 ? strtoul(argv[1], NULL, 10) : 80000;
    int separate = argc > 2 && !strcmp(argv[2], "separate");
    size_t len = npages * PAGE;
    char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return 3;
    for (size_t p = 0; p < npages; p += 2)
        a[p * PAGE] = 1;
    if (separate) {
        for (size_t p = 0; p < npages; p += 2)
            if (vrange((unsigned long)(a + p * PAGE), PAGE, VRANGE_VOLATILE, 0, NULL) != PAGE)
                return 4;
    } else if (vrange((unsigned long)a, len, VRANGE_VOLATILE, 0, NULL) != (ssize_t)len) {
        return 4;
    }
    int before = count_maps();

    /* The purge is served before our next call: the barrier makes it synchronous. */
    static char barrier[PAGE] __attribute__((aligned(PAGE)));
    int purged = -1;
    request_purge();
    vrange((unsigned long)barrier, PAGE, VRANGE_NONVOLATILE, 0, &purged);
    if (separate) {   /* a purge of many ranges goes on in slices: wait for its end */
        size_t p = 0;
        for (int tries = 0; p < npages && tries < 100000; tries++) {
            unsigned char in = 0;
            while (p < npages && mincore(a + p * PAGE, PAGE, &in) == 0 && !(in & 1))
                p += 2;
            if (p < npages)
                usleep(100);
        }
    }
    int after = count_maps();

    void *small[100];
    int failed = 0;
    for (int i = 0; i < 100; i++) {
        int prot = i % 2 ? PROT_READ : PROT_READ | PROT_WRITE;
        small[i] = mmap(NULL, PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        failed += small[i] == MAP_FAILED;
    }
    for (int i = 0; i < 100; i++)
        if (small[i] != MAP_FAILED)
            munmap(small[i], PAGE);

    vrange((unsigned long)a, len, VRANGE_NONVOLATILE, 0, &purged);
    printf("maps before=%d purged=%d mmap_failed=%d repinned=%d was_purged=%d\n",
           before, after, failed, count_maps(), purged);
    return 0;
}
