"""The supervisor's side of the native loop (linux/fastloop.py).

In notify mode the C loop answers the calls that need no decision; this
component applies its log to the model, keeps the C mirror (per space: maps
fd, lock check, the runs where NONVOLATILE needs Python: purged pages and
trapped spans) in step with the model, and hands back the calls that need
Python.  Inactive (ptrace mode, VRANGEEMU_FASTPATH=0, or
once no process holds the filter) every mirror operation is a no-op.

The C loop also follows the routine ptrace stops (linux/fastloop.py,
native/ext/follow.c; VRANGEEMU_FOLLOW=0 turns that off): what it logged
goes to `followed.apply` in order with the calls, what it reaped for
Python to `followed.hand_back` (supervisor/follow.py).
"""
import os
import select

from ..abi import NONVOLATILE, VOLATILE
from ..linux.fastloop import HUP, LOCK, OP_VOLATILE, FastLoop, Followed
from ..model.trap import repin_checked
from ..observe.events import Call, Lock
from . import calls
from .inproc import InProcess


def _mirrored(name, doc, part="loop"):
    """An operation passed on to `part` ("loop", or "inproc"), a no-op while
    that part is off."""
    def operation(self, *args):
        target = getattr(self, part)
        if target:
            getattr(target, name)(*args)
    operation.__name__, operation.__doc__ = name, doc
    return operation


class NativeCalls:
    """`bus` gets Call and Lock events; `space_of(tid)` finds the space of a
    task the C loop did not know yet (its creator's event may be queued)."""

    def __init__(self, bus, space_of):
        self.bus = bus
        self.space_of = space_of
        self.loop = None       # linux.fastloop.FastLoop while active
        self.followed = None   # follow.Following, set by the supervisor
        self.inproc = None     # inproc.InProcess while the in-process path is on
        self.log = lambda msg: None
        self._returns_bytes = True

    @property
    def active(self):
        return self.loop is not None

    def start(self, listener_fd, profile, sigfd=None, inproc=False):
        """Serve calls in C; with `sigfd` (the supervisor's signalfd) also
        follow the routine ptrace stops there; with `inproc`, attach the
        regions of the in-process library (supervisor/inproc.py)."""
        self.loop = FastLoop(listener_fd, profile)
        self._returns_bytes = profile.returns != "purged"
        if sigfd is not None and os.environ.get("VRANGEEMU_FOLLOW", "1") != "0":
            self.loop.follow(sigfd, profile.nr)
        if inproc:
            self.inproc = InProcess(self, profile, self.log)

    def close(self):
        if self.inproc is not None:
            self.inproc.close()
            self.inproc = None
        if self.loop is not None:
            self.loop.close()
            self.loop = None

    # --- serving ----------------------------------------------------------------
    def serve(self, fds, timeout):
        """Let the native loop serve calls; returns (ready fds as poll()
        results, a call it handed back or None).  The model is current when
        this returns."""
        woken = self.inproc.fd if self.inproc else None
        why, ready, call, stops = self.loop.serve(
            fds if woken is None else [*fds, woken], timeout, self._apply)
        if stops:
            self.followed.hand_back(stops)
        if woken in ready:
            ready.discard(woken)
            self.inproc.woken()
        if why == HUP:   # no process holds the filter any more
            self.close()
        return dict.fromkeys(ready, select.POLLIN), call

    def _apply(self, ops):
        """Apply calls the native loop answered (maybe in its worker thread:
        touches the model only, never ptrace)."""
        emit = self.bus.emit if self.bus.wants(Call) else None
        for op in ops:
            if type(op) is Followed:   # only in a log applied in the main thread
                self.followed.apply(op)
                continue
            if op.kind == LOCK:
                # A task not adopted yet comes last in its log (see fastpath.c),
                # and that log is applied here in the main thread.
                space = self.loop.space(op.slot) if op.slot >= 0 else self.space_of(op.tid)
                if space is not None:
                    self.note_lock(space, op.tid)
                continue
            space = self.loop.space(op.slot)
            volatile = op.kind == OP_VOLATILE
            calls.apply(space, volatile, op.start, op.end, op.partial)
            if emit:
                length = op.end - op.start
                emit(Call(pid=space.tgid, tid=op.tid, mode=VOLATILE if volatile else NONVOLATILE,
                          start=op.start, len=length, ret=length if self._returns_bytes else 0,
                          errno=0, purged=False, path="native",
                          volatile=space.ranges.volatile_bytes,
                          purged_bytes=space.ranges.purged_bytes, t=op.t))

    def note_lock(self, space, tid):
        """`tid` locked memory (mlock & co): VOLATILE checks locks from now on."""
        if not space.may_lock:
            self.bus.emit(Lock(pid=space.tgid, tid=tid))
        space.may_lock = True
        if self.loop:
            self.loop.set_may_lock(space)

    # --- the in-process path: each operation is a no-op while it is off ------------
    def attach(self, space, memfd, efd):
        """The in-process library of `space` said hello: True if attached."""
        return self.inproc is not None and self.inproc.attach(space, memfd, efd)

    drain = _mirrored("drain", "Apply the in-process log of a space before its model is read.",
                      "inproc")
    drain_all = _mirrored("drain_all", "The same for every space.", "inproc")
    release = _mirrored("release", "After an internal error: every library leaves its calls "
                                   "to the trap.", "inproc")
    claim = _mirrored("claim", "A purge of a space starts: its library leaves re-pins to us.",
                      "inproc")

    def drop(self, space):
        """Free the slot of a space that is gone (its in-process log applied first)."""
        if self.inproc is not None:
            self.inproc.detach(space)
        if self.loop:
            self.loop.drop(space)

    # --- the mirror: each operation is a no-op while inactive ------------------------
    unfollow = _mirrored("unfollow", "A space has a volatile range: its stops need Python.")
    set_maps = _mirrored("set_maps", "A space's maps fd was opened at its first call.")
    started = _mirrored("started", "Python took a task's first stop itself.")
    group_stop = _mirrored("group_stop", "Python holds a task in a group-stop (or no longer).")
    add = _mirrored("add", "Give a new space a slot.")
    bind = _mirrored("bind", "Tell C which space a task's calls are for.")
    unbind = _mirrored("unbind", "Forget a task.")
    sync_purged = _mirrored("sync_purged", "Push every purged page and trapped span of a "
                                           "space (after a change that is hard to say as a delta).")
    add_purged = _mirrored("add_purged", "Runs of a space were purged or trapped.")
    set_repin_all = _mirrored("set_repin_all", "A purge of a space is under way in slices "
                                               "(or no longer): NONVOLATILE needs Python.")
    cut_purged = _mirrored("cut_purged", "A span of a space was re-pinned: nothing purged or "
                                         "trapped is left there.")
    set_rss_budget = _mirrored("set_rss_budget", "Hand calls back once the traced processes' "
                                                 "RSS reaches the high mark (RSS budget).")

    def _check(self, spaces):
        """The C mirror matches the model: each space's slot, maps fd, lock
        check and repin-checked runs (purged or trapped) as last pushed."""
        if not self.loop:
            return
        slots = {}
        for space in spaces:
            assert space.slot >= 0, f"{space} has no slot in the native loop"
            slots[space.slot] = space
            assert self.loop.space(space.slot) is space, (space, space.slot)
            fd, lock_check, repin_all = self.loop.pushed[space.slot]
            assert fd == space.memory.maps_fd, (space, fd)
            assert lock_check == space.may_lock, (space, lock_check, space.may_lock)
            assert repin_all == space.purge_under_way, (space, repin_all, space.purge)
            if self.loop.follows(space.slot):   # routine: nothing to decide at its stops
                assert not space.ranges and not space.ranges.purged_bytes, space
                assert space.purge is None and space.purger is None, space
                assert space.trap is None and not space.trapped, space
            runs = self.loop.purged_runs(space.slot)
            assert runs == repin_checked(space.ranges, space.trapped), (space, runs)
        assert set(self.loop.pushed) == set(slots), (sorted(self.loop.pushed), sorted(slots))
