/* region.c - the supervisor's side of a program's in-process region
 * (region.h): mapping it, publishing the runs and flags the library
 * checks, and taking its log in order.  Python applies each entry to the
 * model before it consumes it (vr_region_consume), so an entry is either
 * applied with the answer the model gives, or was cancelled by its caller
 * first and is served as an ordinary call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/seccomp.h>

#include "vrnative.h"
#include "region.h"

struct vr_region *vr_region_map(int memfd)
{
    struct stat st;
    if (fstat(memfd, &st) || (size_t)st.st_size < sizeof(struct vr_region))
        return NULL;
    struct vr_region *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (r == MAP_FAILED)
        return NULL;
    if (r->magic != VR_REGION_MAGIC || r->size != sizeof *r) {   /* another build */
        munmap(r, sizeof *r);
        return NULL;
    }
    return r;
}

/* Lock `alive` for as long as we serve the region (this thread's robust
 * list makes the kernel mark it if we die). */
int vr_region_hold(struct vr_region *r)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&r->alive, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc ? -rc : -pthread_mutex_lock(&r->alive);
}

/* Unlocked first: the library then leaves every call to the trap, and
 * the robust list never points into unmapped memory. */
void vr_region_unmap(struct vr_region *r)
{
    if (r) {
        pthread_mutex_unlock(&r->alive);
        munmap(r, sizeof *r);
    }
}

void vr_region_set_flag(uint32_t *flag, int on)
{
    /* Sequentially consistent: a claim must be seen before the log is read
     * (the library publishes, then reads the claim: one of them sees the
     * other, see docs/design.md). */
    __atomic_store_n(flag, (uint32_t)on, __ATOMIC_SEQ_CST);
}

/* The runs a NONVOLATILE must not meet, under the seqlock `table_gen`.
 * Too many: `overflow`, and every NONVOLATILE goes to the supervisor. */
void vr_region_publish_runs(struct vr_region *r, const uint64_t *runs, int n)
{
    uint64_t gen = __atomic_load_n(&r->table_gen, __ATOMIC_RELAXED);
    __atomic_store_n(&r->table_gen, gen + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (n > VR_REGION_RUNS) {
        __atomic_store_n(&r->overflow, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&r->nruns, 0, __ATOMIC_RELAXED);
    } else {
        memcpy(r->runs, runs, 2 * (size_t)n * sizeof *runs);
        __atomic_store_n(&r->nruns, (uint32_t)n, __ATOMIC_RELAXED);
        __atomic_store_n(&r->overflow, 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&r->table_gen, gen + 2, __ATOMIC_RELEASE);
}

/* The entries published from the tail on, in order, without consuming
 * them (a cancelled one too), as VR_OP_WORDS words each: start, end,
 * position, flags (VR_OPF_*, the tid from bit 8). */
int vr_region_peek(struct vr_region *r, uint64_t *out, int max)
{
    uint64_t tail = r->tail;
    int n = 0;
    while (n < max) {
        uint32_t pos = (uint32_t)(tail + n);
        struct vr_cell c = vr_cell_load(&r->cells[pos % VR_REGION_CELLS]);
        int state = VR_CELL_STATE(c.w0);
        if (VR_CELL_POS(c.w0) != pos || state == VR_CELL_FREE)
            break;
        uint64_t *op = &out[VR_OP_WORDS * n++];
        op[0] = VR_CELL_FIRST(c.w1) * 4096;
        op[1] = op[0] + VR_CELL_PAGES(c.w1) * 4096;
        op[2] = pos;
        op[3] = (c.w0 & VR_CELL_VOLATILE ? VR_OPF_VOLATILE : 0) |
                (c.w0 & VR_CELL_PARTIAL ? VR_OPF_PARTIAL : 0) |
                (state == VR_CELL_CANCELLED ? VR_OPF_CANCELLED : 0) |
                ((uint64_t)VR_CELL_TID(c.w0) << 8);
    }
    return n;
}

/* 1 if an entry waits at the tail (published or cancelled, not consumed). */
int vr_region_pending(struct vr_region *r)
{
    uint32_t pos = (uint32_t)r->tail;
    struct vr_cell c = vr_cell_load(&r->cells[pos % VR_REGION_CELLS]);
    return VR_CELL_POS(c.w0) == pos && VR_CELL_STATE(c.w0) != VR_CELL_FREE;
}

/* Consume the entry at the tail (`pos`): 1 if it was still published (the
 * caller applies it; `answer` is what its cancel would have read), 0 if it
 * was cancelled (the caller asks the supervisor instead), -EINVAL if `pos`
 * is not the tail's entry. */
int vr_region_consume(struct vr_region *r, uint32_t pos, int answer)
{
    if (pos != (uint32_t)r->tail)
        return -EINVAL;
    struct vr_cell *cell = &r->cells[pos % VR_REGION_CELLS];
    struct vr_cell seen = vr_cell_load(cell);
    for (;;) {
        int state = VR_CELL_STATE(seen.w0);
        if (VR_CELL_POS(seen.w0) != pos || state == VR_CELL_FREE)
            return -EINVAL;
        int applied = state == VR_CELL_PUBLISHED;
        struct vr_cell freed = {
            VR_CELL_W0(VR_CELL_FREE, applied && answer ? VR_CELL_ANSWER : 0, 0,
                       pos + VR_REGION_CELLS), 0 };
        if (vr_cell_cas(cell, &seen, freed)) {
            __atomic_store_n(&r->tail, r->tail + 1, __ATOMIC_RELEASE);
            return applied;
        }
    }
}
