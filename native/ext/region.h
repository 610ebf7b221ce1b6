/* region.h - the memory a program's in-process library (native/inproc/
 * inproc.c) shares with the supervisor (native/ext/region.c), one per
 * address space.  Both sides include this file; cffi does not parse it.
 *
 * The library answers calls in the calling thread and logs each in a cell
 * of a ring; the supervisor applies the ring to its model (the authority)
 * and publishes here what the library must not answer alone: a purge under
 * way (claim), locks to check, the runs a NONVOLATILE must not meet
 * (purged pages and SIGBUS-trapped spans) and the RSS budget's deadline.
 * docs/design.md "The in-process path" gives the protocol and its proof.
 * Include vrnative.h (after <linux/seccomp.h>) first: it has no guard.
 */
#ifndef VR_REGION_H
#define VR_REGION_H
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/ioctl.h>

#define VR_REGION_MAGIC 0x316e6f6967657276ULL   /* "vregion1" */
#ifndef VR_REGION_CELLS   /* also in vrnative.h, for Python */
#define VR_REGION_CELLS 4096      /* a power of two */
#endif
#define VR_REGION_RUNS 16384      /* runs the table holds; more: `overflow` */
#ifndef VR_HELLO_MODE   /* also in vrnative.h, for Python */
#define VR_HELLO_MODE 0x76720001  /* vrange(memfd, eventfd, VR_HELLO_MODE): attach me */
#endif
/* The sixth argument of every call the library makes itself (hello, or a
 * call it leaves to the supervisor): the supervisor drains the ring first. */
#ifndef VR_BARRIER_MODE
#define VR_BARRIER_MODE 0x76720002  /* answered once the signals sent before it are handled */
#endif
#ifndef VR_ESCAPE_ARG
#define VR_ESCAPE_ARG 0x7672657363617065
#endif

/* A cell is 16 bytes, changed only by 16-byte compare-and-swap.
 * w0: state (2 bits) | volatile (1) | partial (1) | answer (1) | 3 spare |
 *     tid (24 bits, from bit 8) | position in the log (32 bits, from bit 32)
 * w1: first page (36 bits) | pages (28 bits, from bit 36)
 * FREE with position p: the cell takes entry p next.  PUBLISHED: entry p,
 * not applied yet.  CANCELLED: its caller took it back and asks the
 * supervisor instead.  Once applied (or skipped, if cancelled) the cell is
 * FREE for p + VR_REGION_CELLS, with `answer` the purged flag it applied. */
#define VR_CELL_FREE 0
#define VR_CELL_PUBLISHED 1
#define VR_CELL_CANCELLED 2
#define VR_CELL_STATE(w0) ((w0) & 3)
#define VR_CELL_VOLATILE 4
#define VR_CELL_PARTIAL 8
#define VR_CELL_ANSWER 16
#define VR_CELL_TID(w0) ((uint32_t)((w0) >> 8) & 0xffffff)
#define VR_CELL_POS(w0) ((uint32_t)((w0) >> 32))
#define VR_CELL_W0(state, flags, tid, pos) \
    ((uint64_t)(state) | (flags) | ((uint64_t)((tid) & 0xffffff) << 8) | ((uint64_t)(uint32_t)(pos) << 32))
#define VR_CELL_MAX_PAGES ((1ULL << 28) - 1)
#define VR_CELL_W1(first, pages) ((uint64_t)(first) | ((uint64_t)(pages) << 36))
#define VR_CELL_FIRST(w1) ((w1) & ((1ULL << 36) - 1))
#define VR_CELL_PAGES(w1) ((w1) >> 36)

struct vr_cell {
    uint64_t w0, w1;
} __attribute__((aligned(16)));

struct vr_region {
    uint64_t magic;
    uint32_t size;            /* sizeof (struct vr_region) as the library built it */
    uint32_t ready;           /* 1 once the supervisor filled in what follows */
    /* Locked by the supervisor's main thread while it serves the region: a
     * robust mutex, so the kernel marks it FUTEX_OWNER_DIED if vrange-run
     * dies, and the library leaves every call to the trap (ENOSYS). */
    pthread_mutex_t alive;
    struct vr_fast_profile profile;   /* the call's layout, written at attach */
    /* Written by the supervisor, read by the library. */
    uint32_t claim;           /* a purge is under way: NONVOLATILE goes to it */
    uint32_t lock_check;      /* the space locked memory: VOLATILE goes to it */
    uint64_t budget_deadline; /* nonzero: from this CLOCK_MONOTONIC ns calls go to it */
    uint64_t table_gen;       /* odd while `runs` changes (a seqlock) */
    uint32_t nruns;
    uint32_t overflow;        /* the runs did not fit: NONVOLATILE goes to it */
    uint64_t tail;            /* the first entry not applied yet (supervisor) */
    uint64_t head;            /* where the next entry goes, or just before (library) */
    uint32_t wake_pending;    /* the library wrote its eventfd; cleared once drained */
    uint32_t spare;
    /* Kept by the library (relaxed adds), read for --stats. */
    uint64_t served, escaped, cancelled;
    struct vr_cell cells[VR_REGION_CELLS];
    uint64_t runs[2 * VR_REGION_RUNS];   /* sorted, disjoint (start, end) */
};

/* Decode a call's arguments as the profile says (abi.Profile.decode).
 * 1: the arguments are valid and the mode known, `out` holds what is asked;
 * 0: not for the native path (Python decides, e.g. answers EINVAL).
 * Inlined into fastpath.c's serve_one and the in-process library's serve
 * (the hot paths); exported as vr_fast_decode, which
 * tests/test_native_decode.py checks against abi.py. */
static inline int vr_decode(const struct vr_fast_profile *p, const uint64_t args[6],
                            struct vr_fast_call *out)
{
    uint64_t start = args[0];
    uint64_t len = args[1] & ~(4096ULL - 1);
    uint32_t mode = (uint32_t)args[2];
    int volatile_ = mode == (uint32_t)p->mode_volatile;
    int partial = 0;
    if (!volatile_ && mode != (uint32_t)p->mode_nonvolatile)
        return 0;
    if (p->flags_arg >= 0) {
        uint32_t flags = (uint32_t)args[p->flags_arg];
        if (flags & ~p->allowed_flags)
            return 0;
        partial = flags & 1;
    }
    if (p->behavior_arg >= 0) {
        uint32_t behavior = (uint32_t)args[p->behavior_arg];
        if (behavior > 1)
            return 0;
        partial = behavior == 1;
    }
    if ((start & (4096ULL - 1)) || len == 0 || start + len > p->user_end || start + len < start)
        return 0;
    out->start = start;
    out->len = len;
    out->purged_ptr = p->purged_arg >= 0 ? args[p->purged_arg] : 0;
    out->is_volatile = volatile_;
    out->partial = partial;
    return 1;
}

#define VR_PROCMAP_QUERY _IOWR('f', 17, struct vr_vma)

/* PROCMAP_QUERY on a maps fd: the VMA covering `addr`, or the next one;
 * with `name`, its name too.  0 or -errno.  (vrnative.c's vr_vma_query for
 * Python; fastpath.c and the in-process library inline it.) */
static inline int vr_vma_at(int maps_fd, uint64_t addr, struct vr_vma *q, char *name,
                            uint32_t name_size)
{
    memset(q, 0, sizeof *q);
    q->size = sizeof *q;
    q->query_flags = VR_VMA_COVERING_OR_NEXT;
    q->query_addr = addr;
    if (name) {
        q->vma_name_addr = (uint64_t)(uintptr_t)name;
        q->vma_name_size = name_size;
        name[0] = 0;
    }
    return ioctl(maps_fd, VR_PROCMAP_QUERY, q) ? -errno : 0;
}

/* 1 if [start, end) is covered by private, writable, anonymous 4 KiB-page
 * mappings (what needs no decision), 0 if not or unsure. */
static inline int vr_plain_anon(int maps_fd, uint64_t start, uint64_t end)
{
    struct vr_vma q;
    for (uint64_t at = start; at < end; at = q.vma_end) {
        if (vr_vma_at(maps_fd, at, &q, NULL, 0) || q.vma_start > at)
            return 0;
        if ((q.vma_flags & 8) || !(q.vma_flags & 2) || q.inode || q.vma_page_size != 4096)
            return 0;
    }
    return 1;
}

/* The supervisor still holds `alive` (glibc's futex word comes first). */
static inline int vr_region_served(struct vr_region *r)
{
    uint32_t word = __atomic_load_n((uint32_t *)&r->alive, __ATOMIC_ACQUIRE);
    return (word & FUTEX_TID_MASK) && !(word & FUTEX_OWNER_DIED);
}

/* 16-byte compare-and-swap: 1 if *c held *expected (now `desired`), else
 * 0 with *expected set to what it held.  A read is a CAS expecting 0. */
static inline int vr_cell_cas(struct vr_cell *c, struct vr_cell *expected,
                              struct vr_cell desired)
{
    uint8_t ok;
    __asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
                         : "=q"(ok), "+m"(*c), "+a"(expected->w0), "+d"(expected->w1)
                         : "b"(desired.w0), "c"(desired.w1)
                         : "memory", "cc");
    return ok;
}

/* Both words, w0 first: a cell changes only by a 16-byte CAS and x86 keeps
 * loads in order, so w1 is as new as w0 or newer; a stale pair only makes
 * the CAS that follows fail. */
static inline struct vr_cell vr_cell_load(struct vr_cell *c)
{
    struct vr_cell seen;
    seen.w0 = __atomic_load_n(&c->w0, __ATOMIC_ACQUIRE);
    seen.w1 = __atomic_load_n(&c->w1, __ATOMIC_ACQUIRE);
    return seen;
}

/* The supervisor's side (region.c), for fastpath.c. */
struct vr_region *vr_region_map(int memfd);
int vr_region_hold(struct vr_region *r);
void vr_region_unmap(struct vr_region *r);
void vr_region_publish_runs(struct vr_region *r, const uint64_t *runs, int n);
void vr_region_set_flag(uint32_t *flag, int on);
int vr_region_peek(struct vr_region *r, uint64_t *out, int max);
int vr_region_pending(struct vr_region *r);
int vr_region_consume(struct vr_region *r, uint32_t pos, int answer);

#endif
