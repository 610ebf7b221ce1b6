/* purge_after_vdso_moved.c - the program unmaps or moves its vDSO between purges.
 *
 *   purge_after_vdso_moved unmap|move
 *
 * Marks a filled region volatile and has it purged (vrange-run may remember
 * a `syscall` instruction in the vDSO), then unmaps the vDSO (or mremaps it
 * elsewhere), fills and marks the region again and asks for a second purge.
 * Prints "purged first=P1 second=P2 zero=Z"; exit 0 if both purges landed.
 * Nothing here may call into the vDSO after it moved (no clock_gettime).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "testlib.h"
#include "vrange.h"

#define PAGES 64
#define PAGE 4096

static int round_trip(char *region)
{
    int purged = 0;
    memset(region, 0x5a, PAGES * PAGE);
    if (vrange((unsigned long)region, PAGES * PAGE, VRANGE_VOLATILE, 0, &purged) < 0)
        return -1;
    request_purge();
    vrange((unsigned long)region, PAGE, VRANGE_NONVOLATILE, 0, &purged);   /* barrier */
    if (vrange((unsigned long)region, PAGES * PAGE, VRANGE_NONVOLATILE, 0, &purged) < 0)
        return -1;
    return purged;
}

/* [start, end) of the [vdso] mapping, from /proc/self/maps. */
static int vdso_span(unsigned long *start, unsigned long *end)
{
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    int found = 0;
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", start, end) == 2)
            found = 1;
    if (maps)
        fclose(maps);
    return found;
}

int main(int argc, char **argv)
{
    char *region = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned long start, end;
    if (region == MAP_FAILED || argc < 2 || !vdso_span(&start, &end))
        return 2;
    int first = round_trip(region);
    if (!strcmp(argv[1], "unmap")) {
        if (munmap((void *)start, end - start))
            return 3;
    } else {
        void *to = mmap(NULL, end - start, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mremap((void *)start, end - start, end - start, MREMAP_MAYMOVE | MREMAP_FIXED,
                   to) == MAP_FAILED)
            return 3;
    }
    int second = round_trip(region);
    int zero = 0;
    for (int i = 0; i < PAGES; i++)
        zero += region[i * PAGE] == 0;
    printf("purged first=%d second=%d zero=%d\n", first, second, zero);
    return first == 1 && second == 1 ? 0 : 1;
}
