/* follow.c - the ptrace stops the native loop answers without Python.
 *
 * vrange-run follows every task with ptrace, so a fork + exec + wait costs
 * the program five stops (the fork event, the child's first stop, its exec
 * event, its exit, the parent's SIGCHLD).  Most need no decision: the
 * fork, vfork or clone of a task whose space never had a volatile range
 * (so nothing purged, trapped or being purged, no purger thread: all need
 * a range first), the exec of such a task, its exit and its signals, and
 * the first stop of a child whose creator's event was followed here.
 * When the signalfd holds SIGCHLD alone, the native loop reaps the stops
 * itself (vr_follow_ready): a routine one is resumed at once and logged
 * like a call, with what Python needs to apply it later as it would have
 * at the stop (kcmp's answer, the new program's name); the first other one
 * is handed back unhandled, and nothing after it is reaped here.  Python
 * applies the log, in order with the calls, before it does anything else.
 * A new space's /proc files are opened at its first call (Python), not
 * here: opening them held a fork's child and an exec for ~25 us each.
 *
 * Per slot (follow_slot): 1 while the space is routine; set by Python
 * when it gives a space a slot, cleared for good by its first VOLATILE.
 * Per tid (tid_state):
 *   PENDING   a task of a new space Python has not registered yet (it is
 *             routine: new spaces are empty); its slot is unknown here
 *   EXPECTED  its first stop is ours to resume (its creator's event was
 *             followed here, Python's Task is `starting`)
 *   HELD      its first stop came before its creator's event: kept
 *             stopped, handed back whenever the loop returns
 *   GROUP     Python holds it in a group-stop: its stops go to Python
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <linux/seccomp.h>

#include "vrnative.h"

#define PENDING VR_FOLLOW_PENDING
#define EXPECTED VR_FOLLOW_EXPECTED
#define HELD VR_FOLLOW_HELD
#define GROUP VR_FOLLOW_GROUP
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define AWAIT_NS 100000   /* how long a stop expected at once is waited for */

static int follow_fd = -1;   /* the supervisor's signalfd; -1: not following */
static int follow_nr;        /* the vrange syscall number */
static uint8_t *tid_state;
static long state_max;
static uint8_t *follow_slot;
static int follow_nslots;
static struct vr_follow_ev *evs;
static int nevs;
static int32_t *stops;       /* handed back: (tid, wait status) pairs */
static int nstops;
static int32_t held[2 * VR_FOLLOW_MAX_HELD];
static int nheld;
static int awaited;          /* stops expected within microseconds */
static unsigned reaped;      /* statuses reaped so far */

int vr_follow_start(int sigfd, int nr, struct vr_follow_ev *ev_buf, int32_t *stop_buf)
{
    if (!tid_state) {
        state_max = 4194304;   /* PID_MAX_LIMIT on 64-bit */
        FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
        if (f) {
            if (fscanf(f, "%ld", &state_max) != 1)
                state_max = 4194304;
            fclose(f);
        }
        tid_state = calloc(state_max + 1, 1);
        if (!tid_state)
            return -ENOMEM;
    }
    follow_fd = sigfd;
    follow_nr = nr;
    evs = ev_buf;
    stops = stop_buf;
    nevs = nstops = nheld = awaited = 0;
    return 0;
}

void vr_follow_stop(void)
{
    follow_fd = -1;
}

int vr_follow_slot(int slot, int on)
{
    if (slot < 0)
        return -EINVAL;
    if (slot >= follow_nslots) {
        int n = slot < 16 ? 16 : slot * 2;
        uint8_t *grown = realloc(follow_slot, n);
        if (!grown)
            return -ENOMEM;
        memset(grown + follow_nslots, 0, n - follow_nslots);
        follow_slot = grown;
        follow_nslots = n;
    }
    follow_slot[slot] = on != 0;
    return 0;
}

int vr_follow_get_slot(int slot)
{
    return slot >= 0 && slot < follow_nslots ? follow_slot[slot] : 0;
}

void vr_follow_volatile(int slot)
{
    if (slot >= 0 && slot < follow_nslots)
        follow_slot[slot] = 0;
}

/* Python's view of a task changed: clear the bits `off`, then set `on`. */
void vr_follow_tid(int tid, int off, int on)
{
    if (tid_state && tid > 0 && tid <= state_max)
        tid_state[tid] = (tid_state[tid] & ~off) | on;
}

static int state(int tid)
{
    return tid > 0 && tid <= state_max ? tid_state[tid] : 0;
}

static int routine(int tid)
{
    int slot = vr_fast_slot_of(tid);
    if (slot >= 0)
        return slot < follow_nslots && follow_slot[slot];
    return state(tid) & PENDING;
}

/* The first stop held for `tid` (its status), no longer held; -1 if none. */
static int unhold(int tid)
{
    if (!(state(tid) & HELD))
        return -1;
    tid_state[tid] &= ~HELD;
    for (int i = 0; i < nheld; i++)
        if (held[2 * i] == tid) {
            int status = held[2 * i + 1];
            held[2 * i] = held[2 * (nheld - 1)];
            held[2 * i + 1] = held[2 * (nheld - 1) + 1];
            nheld--;
            return status;
        }
    return -1;
}

static void hand_back(int tid, int status)
{
    int first = unhold(tid);   /* its first stop came before */
    if (first != -1) {
        stops[2 * nstops] = tid;
        stops[2 * nstops++ + 1] = first;
    }
    stops[2 * nstops] = tid;
    stops[2 * nstops++ + 1] = status;
}

void vr_follow_take(int *n_evs, int *n_stops)
{
    for (int i = 0; i < nheld; i++) {   /* Python waits for their creators now */
        stops[2 * nstops] = held[2 * i];
        stops[2 * nstops++ + 1] = held[2 * i + 1];
        tid_state[held[2 * i]] &= ~HELD;
    }
    nheld = 0;
    *n_evs = nevs;
    *n_stops = nstops;
    nevs = nstops = 0;
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static struct vr_follow_ev *new_ev(int kind, int tid, int nops)
{
    struct vr_follow_ev *ev = &evs[nevs];
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->tid = tid;
    ev->nops = nops;
    return ev;
}

/* /proc/TID/comm as procfs.comm_of reads it (whitespace stripped; "?"). */
static void read_comm(int tid, char out[16])
{
    char path[64], buf[32];
    snprintf(path, sizeof path, "/proc/%d/comm", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        strcpy(out, "?");
        return;
    }
    char *s = buf, *e = buf + n;
    while (s < e && strchr(" \t\n\r\v\f", *s))
        s++;
    while (e > s && strchr(" \t\n\r\v\f", e[-1]))
        e--;
    n = e - s < 15 ? e - s : 15;
    memcpy(out, s, n);
    out[n] = 0;
}

/* Loop.py's _restart_interrupted_call: a vrange call whose wait a signal
 * ended must be made again after the handler, never fail EINTR. */
static void restart_interrupted(int tid)
{
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, tid, 0, &regs))
        return;
    if (regs.orig_rax == (uint64_t)follow_nr && regs.rax == (uint64_t)-ERESTARTSYS) {
        regs.rax = (uint64_t)-ERESTARTNOINTR;
        ptrace(PTRACE_SETREGS, tid, 0, &regs);
    }
}

/* fork/vfork/clone of a routine task: the parent is resumed, the child
 * too if its first stop is here already; 0 if it is for Python. */
static int follow_fork(int tid, int event, int nops)
{
    unsigned long child_ul;
    if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &child_ul))
        return 0;
    int child = (int)child_ul;
    int order = vr_kcmp_vm(tid, child);
    if (order < 0 || child <= 0 || child > state_max)
        return 0;   /* kcmp cannot tell: Python guesses from the event */
    struct vr_follow_ev *ev = new_ev(VR_EV_FORK, tid, nops);
    ev->child = child;
    ev->value = event;
    ev->shares = order == 0;
    int slot = vr_fast_slot_of(tid);
    if (ev->shares && slot >= 0)
        vr_fast_bind(child, slot);   /* its calls are served at once */
    else
        tid_state[child] |= PENDING;
    if (unhold(child) != -1) {
        ptrace(PTRACE_CONT, child, 0, 0);
        ev->claimed = 1;
    } else {
        tid_state[child] |= EXPECTED;
        awaited++;   /* its first stop */
    }
    ptrace(PTRACE_CONT, tid, 0, 0);   /* after the child: it runs on first */
    nevs++;
    return 1;
}

/* exec by a routine task (the leader itself): a new, empty space. */
static int follow_exec(int tid, int nops)
{
    unsigned long former;
    if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &former) || (int)former != tid)
        return 0;
    struct vr_follow_ev *ev = new_ev(VR_EV_EXEC, tid, nops);
    read_comm(tid, ev->comm);
    vr_fast_bind(tid, -1);   /* its calls wait for Python's new space */
    tid_state[tid] |= PENDING;
    ptrace(PTRACE_CONT, tid, 0, 0);
    nevs++;
    return 1;
}

/* One reaped status: 1 followed and logged, 2 followed (nothing for
 * Python), 0 Python's. */
static int follow_one(int tid, int status, int nops)
{
    int st = state(tid);
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        if (st & HELD || !routine(tid))
            return 0;
        struct vr_follow_ev *ev = new_ev(VR_EV_EXIT, tid, nops);
        ev->value = status;
        tid_state[tid] = 0;
        awaited++;   /* its parent's SIGCHLD, if it is traced */
        vr_fast_bind(tid, -1);   /* a new task may take the tid */
        nevs++;
        return 1;
    }
    if (st & GROUP || tid > state_max)
        return 0;
    int sig = WSTOPSIG(status), event = status >> 16;
    if (event == PTRACE_EVENT_STOP) {
        if (sig != SIGTRAP)
            return 0;   /* a group-stop */
        if (st & EXPECTED) {   /* the first stop of a child followed here */
            tid_state[tid] &= ~EXPECTED;
            ptrace(PTRACE_CONT, tid, 0, 0);
            new_ev(VR_EV_STARTED, tid, nops);
            nevs++;
            return 1;
        }
        if (vr_fast_slot_of(tid) < 0 && !(st & PENDING) && nheld < VR_FOLLOW_MAX_HELD) {
            held[2 * nheld] = tid;   /* a child before its creator's event */
            held[2 * nheld++ + 1] = status;
            tid_state[tid] |= HELD;
            return 2;
        }
        return 0;   /* an interrupt: a purge */
    }
    if (st & (EXPECTED | HELD) || !routine(tid))
        return 0;
    if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE)
        return follow_fork(tid, event, nops);
    if (event == PTRACE_EVENT_EXEC)
        return follow_exec(tid, nops);
    if (event || sig == (SIGTRAP | 0x80) || sig == SIGBUS || sig == SIGSEGV)
        return 0;   /* seccomp, syscall stops; faults Python looks at */
    restart_interrupted(tid);   /* a signal-delivery stop: deliver it */
    ptrace(PTRACE_CONT, tid, 0, sig);
    return 2;
}

/* 1 if SIGCHLD is the only signal pending, and it was taken. */
static int sigchld_alone(void)
{
    sigset_t pending, chld;
    if (sigpending(&pending))
        return 0;
    sigdelset(&pending, SIGCHLD);
    if (!sigisemptyset(&pending))
        return 0;   /* SIGUSR1, a signal to pass on: Python's */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    struct timespec zero = { 0, 0 };
    return sigtimedwait(&chld, NULL, &zero) == SIGCHLD;
}

/* Reap and follow the stops waiting now: 1 if Python has something to
 * apply or handle, 0 if not. */
static int drain(int nops)
{
    int reported = 0;
    for (;;) {
        if (nevs == VR_FOLLOW_MAX_EVS) {
            kill(getpid(), SIGCHLD);   /* the rest after Python applied these */
            return 1;
        }
        int status;
        pid_t tid = waitpid(-1, &status, WNOHANG | __WALL);
        if (tid <= 0)
            return reported;
        reaped++;
        if (awaited)
            awaited--;
        int r = follow_one(tid, status, nops);
        if (r == 0) {
            hand_back(tid, status);
            kill(getpid(), SIGCHLD);   /* Python drains the rest */
            return 1;
        }
        reported |= r == 1;
    }
}

/* Called when fds (the loop's other fds) are readable, pfd its poll set
 * (pfd[0] the listener): -1 not for us (another signal, pressure), else
 * the stops waiting were followed: 1 if Python has something to apply or
 * handle, 0 if not (the signalfd's revents cleared). */
int vr_follow_ready(const struct pollfd *pfd, const int *fds, short *revents, int nfds,
                    int nops)
{
    if (follow_fd < 0)
        return -1;
    int at = -1;
    for (int i = 0; i < nfds; i++) {
        if (fds[i] == follow_fd)
            at = i;
        else if (revents[i])
            return -1;   /* pressure: Python's */
    }
    if (at < 0 || !revents[at] || !sigchld_alone())
        return -1;
    revents[at] = 0;
    awaited = 0;
    int reported = drain(nops);
    if (reported <= 0)
        return reported;
    /* A stop that comes within microseconds (a new child's first stop, the
     * SIGCHLD stop of a parent whose child just exited) would wait for Python
     * to apply the log: follow it first.  Busy: a supervisor that sleeps is
     * woken late (measured: slower than no wait at all). */
    uint64_t until = mono_ns() + AWAIT_NS;
    struct pollfd again[nfds + 1];
    memcpy(again, pfd, (nfds + 1) * sizeof *again);
    struct timespec zero = { 0, 0 };
    while (awaited && nevs < VR_FOLLOW_MAX_EVS && !nstops && mono_ns() < until) {
        int n = ppoll(again, nfds + 1, &zero, NULL);
        for (int i = 0; i <= nfds && n > 0; i++)
            if (again[i].revents && i != at + 1)
                return 1;   /* a call, pressure: back to the loop */
        if (n < 0 || (n > 0 && !sigchld_alone()))
            return 1;       /* a signal for Python */
        unsigned seen = reaped;
        drain(nops);
        if (reaped != seen)
            until = mono_ns() + AWAIT_NS;
    }
    return 1;
}
