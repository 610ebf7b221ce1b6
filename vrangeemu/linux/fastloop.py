"""The native receive/answer loop (native/ext/fastpath.c) and its mirror of the model.

The Python loop costs ~60 us per call; the calls that need no decision
(valid arguments, plain private anonymous memory, no lock check due, no
purged page met) are answered in C at a few us and logged.  The supervisor
(supervisor/native_calls.py) applies the log to the model as soon as
`serve()` returns, before it handles anything else, so the model is never
read stale.  Calls that need a decision come back unanswered and take the
Python path.

C keeps, per address space ("slot"): the /proc maps fd for PROCMAP_QUERY,
whether VOLATILE must check locks (the space's `may_lock`), and the runs
where a NONVOLATILE must be handed back: purged pages and the spans of the
SIGBUS trap (pushed by `sync_purged` whenever either can have changed).
A purge adds runs and a re-pin cuts a span (`add_purged`, `cut_purged`: a
cost of what changed, not of every run).  Under an RSS budget, C also keeps
each slot's statm fd and resident bytes at the last reading
(`set_rss_budget`: C hands a call back when the sum reaches the high mark).
What was pushed is remembered here too, or read back from C, for the
supervisor's invariant check.

Following (`follow`, native/ext/follow.c): the loop also reaps the ptrace
stops that need no decision (fork, exec, exit and signals of tasks whose
space never had a volatile range) when SIGCHLD is the only signal
pending, resumes them and logs them in order with the calls; the first
other stop is handed back unhandled.  C keeps per slot whether the space
is still routine (`add`; cleared for good by its first VOLATILE:
`unfollow`) and per tid what Python told it (`bind`, `unbind`, `started`,
`group_stop`).
"""
import errno
import math
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from .._native import ffi, lib
from ..abi import USER_SPACE_END
from ..model.trap import repin_checked
from .errors import check

MAX_OPS = 256   # calls served per batch before the log is applied
PAGE = 4096

Op = namedtuple("Op", "kind tid slot start end partial t")   # t: time.monotonic() of the answer
OP_VOLATILE, LOCK = lib.VR_OP_VOLATILE, lib.VR_OP_LOCK   # else VR_OP_NONVOLATILE
READY, SLOW, HUP, FULL = lib.VR_FAST_READY, lib.VR_FAST_SLOW, lib.VR_FAST_HUP, lib.VR_FAST_FULL
# A stop followed in C (struct vr_follow_ev): kind is FORK (tid the parent),
# EXEC, EXIT (value the wait status) or STARTED.
Followed = namedtuple("Followed", "kind tid child value shares claimed comm")
FORK, EXEC, EXIT, STARTED = lib.VR_EV_FORK, lib.VR_EV_EXEC, lib.VR_EV_EXIT, lib.VR_EV_STARTED
_ALL_STATES = (lib.VR_FOLLOW_PENDING | lib.VR_FOLLOW_EXPECTED | lib.VR_FOLLOW_HELD
               | lib.VR_FOLLOW_GROUP)


class FastLoop:
    def __init__(self, listener_fd, profile):
        check(lib.vr_fast_init(), "vr_fast_init")
        self.listener_fd = listener_fd
        p = self._profile = ffi.new("struct vr_fast_profile *")
        p.nr, p.mode_volatile, p.mode_nonvolatile = profile.nr, profile.volatile, profile.nonvolatile
        p.returns_purged = profile.returns == "purged"
        p.purged_arg, p.flags_arg = profile.purged_arg, profile.flags_arg
        p.behavior_arg, p.allowed_flags = profile.behavior_arg, profile.allowed_flags
        p.user_end = USER_SPACE_END
        self._bufs = [ffi.new("struct vr_fast_op[]", MAX_OPS) for _ in range(2)]
        self._cur = 0            # the log the native loop fills
        self._pending = None     # the worker's Future for the other log
        self._executor = None
        self._nops = ffi.new("int *")
        self._slow = ffi.new("struct seccomp_notif *")
        self._spaces = {}       # slot -> space (a supervisor TracedSpace)
        self.pushed = {}        # slot -> (maps fd, lock check, repin all) as C has them
        self._free = []         # slots to reuse
        self._next = 0
        self._budget = None     # (high, {tgid: rss}) while calls are checked against RSS
        self.following = False  # routine ptrace stops are followed in C (`follow`)
        self._evs = self._stops = None
        self._taken = ffi.new("int[2]")
        self._fds = None

    @property
    def profile(self):
        """The call layout C decodes with (struct vr_fast_profile)."""
        return self._profile

    def follow(self, sigfd, nr):
        """Follow routine ptrace stops in C when `sigfd` (the supervisor's
        signalfd) holds SIGCHLD alone; `nr`: the vrange number (a signal's
        interrupted call is made again, as loop._restart_interrupted_call)."""
        self._evs = ffi.new("struct vr_follow_ev[]", lib.VR_FOLLOW_MAX_EVS)
        self._stops = ffi.new("int32_t[]", 2 * (lib.VR_FOLLOW_MAX_HELD + 2))
        check(lib.vr_follow_start(sigfd, nr, self._evs, self._stops), "vr_follow_start")
        self.following = True

    # --- the mirror -------------------------------------------------------------
    def add(self, space):
        """Give `space` a slot (its tasks are bound separately)."""
        if self._free:
            slot = self._free.pop()
        else:
            slot, self._next = self._next, self._next + 1
        space.slot = slot
        self._spaces[slot] = space
        check(lib.vr_fast_slot(slot, space.memory.maps_fd, int(space.may_lock)), "vr_fast_slot")
        self.pushed[slot] = (space.memory.maps_fd, space.may_lock, False)
        if space.ranges or space.trapped:   # a new slot holds no run
            self.sync_purged(space)
        # Routine while it never had a range: nothing purged, trapped or
        # being purged can be there yet (fork copies the parent's ranges).
        routine = self.following and not space.ranges and not space.ranges.purged_bytes
        check(lib.vr_follow_slot(slot, int(routine)), "vr_follow_slot")
        if self._budget is not None:
            self._push_rss(space)

    def set_maps(self, space):
        """`space`'s maps fd was opened at its first call (ProcessMemory.bind):
        C serves its calls from now on.  It has no range, so no run to keep."""
        slot = space.slot
        if slot < 0:
            return
        check(lib.vr_fast_slot(slot, space.memory.maps_fd, int(space.may_lock)), "vr_fast_slot")
        self.pushed[slot] = (space.memory.maps_fd, space.may_lock, False)
        if self._budget is not None:
            self._push_rss(space)

    def drop(self, space):
        if self._spaces.pop(space.slot, None) is not None:
            check(lib.vr_fast_slot(space.slot, -1, 0), "vr_fast_slot")
            check(lib.vr_follow_slot(space.slot, 0), "vr_follow_slot")
            del self.pushed[space.slot]
            self._free.append(space.slot)
        space.slot = -1

    def bind(self, tid, space):
        lib.vr_fast_bind(tid, space.slot if space is not None else -1)
        lib.vr_follow_tid(tid, lib.VR_FOLLOW_PENDING, 0)   # its slot tells now

    def unbind(self, tid):
        lib.vr_fast_bind(tid, -1)
        lib.vr_follow_tid(tid, _ALL_STATES, 0)

    def unfollow(self, space):
        """`space` has a volatile range: its stops need Python from now on."""
        if space.slot >= 0:
            lib.vr_follow_volatile(space.slot)

    def follows(self, slot):
        """True while C follows the stops of `slot`'s tasks (invariant check)."""
        return bool(lib.vr_follow_get_slot(slot))

    def started(self, tid):
        """Python took `tid`'s first stop itself: C no longer waits for it."""
        lib.vr_follow_tid(tid, lib.VR_FOLLOW_EXPECTED, 0)

    def group_stop(self, tid, on):
        """Python holds `tid` in a group-stop (or no longer): its stops are Python's."""
        lib.vr_follow_tid(tid, lib.VR_FOLLOW_GROUP, lib.VR_FOLLOW_GROUP if on else 0)

    def set_may_lock(self, space):
        if space.slot >= 0:
            lib.vr_fast_set_lock_check(space.slot, 1)
            fd, _, repin_all = self.pushed[space.slot]
            self.pushed[space.slot] = (fd, True, repin_all)

    def set_repin_all(self, space, on):
        """While a purge of `space` is under way in slices, every NONVOLATILE
        there needs Python (it settles the runs it meets first)."""
        if space.slot >= 0:
            lib.vr_fast_set_repin_all(space.slot, int(on))
            fd, lock_check, _ = self.pushed[space.slot]
            self.pushed[space.slot] = (fd, lock_check, bool(on))

    def sync_purged(self, space):
        """Push the runs where a NONVOLATILE of `space` needs Python (purged
        pages, trapped spans: model.trap.repin_checked) after a purge or a re-pin."""
        if space.slot < 0:
            return
        runs = repin_checked(space.ranges, space.trapped)
        flat = ffi.new("uint64_t[]", [x for run in runs for x in run] or [0])
        check(lib.vr_fast_set_purged(space.slot, flat, len(runs)), "vr_fast_set_purged")

    def add_purged(self, space, runs):
        """Runs were purged or trapped in `space`: NONVOLATILE there needs Python."""
        if space.slot >= 0 and runs:
            flat = ffi.new("uint64_t[]", [x for run in runs for x in run])
            check(lib.vr_fast_add_purged(space.slot, flat, len(runs)), "vr_fast_add_purged")

    def cut_purged(self, space, start, end):
        """[start, end) was re-pinned: no purged page nor trapped span is left there."""
        if space.slot >= 0:
            check(lib.vr_fast_cut_purged(space.slot, start, end), "vr_fast_cut_purged")

    def purged_runs(self, slot):
        """The runs C holds for `slot` (for the invariant check)."""
        n = 1024
        while True:
            out = ffi.new("uint64_t[]", 2 * n)
            got = lib.vr_fast_get_purged(slot, out, n)
            if got != -errno.ENOBUFS:
                check(got, "vr_fast_get_purged")
                return [(out[2 * i], out[2 * i + 1]) for i in range(got)]
            n *= 4

    def set_rss_budget(self, high, rss):
        """Hand a call back unanswered when its process's resident bytes,
        read then, and the other processes' as last seen reach `high`
        (0: never), so Python can purge before answering it.  `rss`:
        {tgid: resident bytes} just read; a process not in it (new since)
        is read at its first call."""
        self._budget = (high, rss)
        lib.vr_fast_set_budget(-(-high // PAGE))   # rounded up: 1 byte is still a mark
        for space in self._spaces.values():
            self._push_rss(space)

    def _push_rss(self, space):
        rss = self._budget[1].get(space.tgid)
        check(lib.vr_fast_set_rss(space.slot, space.memory.statm_fd,
                                  -1 if rss is None else rss // PAGE), "vr_fast_set_rss")

    def space(self, slot):
        return self._spaces.get(slot)

    # --- serving ----------------------------------------------------------------
    def serve(self, fds, timeout_ms, apply):
        """Serve calls until one of `fds` is readable, a call needs Python or
        `timeout_ms` passed (-1: no timeout).  `apply(ops)` gets every served
        call, in order, before this returns.  While calls keep coming, full
        logs are applied by a worker thread as the native loop goes on, so
        the model's cost is off the program's path; the worker never runs
        while the caller does anything else.

        `apply` also gets the stops followed in C (`Followed`), in order
        with the calls.  Returns (why, ready fds, slow call or None, stops
        handed back); the slow call is (id, tid, nr, args) like
        Listener.recv(), the stops (tid, wait status) reaped here for
        Python to handle, in order."""
        fds = tuple(fds)
        if fds != self._fds:   # the same fds every turn: made once
            self._fds = fds
            self._fd_array = ffi.new("int[]", fds or [0])
            self._revents = ffi.new("short[]", max(len(fds), 1))
        fd_array, revents = self._fd_array, self._revents
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        try:
            while True:
                ops = self._bufs[self._cur]
                wait = -1 if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
                why = lib.vr_fast_serve(self._profile, self.listener_fd, fd_array, len(fds), wait,
                                        revents, ops, MAX_OPS, self._nops, self._slow)
                check(why, "vr_fast_serve")
                if why != FULL:
                    break
                self._finish()       # the worker's previous log, then hand it this one
                self._pending = self._worker().submit(_apply_log, apply, ops, MAX_OPS)
                self._cur ^= 1
        finally:
            self._finish()
        followed, stops = self._take() if self.following else ((), [])
        _apply_log(apply, ops, self._nops[0], followed)
        ready = {fd for fd, ev in zip(fds, revents) if ev} if why in (READY, SLOW) else set()
        slow = None
        if why == SLOW:
            n = self._slow
            slow = (n.id, n.pid, n.data.nr, list(n.data.args))
        return why, ready, slow, stops

    def _take(self):
        """The stops C followed (Followed, with the count of calls before
        each) and those it hands back (tid, status), C's log emptied."""
        taken = self._taken
        lib.vr_follow_take(taken, taken + 1)
        followed = []
        for e in self._evs[0:taken[0]]:
            followed.append((e.nops, Followed(e.kind, e.tid, e.child, e.value, e.shares,
                                              e.claimed, ffi.string(e.comm).decode(
                                                  "utf-8", "replace"))))
        s = self._stops
        return followed, [(s[2 * i], s[2 * i + 1]) for i in range(taken[1])]

    def _worker(self):
        # Started on first use: by then the supervisor has blocked its signals
        # (signalfd), and threads inherit that mask.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="vrange-log")
        return self._executor

    def _finish(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()   # re-raises the worker's error here

    def close(self):
        self._finish()
        if self.following:
            lib.vr_follow_stop()
            self.following = False
        if self._executor is not None:
            self._executor.shutdown()


def _apply_log(apply, ops, n, followed=()):
    log = [Op(o.kind, o.tid, o.slot, o.start, o.end, o.partial, o.ns / 1e9) for o in ops[0:n]]
    for at, event in reversed(followed):   # each after the calls answered before it
        log.insert(at, event)
    apply(log)
