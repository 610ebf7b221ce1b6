/* inproc.c - vrange answered inside the program (LD_PRELOAD by vrange-run).
 *
 * The library defines syscall(): a call of the vrange number that needs no
 * decision (valid arguments, private anonymous memory, no lock check due,
 * no purged page or SIGBUS-trapped span met, no purge under way, below the
 * RSS budget) is answered here, in the calling thread, and logged in the
 * region this process shares with the supervisor (native/ext/region.h).
 * Everything else, and every inline `syscall` instruction, reaches the
 * supervisor as before (seccomp user notification); the supervisor applies
 * the log before it serves such a call.  The region is made at the first
 * call (the "hello"), so a program that never calls vrange pays nothing.
 *
 * A NONVOLATILE racing a purge: the library publishes its entry, then reads
 * the claim; the supervisor sets the claim, then reads the log.  If the
 * library sees a claim (or a purged run), it cancels its entry and asks the
 * supervisor; a cancel that comes too late reads the answer the supervisor
 * applied.  docs/design.md, "The in-process path", has the argument.
 *
 * A purge asked of vrange-run (SIGUSR1 to VRANGE_SUPERVISOR_PID, through
 * kill() or syscall(SYS_kill)) is done before the sender's next call, as
 * on the trap path: once the signal is sent, a barrier call waits for the
 * supervisor, which handles signals before calls.
 *
 * fork: the state page is MADV_WIPEONFORK and the region MADV_DONTFORK, so
 * a child starts over with a hello of its own; vfork and CLONE_VM children
 * share the parent's memory but are another process, so their calls take
 * the trap (getpid() each call).  exec: a new image, a new library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <linux/seccomp.h>

#include "../ext/vrnative.h"
#include "../ext/region.h"

#define PAGE 4096ULL
#define EXPORT __attribute__((visibility("default")))

/* On a MADV_WIPEONFORK page: a forked child reads zeros and starts over. */
struct local {
    int state;                 /* STATE_* */
    int maps_fd;               /* /proc/self/maps, for PROCMAP_QUERY */
    int efd;                   /* wakes the supervisor when the log fills */
    int pid;                   /* the process this page is for (0: a forked child's) */
    struct vr_region *region;
};
enum { STATE_NONE, STATE_HELLO, STATE_ATTACHED, STATE_OFF };

static struct local *local;          /* MADV_WIPEONFORK */
static long vr_nr = -1;              /* -1: the library is off */
static int inherited[2] = { -1, -1 };   /* fds a fork child closes at its hello */
static __thread int tid_cached, tid_pid;
/* The main thread's stack mapping, as this thread found it at its first
 * call (end 1: not on it); a forked child runs on the same addresses. */
static __thread uint64_t main_stack_lo, main_stack_end;

static long raw6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

/* As little as can be: every exec'd program loads the library, and most
 * never call vrange (no malloc here: pthread_atfork alone cost 12 us a
 * process).  The state page is wiped in a fork child, so a child sees a
 * zero pid and says hello itself, while a vfork child, which shares the
 * page, sees its parent's pid. */
__attribute__((constructor)) static void inproc_init(void)
{
    const char *nr = getenv("VRANGEEMU_INPROC_NR");
    if (!nr || !*nr)
        return;
    struct local *l = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
    if (l == MAP_FAILED)
        return;
    if (madvise(l, PAGE, MADV_WIPEONFORK)) {   /* Linux < 4.14: off */
        munmap(l, PAGE);
        return;
    }
    l->pid = getpid();
    local = l;
    vr_nr = strtol(nr, NULL, 10);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static int writable_int(int fd, uint64_t addr)
{
    /* Most callers pass an int on their stack.  On the main thread's stack
     * ("[stack]": it never moves, and grows only downwards) every byte from
     * our stack pointer to the mapping's end is mapped and writable, so once
     * that end is known such a pointer needs no query. */
    uint64_t sp = (uint64_t)(uintptr_t)__builtin_frame_address(0);
    struct vr_vma q;
    if (main_stack_end == 0) {
        char name[16];
        main_stack_end = 1;   /* looked: not on it */
        if (!vr_vma_at(fd, sp, &q, name, sizeof name) && q.vma_start <= sp &&
            !strcmp(name, "[stack]"))
            main_stack_lo = q.vma_start, main_stack_end = q.vma_end;
    }
    if (main_stack_lo <= sp && sp <= addr && addr + 4 <= main_stack_end)
        return 1;
    return !vr_vma_at(fd, addr, &q, NULL, 0) && q.vma_start <= addr && addr + 4 <= q.vma_end &&
           (q.vma_flags & 2);
}

/* 1 if [start, end) meets a run the supervisor published, or the table
 * cannot be read consistently (then it asks: never a wrong "no"). */
static int meets_runs(struct vr_region *r, uint64_t start, uint64_t end)
{
    uint64_t gen = __atomic_load_n(&r->table_gen, __ATOMIC_ACQUIRE);
    if ((gen & 1) || __atomic_load_n(&r->overflow, __ATOMIC_RELAXED))
        return 1;
    uint32_t n = __atomic_load_n(&r->nruns, __ATOMIC_RELAXED);
    if (n > VR_REGION_RUNS)
        return 1;
    uint32_t lo = 0, hi = n;   /* the first run whose end > start */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (__atomic_load_n(&r->runs[2 * mid + 1], __ATOMIC_RELAXED) > start)
            hi = mid;
        else
            lo = mid + 1;
    }
    int meets = lo < n && __atomic_load_n(&r->runs[2 * lo], __ATOMIC_RELAXED) < end;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return meets || __atomic_load_n(&r->table_gen, __ATOMIC_RELAXED) != gen;
}


/* The first call: make the region and ask the supervisor to attach it.
 * 0 if the library cannot serve (another thread is saying hello, or the
 * supervisor said no): the call goes to the supervisor. */
static int hello(struct local *l)
{
    int me = getpid();
    if (l->pid && l->pid != me)
        return 0;   /* a vfork child: the page is its parent's */
    l->pid = me;
    for (int i = 0; i < 2; i++)   /* a fork child's copies of its parent's fds */
        if (inherited[i] >= 0) {
            close(inherited[i]);
            inherited[i] = -1;
        }
    int expected = STATE_NONE;
    if (!__atomic_compare_exchange_n(&l->state, &expected, STATE_HELLO, 0,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    struct vr_region *r = MAP_FAILED;
    int memfd = memfd_create("vrange-inproc", MFD_CLOEXEC);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (memfd >= 0 && efd >= 0 && maps >= 0 && !ftruncate(memfd, sizeof *r))
        r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    long rc = -1;
    if (r != MAP_FAILED && !madvise(r, sizeof *r, MADV_DONTFORK)) {
        r->magic = VR_REGION_MAGIC;
        r->size = sizeof *r;
        for (uint32_t i = 0; i < VR_REGION_CELLS; i++)
            r->cells[i].w0 = VR_CELL_W0(VR_CELL_FREE, 0, 0, i);
        rc = raw6(vr_nr, memfd, efd, VR_HELLO_MODE, 0, 0, (long)VR_ESCAPE_ARG);
    }
    if (memfd >= 0)
        close(memfd);   /* the mappings keep it */
    if (rc || r == MAP_FAILED || !__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE)) {
        if (r != MAP_FAILED)
            munmap(r, sizeof *r);
        if (efd >= 0)
            close(efd);
        if (maps >= 0)
            close(maps);
        __atomic_store_n(&l->state, STATE_OFF, __ATOMIC_RELEASE);
        return 0;
    }
    l->region = r;
    l->maps_fd = inherited[0] = maps;
    l->efd = inherited[1] = efd;
    __atomic_store_n(&l->state, STATE_ATTACHED, __ATOMIC_RELEASE);
    return 1;
}

static int my_tid(struct local *l)
{
    if (tid_pid != l->pid) {   /* a new thread, or the first call since a fork */
        tid_cached = (int)raw6(SYS_gettid, 0, 0, 0, 0, 0, 0);
        tid_pid = l->pid;
    }
    return tid_cached;
}

static void wake(struct local *l, struct vr_region *r)
{
    if (!__atomic_exchange_n(&r->wake_pending, 1, __ATOMIC_ACQ_REL)) {
        uint64_t one = 1;
        if (write(l->efd, &one, sizeof one) < 0) { /* EAGAIN: already woken */ }
    }
}

/* Publish an entry: 1 with the cell as written, 0 if the log stayed full
 * for FULL_WAIT_NS (the supervisor is woken and drains on the other CPU;
 * napping here costs less than the call it would otherwise have to serve
 * after draining everything). */
#define FULL_WAIT_NS 2000000ULL
static int publish(struct local *l, struct vr_region *r, uint64_t w0_flags, int tid,
                   uint64_t w1, uint32_t *pos_out, struct vr_cell *mine)
{
    uint64_t waited_since = 0;
    for (int tries = 0; tries < 1 << 20; tries++) {   /* a region scribbled over: give up */
        uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        uint32_t pos = (uint32_t)head;
        struct vr_cell *cell = &r->cells[pos % VR_REGION_CELLS];
        struct vr_cell seen = vr_cell_load(cell);
        uint32_t at = VR_CELL_POS(seen.w0);
        if (at == pos && VR_CELL_STATE(seen.w0) == VR_CELL_FREE) {
            struct vr_cell entry = { VR_CELL_W0(VR_CELL_PUBLISHED, w0_flags, tid, pos), w1 };
            if (vr_cell_cas(cell, &seen, entry)) {
                __atomic_compare_exchange_n(&r->head, &head, head + 1, 0,
                                            __ATOMIC_RELEASE, __ATOMIC_RELAXED);
                *pos_out = pos;
                *mine = entry;
                return 1;
            }
        } else if (at == pos) {   /* taken, head not moved on yet: help */
            __atomic_compare_exchange_n(&r->head, &head, head + 1, 0,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED);
        } else if ((uint32_t)(pos - at) == VR_REGION_CELLS) {
            /* Still holds the entry one lap back: full. */
            uint64_t now = now_ns();
            if (!waited_since) {
                waited_since = now;
                wake(l, r);
            } else if (now - waited_since > FULL_WAIT_NS) {
                return 0;
            }
            struct timespec nap = { 0, 20000 };   /* not a spin on the cells it drains */
            nanosleep(&nap, NULL);
        }   /* else `head` was stale: read it again */
    }
    return 0;
}

/* Take entry `pos` back.  1 if cancelled (ask the supervisor), 0 if it was
 * applied first: *purged is the answer it was applied with. */
static int cancel(struct vr_region *r, uint32_t pos, struct vr_cell mine, int *purged)
{
    struct vr_cell *cell = &r->cells[pos % VR_REGION_CELLS];
    struct vr_cell seen = mine;
    struct vr_cell cancelled = { (mine.w0 & ~3ULL) | VR_CELL_CANCELLED, mine.w1 };
    if (vr_cell_cas(cell, &seen, cancelled))
        return 1;
    if (VR_CELL_STATE(seen.w0) == VR_CELL_FREE &&
        VR_CELL_POS(seen.w0) == (uint32_t)(pos + VR_REGION_CELLS))
        *purged = !!(seen.w0 & VR_CELL_ANSWER);
    else
        *purged = 1;   /* applied, and its cell reused since: "purged" is never wrong */
    return 0;
}

/* Serve one vrange call here: 1 with *ret its return value, 0 if the
 * supervisor must (nothing was changed). */
static int serve(const long a[6], long *ret)
{
    struct local *l = local;
    int state = __atomic_load_n(&l->state, __ATOMIC_ACQUIRE);
    if (state != STATE_ATTACHED && (state != STATE_NONE || !hello(l)))
        return 0;
    struct vr_region *r = l->region;
    if (!vr_region_served(r))   /* vrange-run is gone: ENOSYS, as on the trap path */
        return 0;
    /* A vfork (or CLONE_VM) child shares this memory but not our fds. */
    if (raw6(SYS_getpid, 0, 0, 0, 0, 0, 0) != l->pid)
        return 0;
    struct vr_fast_call call;
    if (!vr_decode(&r->profile, (const uint64_t *)a, &call) || call.len / PAGE > VR_CELL_MAX_PAGES)
        return 0;
    int volatile_ = call.is_volatile, partial = call.partial;
    uint64_t start = call.start, len = call.len, end = start + len, ptr = call.purged_ptr;
    uint64_t deadline = __atomic_load_n(&r->budget_deadline, __ATOMIC_ACQUIRE);
    if (deadline && now_ns() >= deadline)
        return 0;   /* at the RSS budget's mark: the supervisor purges first */
    /* While a purge is under way every call takes the trap: a re-pin must
     * settle with it, and the program may not outrun it (the native loop
     * then serves a call between slices of the purge, as for any program,
     * instead of vrange-run applying a log that grows faster than it
     * purges). */
    if (__atomic_load_n(&r->claim, __ATOMIC_ACQUIRE))
        return 0;
    if (volatile_ ? (int)__atomic_load_n(&r->lock_check, __ATOMIC_ACQUIRE)
                  : meets_runs(r, start, end))
        return 0;
    if (!vr_plain_anon(l->maps_fd, start, end))
        return 0;
    if (ptr && ((ptr & 3) || meets_runs(r, ptr & ~(PAGE - 1), ptr + 4) ||
                (!(start <= ptr && ptr + 4 <= end) && !writable_int(l->maps_fd, ptr))))
        return 0;
    uint32_t pos;
    struct vr_cell mine;
    uint64_t flags = (volatile_ ? VR_CELL_VOLATILE : 0) | (partial ? VR_CELL_PARTIAL : 0);
    if (!publish(l, r, flags, my_tid(l), VR_CELL_W1(start / PAGE, len / PAGE), &pos, &mine))
        return 0;
    int purged = 0;
    if (!volatile_) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);   /* publish, then read the claim */
        if (__atomic_load_n(&r->claim, __ATOMIC_SEQ_CST) || meets_runs(r, start, end)) {
            if (cancel(r, pos, mine, &purged)) {
                __atomic_fetch_add(&r->cancelled, 1, __ATOMIC_RELAXED);
                return 0;
            }
        }
    }
    if (ptr)
        *(volatile int *)(uintptr_t)ptr = purged;
    *ret = r->profile.returns_purged ? purged : (long)len;
    __atomic_fetch_add(&r->served, 1, __ATOMIC_RELAXED);
    /* Half the log waits: wake the supervisor, once until it has drained. */
    if (pos - (uint32_t)__atomic_load_n(&r->tail, __ATOMIC_RELAXED) >= VR_REGION_CELLS / 2)
        wake(l, r);
    return 1;
}

/* After a SIGUSR1 to vrange-run: wait until it has handled it. */
static void barrier(long pid, long sig, long rc)
{
    struct local *l = __atomic_load_n(&local, __ATOMIC_ACQUIRE);
    if (rc || sig != SIGUSR1 || vr_nr < 0 || !l ||
        __atomic_load_n(&l->state, __ATOMIC_ACQUIRE) != STATE_ATTACHED)
        return;
    const char *sup = getenv("VRANGE_SUPERVISOR_PID");
    if (pid != (sup ? atol(sup) : (long)getppid()))
        return;
    int saved = errno;
    raw6(vr_nr, 0, 0, VR_BARRIER_MODE, 0, 0, (long)VR_ESCAPE_ARG);
    errno = saved;
}

EXPORT int kill(pid_t pid, int sig)
{
    long rc = raw6(SYS_kill, pid, sig, 0, 0, 0, 0);
    barrier(pid, sig, rc);
    if (rc < 0) {
        errno = (int)-rc;
        return -1;
    }
    return 0;
}

EXPORT long syscall(long nr, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    long rc;
    if (nr == vr_nr && vr_nr >= 0) {
        int saved = errno;
        if (serve(a, &rc)) {
            errno = saved;
            return rc;
        }
        struct local *l = __atomic_load_n(&local, __ATOMIC_ACQUIRE);
        if (l && __atomic_load_n(&l->state, __ATOMIC_ACQUIRE) == STATE_ATTACHED)
            __atomic_fetch_add(&l->region->escaped, 1, __ATOMIC_RELAXED);
        a[5] = (long)VR_ESCAPE_ARG;   /* no vrange ABI has a sixth argument */
    }
    rc = raw6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (nr == SYS_kill)
        barrier(a[0], a[1], rc);
    if ((unsigned long)rc > -4096UL) {
        errno = (int)-rc;
        return -1;
    }
    return rc;
}
