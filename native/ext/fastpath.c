/* fastpath.c - the native receive/answer loop for the common vrange call.
 *
 * A call the model would answer with "done, nothing purged" needs no
 * policy: the arguments are valid, the range is private anonymous memory,
 * VOLATILE finds no locked mapping (the space never locked memory) and
 * NONVOLATILE meets no purged page and no span of the SIGBUS trap (which
 * Python must end before answering).  Such calls are answered here and
 * logged; Python applies the log to its model (calls.apply) as soon as the
 * loop returns, before anything else reads the model.  Every other call is
 * handed back unanswered, so Python decides exactly as before.
 *
 * State mirrored from Python, per address space ("slot"): the maps fd for
 * PROCMAP_QUERY, whether VOLATILE must check locks, and the runs where
 * NONVOLATILE needs Python ("purged": purged pages and trapped spans,
 * model/trap.py repin_checked); under an RSS budget (no cgroup), its statm
 * fd and resident pages as last seen.
 * The RSS budget's checkpoint: while a budget is set, a call is handed back
 * unanswered when the caller's resident pages, read now, and the others' as
 * last seen reach the budget's high mark, so that Python purges before
 * answering it: the program's own calls are the checkpoints.
 * Calls that lock memory (trapped by the filter, see vrnative.c) are let
 * through here and logged, setting the slot's lock check first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "vrnative.h"
#include "region.h"

#define PAGE 4096ULL
#define MAX_FDS 16
/* The fastest a process is assumed to fault memory in (64 GiB/s, in bytes
 * per ns): until it could have used up the headroom below the high mark at
 * that rate, its last statm reading stands and no call pays for a new one. */
#define RSS_BYTES_PER_NS 68

struct slot {
    int maps_fd;        /* -1: slot unused */
    int lock_check;
    int repin_all;      /* every NONVOLATILE needs Python (a purge is under way) */
    int npurged;
    int cap;
    uint64_t *purged;   /* npurged (start, end) pairs, sorted, disjoint */
    int statm_fd;       /* /proc/TGID/statm, read while a budget is set */
    uint64_t rss_seen;  /* resident pages at the last reading ... */
    uint64_t seen_ns;   /* ... and when (0: not read yet) */
    struct vr_region *region;   /* the in-process library's, or NULL (region.c) */
};

static struct slot *slots;
static int nslots;
static int32_t *slot_of_tid;   /* tid -> slot + 1, 0 if unknown */
static long max_tid;
static uint64_t budget_high;   /* resident pages that hand calls back; 0: no budget */
static uint64_t budget_seen;   /* the sum of every slot's rss_seen */

static void region_sync(struct slot *s);
static void region_runs(struct slot *s);
static void region_deadlines(void);

int vr_fast_init(void)
{
    if (slot_of_tid)
        return 0;
    max_tid = 4194304;   /* PID_MAX_LIMIT on 64-bit; calloc leaves it untouched */
    FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
    if (f) {
        if (fscanf(f, "%ld", &max_tid) != 1)
            max_tid = 4194304;
        fclose(f);
    }
    slot_of_tid = calloc(max_tid + 1, sizeof *slot_of_tid);
    return slot_of_tid ? 0 : -ENOMEM;
}

int vr_fast_slot(int slot, int maps_fd, int lock_check)
{
    if (slot < 0)
        return -EINVAL;
    if (slot >= nslots) {
        int n = slot < 16 ? 16 : slot * 2;
        struct slot *grown = realloc(slots, n * sizeof *slots);
        if (!grown)
            return -ENOMEM;
        for (int i = nslots; i < n; i++)
            grown[i] = (struct slot){ -1, 0, 0, 0, 0, NULL, -1, 0, 0, NULL };
        slots = grown;
        nslots = n;
    }
    if (maps_fd < 0)   /* the space is gone */
        vr_fast_detach(slot);
    slots[slot].maps_fd = maps_fd;
    slots[slot].lock_check = lock_check;
    slots[slot].repin_all = 0;
    slots[slot].npurged = 0;
    budget_seen -= slots[slot].rss_seen;
    slots[slot].statm_fd = -1;
    slots[slot].rss_seen = slots[slot].seen_ns = 0;
    region_sync(&slots[slot]);
    return 0;
}

static uint64_t now_ns(void);

void vr_fast_set_budget(uint64_t high_pages)
{
    budget_high = high_pages;
    region_deadlines();
}

int vr_fast_set_rss(int slot, int statm_fd, int64_t rss_pages)
{
    if (slot < 0 || slot >= nslots)
        return -EINVAL;
    struct slot *s = &slots[slot];
    uint64_t seen = rss_pages < 0 ? 0 : (uint64_t)rss_pages;
    budget_seen += seen - s->rss_seen;
    s->statm_fd = statm_fd;
    s->rss_seen = seen;
    s->seen_ns = rss_pages < 0 ? 0 : now_ns();
    region_deadlines();
    return 0;
}

/* 1 if the budget's high mark is reached: the slot's resident pages (statm's
 * second field, read now) and the others' as last seen; also if they cannot
 * be read (Python looks then).  0 without reading while the last reading
 * was too recent for the process to have used up the headroom
 * (RSS_BYTES_PER_NS). */
static int over_budget(struct slot *s)
{
    uint64_t now = now_ns();
    if (s->seen_ns && budget_seen < budget_high &&
        now - s->seen_ns < (budget_high - budget_seen) * PAGE / RSS_BYTES_PER_NS)
        return 0;
    char buf[128];
    ssize_t n = s->statm_fd < 0 ? -1 : pread(s->statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 1;
    buf[n] = 0;
    const char *resident = strchr(buf, ' ');
    if (!resident)
        return 1;
    uint64_t seen = strtoull(resident + 1, NULL, 10);
    budget_seen += seen - s->rss_seen;
    s->rss_seen = seen;
    s->seen_ns = now;
    region_deadlines();
    return budget_seen >= budget_high;
}

void vr_fast_bind(int tid, int slot)
{
    if (slot_of_tid && tid > 0 && tid <= max_tid)
        slot_of_tid[tid] = slot + 1;
}

int vr_fast_slot_of(int tid)
{
    return slot_of_tid && tid > 0 && tid <= max_tid ? slot_of_tid[tid] - 1 : -1;
}

void vr_fast_set_lock_check(int slot, int on)
{
    if (slot >= 0 && slot < nslots) {
        slots[slot].lock_check = on;
        if (slots[slot].region)
            vr_region_set_flag(&slots[slot].region->lock_check, on);
    }
}

void vr_fast_set_repin_all(int slot, int on)
{
    if (slot >= 0 && slot < nslots) {
        slots[slot].repin_all = on;
        if (slots[slot].region)
            vr_region_set_flag(&slots[slot].region->claim, on);
    }
}

int vr_fast_set_purged(int slot, const uint64_t *runs, int n)
{
    if (slot < 0 || slot >= nslots)
        return -EINVAL;
    struct slot *s = &slots[slot];
    if (n > s->cap) {
        uint64_t *grown = realloc(s->purged, 2 * n * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        s->purged = grown;
        s->cap = n;
    }
    memcpy(s->purged, runs, 2 * n * sizeof *runs);
    s->npurged = n;
    region_runs(s);
    return 0;
}

static int reserve(struct slot *s, int n)
{
    if (n <= s->cap)
        return 0;
    int cap = n < 2 * s->cap ? 2 * s->cap : n;
    uint64_t *grown = realloc(s->purged, 2 * (size_t)cap * sizeof *grown);
    if (!grown)
        return -ENOMEM;
    s->purged = grown;
    s->cap = cap;
    return 0;
}

/* The first run of `s` whose end is >= start (touching runs join). */
static int first_reaching(const struct slot *s, uint64_t start)
{
    int lo = 0, hi = s->npurged;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->purged[2 * mid + 1] >= start)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Join `n` runs (sorted or not) into a slot's runs: what a purge adds
 * (pages discarded, spans trapped), at a cost of the runs moved, not of a
 * push of every run. */
int vr_fast_add_purged(int slot, const uint64_t *runs, int n)
{
    if (slot < 0 || slot >= nslots)
        return -EINVAL;
    struct slot *s = &slots[slot];
    for (int k = 0; k < n; k++) {
        uint64_t start = runs[2 * k], end = runs[2 * k + 1];
        if (start >= end)
            continue;
        int i = first_reaching(s, start), j = i;
        while (j < s->npurged && s->purged[2 * j] <= end) {   /* overlapping or touching */
            start = s->purged[2 * j] < start ? s->purged[2 * j] : start;
            end = s->purged[2 * j + 1] > end ? s->purged[2 * j + 1] : end;
            j++;
        }
        if (j == i && reserve(s, s->npurged + 1))
            return -ENOMEM;
        int shift = 1 - (j - i);   /* runs [i, j) become one */
        memmove(&s->purged[2 * (j + shift)], &s->purged[2 * j],
                2 * (size_t)(s->npurged - j) * sizeof *s->purged);
        s->npurged += shift;
        s->purged[2 * i] = start;
        s->purged[2 * i + 1] = end;
    }
    region_runs(s);
    return 0;
}

/* Cut [start, end) out of a slot's runs: a re-pin ended them there. */
int vr_fast_cut_purged(int slot, uint64_t start, uint64_t end)
{
    if (slot < 0 || slot >= nslots)
        return -EINVAL;
    struct slot *s = &slots[slot];
    int i = first_reaching(s, start + 1), j = i;   /* first run with end > start */
    while (j < s->npurged && s->purged[2 * j] < end)
        j++;
    if (i == j)
        return 0;
    uint64_t left = s->purged[2 * i], right = s->purged[2 * (j - 1) + 1];
    uint64_t keep[4];
    int nkeep = 0;
    if (left < start) {
        keep[2 * nkeep] = left;
        keep[2 * nkeep++ + 1] = start;
    }
    if (right > end) {
        keep[2 * nkeep] = end;
        keep[2 * nkeep++ + 1] = right;
    }
    int shift = nkeep - (j - i);
    if (shift > 0 && reserve(s, s->npurged + shift))
        return -ENOMEM;
    memmove(&s->purged[2 * (j + shift)], &s->purged[2 * j],
            2 * (size_t)(s->npurged - j) * sizeof *s->purged);
    memcpy(&s->purged[2 * i], keep, 2 * (size_t)nkeep * sizeof *keep);
    s->npurged += shift;
    region_runs(s);
    return 0;
}

/* A slot's runs, for the supervisor's invariant check. */
int vr_fast_get_purged(int slot, uint64_t *out, int max_runs)
{
    if (slot < 0 || slot >= nslots)
        return -EINVAL;
    const struct slot *s = &slots[slot];
    if (s->npurged > max_runs)
        return -ENOBUFS;
    memcpy(out, s->purged, 2 * (size_t)s->npurged * sizeof *out);
    return s->npurged;
}

static int meets_purged(const struct slot *s, uint64_t start, uint64_t end)
{
    int lo = 0, hi = s->npurged;   /* first run whose end > start */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->purged[2 * mid + 1] > start)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < s->npurged && s->purged[2 * lo] < end;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

int vr_fast_decode(const struct vr_fast_profile *p, const uint64_t args[6],
                   struct vr_fast_call *out)
{
    return vr_decode(p, args, out);
}

/* Serve `n` if it needs no decision: 1 answered (op logged), 0 hand back,
 * -1 the caller is gone (nothing to do). */
static int serve_one(const struct vr_fast_profile *p, int listener,
                     const struct seccomp_notif *n, struct vr_fast_op *op)
{
    int tid = (int)n->pid;
    int slot = tid > 0 && tid <= max_tid ? slot_of_tid[tid] - 1 : -1;
    if (n->data.nr != p->nr) {   /* a lock call: note it, let it run */
        op->kind = VR_OP_LOCK;
        op->tid = tid;
        op->slot = slot;
        op->ns = now_ns();
        if (slot >= 0)
            vr_fast_set_lock_check(slot, 1);
        int rc = vr_notif_send(listener, n->id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
        return rc == 0 ? 1 : -1;
    }
    if (slot < 0 || slot >= nslots || slots[slot].maps_fd < 0)
        return 0;
    if (slots[slot].region && vr_region_pending(slots[slot].region)) {
        /* Its library logged calls we have not applied: Python takes them
         * first, so this call lands after them.  (With nothing logged, a
         * call the library left to us, e.g. while a purge is under way,
         * is served here as any other.) */
        if (budget_high)
            over_budget(&slots[slot]);   /* sets the deadline the library checks */
        return 0;
    }
    uint64_t args[6];   /* the kernel's __u64 as uint64_t, without aliasing them */
    memcpy(args, n->data.args, sizeof args);
    struct vr_fast_call call;
    if (!vr_decode(p, args, &call))
        return 0;
    uint64_t start = call.start, len = call.len, purged_ptr = call.purged_ptr;
    int volatile_ = call.is_volatile;
    struct slot *s = &slots[slot];
    if (budget_high && over_budget(s))
        return 0;   /* at the budget's high mark: Python purges first */
    if (volatile_ ? s->lock_check : s->repin_all || meets_purged(s, start, start + len))
        return 0;
    if (!vr_plain_anon(s->maps_fd, start, start + len))
        return 0;
    if (purged_ptr) {
        /* The tid could be reused once the caller is gone: check first. */
        if (vr_notif_id_valid(listener, n->id))
            return -1;
        if (vr_write_i32(tid, purged_ptr, 0))
            return 0;   /* EFAULT and its rules: the slow path */
    }
    if (volatile_)
        vr_follow_volatile(slot);   /* its forks and exec need Python from now on */
    int64_t value = p->returns_purged ? 0 : (int64_t)len;
    if (vr_notif_send(listener, n->id, value, 0, 0))
        return -1;
    op->kind = volatile_ ? VR_OP_VOLATILE : VR_OP_NONVOLATILE;
    op->tid = tid;
    op->slot = slot;
    op->partial = call.partial;
    op->start = start;
    op->end = start + len;
    op->ns = now_ns();
    return 1;
}


int vr_fast_serve(const struct vr_fast_profile *p, int listener, const int *fds, int nfds,
                  int timeout_ms, short *revents, struct vr_fast_op *ops, int max_ops,
                  int *nops, struct seccomp_notif *slow)
{
    struct pollfd pfd[MAX_FDS + 1];
    if (nfds > MAX_FDS)
        return -EINVAL;
    pfd[0] = (struct pollfd){ listener, POLLIN, 0 };
    for (int i = 0; i < nfds; i++)
        pfd[i + 1] = (struct pollfd){ fds[i], POLLIN, 0 };
    /* In ns, and each wait rounded up: waking a little early would spin. */
    long long deadline = timeout_ms < 0 ? -1 : (long long)now_ns() + timeout_ms * 1000000LL;
    *nops = 0;
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - (long long)now_ns();
            wait = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        int ready = poll(pfd, nfds + 1, wait);
        if (ready < 0 && errno != EINTR)
            return -errno;
        if (ready <= 0)
            return VR_FAST_TIMEOUT;
        int others = 0;
        for (int i = 0; i < nfds; i++) {
            revents[i] = pfd[i + 1].revents;
            others |= revents[i];
        }
        if (others) {
            int followed = vr_follow_ready(pfd, fds, revents, nfds, *nops);
            if (followed > 0)
                return VR_FAST_FOLLOWED;
            if (followed == 0) {   /* SIGCHLD alone, and its stops followed here */
                others = 0;
                if (!pfd[0].revents)
                    continue;
            }
        }
        if (pfd[0].revents & (POLLHUP | POLLERR) && !(pfd[0].revents & POLLIN) && !others)
            return VR_FAST_HUP;
        if (others && !(pfd[0].revents & POLLIN))
            return VR_FAST_READY;
        int rc = vr_notif_recv(listener, slow);
        if (rc == -ENOENT || rc == -EINTR) {
            if (others)
                return VR_FAST_READY;
            continue;
        }
        if (rc)
            return rc;
        /* Signals and pressure first, as the Python loop does, but with the
         * call waiting now taken along: Python purges, then answers it.  A
         * call is served after every signal sent before it, and a stream of
         * signals cannot starve calls: one purge turn each at most. */
        if (others)
            return VR_FAST_SLOW;
        struct vr_fast_op *op = &ops[*nops];
        memset(op, 0, sizeof *op);
        int served = serve_one(p, listener, slow, op);
        if (served == 0)
            return VR_FAST_SLOW;
        if (served > 0) {
            (*nops)++;
            /* A lock call from a task Python has not adopted yet. */
            if (op->kind == VR_OP_LOCK && op->slot < 0)
                return VR_FAST_READY;
            if (*nops == max_ops)
                return VR_FAST_FULL;
        }
        /* Python wants the loop back by now (the next slice of a purge, a
         * pressure reading): a stream of calls must not hold it off. */
        if (deadline >= 0 && (long long)now_ns() >= deadline)
            return VR_FAST_TIMEOUT;
    }
}

/* --- the in-process library's region (region.h, region.c) ------------------------- */

static void region_runs(struct slot *s)
{
    if (s->region)
        vr_region_publish_runs(s->region, s->purged, s->npurged);
}

static void region_sync(struct slot *s)
{
    if (!s->region)
        return;
    region_runs(s);
    vr_region_set_flag(&s->region->lock_check, s->lock_check);
    vr_region_set_flag(&s->region->claim, s->repin_all);
    region_deadlines();
}

/* Each region's budget deadline: when its process could have used up the
 * headroom below the high mark (as over_budget assumes), or at once if
 * there is none or no reading yet; 0 without a budget. */
static void region_deadlines(void)
{
    for (int i = 0; i < nslots; i++) {
        struct slot *s = &slots[i];
        if (!s->region)
            continue;
        uint64_t deadline = 0;
        if (budget_high) {
            deadline = 1;
            if (s->seen_ns && budget_seen < budget_high)
                deadline = s->seen_ns + (budget_high - budget_seen) * PAGE / RSS_BYTES_PER_NS;
        }
        __atomic_store_n(&s->region->budget_deadline, deadline, __ATOMIC_RELEASE);
    }
}

int vr_fast_attach(int slot, int memfd, const struct vr_fast_profile *p)
{
    if (slot < 0 || slot >= nslots || slots[slot].maps_fd < 0)
        return -EINVAL;
    struct slot *s = &slots[slot];
    if (s->region)
        return -EBUSY;
    struct vr_region *r = vr_region_map(memfd);
    if (!r)
        return -EPROTO;
    int held = vr_region_hold(r);
    if (held) {
        vr_region_unmap(r);
        return held;
    }
    r->profile = *p;
    s->region = r;
    region_sync(s);
    __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    return 0;
}

/* Stop serving a region: the library leaves every call to the trap. */
void vr_fast_detach(int slot)
{
    if (slot >= 0 && slot < nslots && slots[slot].region) {
        vr_region_unmap(slots[slot].region);
        slots[slot].region = NULL;
    }
}

int vr_fast_has_region(int slot)
{
    return slot >= 0 && slot < nslots && slots[slot].region != NULL;
}

int vr_fast_take(int slot, uint64_t *out, int max)
{
    if (!vr_fast_has_region(slot))
        return 0;
    return vr_region_peek(slots[slot].region, out, max);
}

int vr_fast_consume(int slot, uint32_t pos, int answer)
{
    if (!vr_fast_has_region(slot))
        return -EINVAL;
    return vr_region_consume(slots[slot].region, pos, answer);
}

/* Apply-ready pairs at the head of the log: a VOLATILE and, next to it, the
 * NONVOLATILE of the same range, where no purged page or trapped span lies
 * and no purge is under way, are consumed here (the re-pin's answer is
 * "not purged", as the library gave it) and returned as one op each
 * (VR_OPF_PAIR; VR_OPF_VOLATILE alone if the re-pin was cancelled
 * meanwhile: it comes back through the trap).  Stops at the first entry
 * that is not such a pair: Python takes it (vr_fast_take). */
int vr_fast_take_pairs(int slot, uint64_t *out, int max)
{
    if (!vr_fast_has_region(slot) || slots[slot].repin_all)
        return 0;
    struct slot *s = &slots[slot];
    struct vr_region *r = s->region;
    int n = 0;
    while (n < max) {
        uint32_t pos = (uint32_t)r->tail;
        struct vr_cell a = vr_cell_load(&r->cells[pos % VR_REGION_CELLS]);
        struct vr_cell b = vr_cell_load(&r->cells[(pos + 1) % VR_REGION_CELLS]);
        if (VR_CELL_POS(a.w0) != pos || VR_CELL_STATE(a.w0) != VR_CELL_PUBLISHED ||
            !(a.w0 & VR_CELL_VOLATILE) || VR_CELL_POS(b.w0) != (uint32_t)(pos + 1) ||
            VR_CELL_STATE(b.w0) != VR_CELL_PUBLISHED || (b.w0 & VR_CELL_VOLATILE) ||
            b.w1 != a.w1)
            break;
        uint64_t start = VR_CELL_FIRST(a.w1) * PAGE, end = start + VR_CELL_PAGES(a.w1) * PAGE;
        if (meets_purged(s, start, end))
            break;
        if (vr_region_consume(r, pos, 0) != 1)   /* a VOLATILE is never cancelled */
            break;
        int both = vr_region_consume(r, pos + 1, 0) == 1;
        uint64_t *op = &out[VR_OP_WORDS * n++];
        op[0] = start;
        op[1] = end;
        op[2] = pos;
        op[3] = (both ? VR_OPF_PAIR : VR_OPF_VOLATILE) |
                (a.w0 & VR_CELL_PARTIAL ? VR_OPF_PARTIAL : 0) |
                ((uint64_t)VR_CELL_TID(a.w0) << 8);
        if (!both)
            break;
    }
    return n;
}

void vr_fast_claim(int slot)
{
    if (vr_fast_has_region(slot))
        vr_region_set_flag(&slots[slot].region->claim, 1);
}

/* Calls answered in the program, left to the supervisor, taken back. */
int vr_fast_region_counts(int slot, uint64_t out[3])
{
    if (!vr_fast_has_region(slot))
        return -EINVAL;
    struct vr_region *r = slots[slot].region;
    out[0] = __atomic_load_n(&r->served, __ATOMIC_RELAXED);
    out[1] = __atomic_load_n(&r->escaped, __ATOMIC_RELAXED);
    out[2] = __atomic_load_n(&r->cancelled, __ATOMIC_RELAXED);
    return 0;
}

/* About to drain: the library may wake us again (it wakes once until then). */
void vr_fast_rearm(int slot)
{
    if (vr_fast_has_region(slot))
        __atomic_store_n(&slots[slot].region->wake_pending, 0, __ATOMIC_SEQ_CST);
}
