/* buggy_allocator.c - a small block cache on vrange, correct or with a
 * classic bug, for testing --purge-policy and --check-access.
 *
 *   buggy_allocator MODE [ROUNDS]
 *
 * NBLK blocks of BLK_PAGES pages hold data derived from their number.  Each
 * round gets every block (re-pin, rebuild if purged), checks it, and puts it
 * back (mark volatile).  MODE:
 *   correct   as above
 *   touch     put() links the block into a free list stored in the block
 *             itself, after marking it volatile (use after "free")
 *   ignore    get() ignores the purged answer and uses the data as it is
 * Prints "touching ADDR" (touch, before each bad write) and "done bad=N";
 * exits 1 if any block held wrong data, else 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vrange.h"

#define NBLK 8
#define BLK_PAGES 4
#define BLK (BLK_PAGES * 4096)

static char *block[NBLK];
static char *free_list;
static enum { CORRECT, TOUCH, IGNORE } mode;

static void fill(int k)
{
    uint32_t *w = (uint32_t *)block[k];
    for (size_t i = 0; i < BLK / 4; i++)
        w[i] = 0x9e3779b9u * (uint32_t)(k + 1) + (uint32_t)i;
}

static int intact(int k)
{
    uint32_t *w = (uint32_t *)block[k];
    for (size_t i = 0; i < BLK / 4; i++)
        if (w[i] != 0x9e3779b9u * (uint32_t)(k + 1) + (uint32_t)i)
            return 0;
    return 1;
}

static void get(int k)
{
    if (!block[k]) {
        block[k] = mmap(NULL, BLK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (block[k] == MAP_FAILED)
            exit(3);
        fill(k);
        return;
    }
    int purged = 0;
    if (vrange_mark_nonvolatile(block[k], BLK, &purged))
        exit(4);
    if (purged && mode != IGNORE)
        fill(k);   /* the data is gone: rebuild it */
}

static void put(int k)
{
    if (vrange_mark_volatile(block[k], BLK))
        exit(5);
    if (mode == TOUCH) {   /* the bug: writes into memory it just gave away */
        printf("touching %p\n", (void *)block[k]);
        fflush(stdout);
        *(char **)block[k] = free_list;
        free_list = block[k];
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    mode = !strcmp(argv[1], "touch") ? TOUCH : !strcmp(argv[1], "ignore") ? IGNORE : CORRECT;
    int rounds = argc > 2 ? atoi(argv[2]) : 4;
    int bad = 0;
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < NBLK; k++) {
            get(k);
            if (mode == TOUCH && r > 0)
                *(char **)block[k] = NULL;   /* undo the link before checking: not the bug under test */
            if (mode == TOUCH && r > 0)
                fill(k);
            bad += !intact(k);
            put(k);
        }
    printf("done bad=%d\n", bad);
    return bad ? 1 : 0;
}
