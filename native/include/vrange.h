/* vrange.h - client side of the emulated vrange() system call.
 *
 * Run the program under `vrange-run` (see docs/vrange.2.md).  Outside it the
 * call fails with ENOSYS (native profile) or runs the real syscall that owns
 * the old number (v7/v10: 314 sched_setattr, v12: 316 renameat2), so only use
 * the old profiles under vrange-run.
 *
 * Choose the ABI before including this header (default: native):
 *   #define VRANGE_ABI VRANGE_ABI_V10
 */
#ifndef VRANGE_H
#define VRANGE_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define VRANGE_ABI_NATIVE 0
#define VRANGE_ABI_V7 7
#define VRANGE_ABI_V10 10
#define VRANGE_ABI_V12 12
#ifndef VRANGE_ABI
#define VRANGE_ABI VRANGE_ABI_NATIVE
#endif

/* The native number: assigned to nothing by any kernel.  vrange-run exports
 * VRANGE_SYSCALL_NR to the program, so `--syscall-nr N` needs no rebuild. */
#define VRANGE_NR_NATIVE 1000

#if VRANGE_ABI == VRANGE_ABI_NATIVE
/* ssize_t vrange(start, len, mode, flags, int *purged): bytes processed. */
#define VRANGE_NONVOLATILE 0
#define VRANGE_VOLATILE 1
#define VRANGE_PARTIAL 1   /* flag: a purge may take single pages, not the whole range */

static inline long vrange_nr(void)
{
    static long nr;
    if (!nr) {
        const char *env = getenv("VRANGE_SYSCALL_NR");
        nr = env && *env ? strtol(env, NULL, 0) : VRANGE_NR_NATIVE;
    }
    return nr;
}

static inline ssize_t vrange(unsigned long start, size_t len, int mode,
                             unsigned int flags, int *purged)
{
    return syscall(vrange_nr(), start, len, mode, flags, purged);
}

#elif VRANGE_ABI == VRANGE_ABI_V7
/* int vrange(start, len, mode, behavior): 0 = nothing purged, 1 = purged. */
#define VRANGE_NR 314
#define VRANGE_VOLATILE 0
#define VRANGE_NOVOLATILE 1
#define VRANGE_NONVOLATILE VRANGE_NOVOLATILE
#define VRANGE_FULL 0
#define VRANGE_PARTIAL 1

static inline int vrange(unsigned long start, size_t len, int mode, int behavior)
{
    return (int)syscall(VRANGE_NR, start, len, mode, behavior);
}

#elif VRANGE_ABI == VRANGE_ABI_V10
/* ssize_t vrange(start, len, mode, int *purged): bytes processed. */
#define VRANGE_NR 314
#define VRANGE_VOLATILE 0
#define VRANGE_NONVOLATILE 1

static inline ssize_t vrange(unsigned long start, size_t len, int mode, int *purged)
{
    return syscall(VRANGE_NR, start, len, mode, purged);
}

#elif VRANGE_ABI == VRANGE_ABI_V12
/* ssize_t vrange(start, len, mode, flags, int *purged): bytes processed.
 * Note the flipped constants and that flags must be 0. */
#define VRANGE_NR 316
#define VRANGE_NONVOLATILE 0
#define VRANGE_VOLATILE 1

static inline ssize_t vrange(unsigned long start, size_t len, int mode,
                             unsigned int flags, int *purged)
{
    return syscall(VRANGE_NR, start, len, mode, flags, purged);
}

#else
#error "VRANGE_ABI must be VRANGE_ABI_NATIVE, _V7, _V10 or _V12"
#endif

/* ABI-neutral helpers: 0 on success, -1 with errno on failure.  A short
 * count (a locked mapping stopped the walk) is reported as -1/EAGAIN after
 * rolling back, as the jemalloc port did. */
static inline int vrange_mark_volatile(void *addr, size_t len)
{
#if VRANGE_ABI == VRANGE_ABI_V7
    return vrange((unsigned long)addr, len, VRANGE_VOLATILE, VRANGE_FULL) < 0 ? -1 : 0;
#else
#if VRANGE_ABI == VRANGE_ABI_V10
    ssize_t done = vrange((unsigned long)addr, len, VRANGE_VOLATILE, NULL);
#else
    ssize_t done = vrange((unsigned long)addr, len, VRANGE_VOLATILE, 0, NULL);
#endif
    if (done < 0)
        return -1;
    if ((size_t)done < (len & ~(size_t)4095)) {
        int purged;
#if VRANGE_ABI == VRANGE_ABI_V10
        vrange((unsigned long)addr, (size_t)done, VRANGE_NONVOLATILE, &purged);
#else
        vrange((unsigned long)addr, (size_t)done, VRANGE_NONVOLATILE, 0, &purged);
#endif
        errno = EAGAIN;
        return -1;
    }
    return 0;
#endif
}

/* Re-pin; *purged (may be NULL) is set to 1 if any page was discarded. */
static inline int vrange_mark_nonvolatile(void *addr, size_t len, int *purged)
{
#if VRANGE_ABI == VRANGE_ABI_V7
    int r = vrange((unsigned long)addr, len, VRANGE_NOVOLATILE, VRANGE_FULL);
    if (r < 0)
        return -1;
    if (purged)
        *purged = r;
    return 0;
#elif VRANGE_ABI == VRANGE_ABI_V10
    return vrange((unsigned long)addr, len, VRANGE_NONVOLATILE, purged) < 0 ? -1 : 0;
#else
    return vrange((unsigned long)addr, len, VRANGE_NONVOLATILE, 0, purged) < 0 ? -1 : 0;
#endif
}

#endif /* VRANGE_H */
