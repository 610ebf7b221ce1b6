"""The supervisor's side of the in-process path (native/inproc/inproc.c).

A program's library answers the calls that need no decision in the calling
thread and logs them in the region it shares with us (native/ext/region.h),
which C maps into the space's slot of the native loop (region.c); the
mirror the native loop keeps (lock check, the runs a re-pin must not meet,
a purge under way) is published there as well.  Here the log is applied
to the model (`drain`), always before the model is read for a decision:
before a call of that space is served in Python, a purge is planned or
carried out, a fork copies the model, the space ends; and whenever the
library finds its log half full (it writes its eventfd).

Each re-pin in the log is applied with the answer the model gives then (a
purge under way settled first, its SIGBUS trap ended), and is consumed
only if its caller has not cancelled it; a cancelled one is served as an
ordinary call.  Purges claim the space first (`claim`), then drain.
"""
import os
import select

from ..abi import NONVOLATILE, VOLATILE
from ..linux.errors import check
from ..observe.events import Call
from .._native import ffi, lib
from . import calls

TAKE = 256   # entries read from the log per C call
WORDS = lib.VR_OP_WORDS


def consume(slot, pos, purged):
    """1 if the entry at `pos` was still published (apply it), 0 if cancelled."""
    return check(lib.vr_fast_consume(slot, pos, purged), "vr_fast_consume")


class InProcess:
    """`native`: the NativeCalls whose loop holds the regions; `purger` is
    set by the supervisor (settle, unpin)."""

    def __init__(self, native, profile, log):
        self.native, self.log = native, log
        self.purger = None
        self._returns_bytes = profile.returns != "purged"
        self._epoll = select.epoll()
        self._efds = {}          # slot -> our copy of the library's eventfd
        self._spaces = {}        # slot -> space with a region
        self._ops = ffi.new("uint64_t[]", WORDS * TAKE)
        self._counts = ffi.new("uint64_t[3]")
        self._draining = set()   # id() of spaces being drained (settle purges inside)

    @property
    def fd(self):
        """Readable when a library found its log half full."""
        return self._epoll.fileno()

    def close(self):
        """The native loop ends (no process holds the filter): the rest of
        every log goes into the model first."""
        for space in list(self._spaces.values()):
            self.detach(space)
        self._epoll.close()

    # --- attach and detach ------------------------------------------------------------
    def attach(self, space, memfd, efd):
        """The library of `space` said hello with its region's memfd and its
        eventfd (numbers in the program).  True once C maps the region."""
        loop = self.native.loop
        if loop is None or space.slot < 0 or space.slot in self._spaces:
            return False
        try:
            mine = _take_fd(space.tgid, memfd)
            try:
                check(lib.vr_fast_attach(space.slot, mine, loop.profile), "vr_fast_attach")
            finally:
                os.close(mine)
            wake = _take_fd(space.tgid, efd)
        except OSError as exc:
            self.log(f"in-process library of {space.tgid} not attached: {exc}")
            return False
        self._efds[space.slot] = wake
        self._spaces[space.slot] = space
        self._epoll.register(wake, select.EPOLLIN)
        self.native.unfollow(space)   # its forks copy the model: we drain first
        self.log(f"in-process library attached in {space.tgid}")
        return True

    def has(self, space):
        return self._spaces.get(space.slot) is space

    def detach(self, space):
        """`space` is gone (exit or exec): the rest of its log, then forget it."""
        if not self.has(space):
            return
        self.drain(space, final=True)
        counts = self.counts(space)
        self.log(f"in-process library of {space.tgid}: {counts[0]} calls answered there, "
                 f"{counts[1]} left to the supervisor, {counts[2]} re-pins taken back")
        self._forget(space.slot)

    def release(self):
        """After an internal error: let every library go as it is (its
        calls then take the trap, and fail with ENOSYS once it is gone)."""
        for slot in list(self._efds):
            self._forget(slot)

    def _forget(self, slot):
        lib.vr_fast_detach(slot)
        wake = self._efds.pop(slot)
        self._epoll.unregister(wake)
        os.close(wake)
        self._spaces.pop(slot, None)

    def counts(self, space):
        """(answered in the program, left to the supervisor, re-pins taken back)."""
        check(lib.vr_fast_region_counts(space.slot, self._counts), "vr_fast_region_counts")
        return tuple(self._counts[0:3])

    # --- the log --------------------------------------------------------------------
    def woken(self):
        """The epoll fd was readable: drain the spaces whose library asked."""
        slots = {fd: slot for slot, fd in self._efds.items()}
        for fd, _ in self._epoll.poll(0):
            try:
                os.read(fd, 8)
            except BlockingIOError:
                pass
            self.drain(self._spaces[slots[fd]])

    def drain_all(self):
        for space in list(self._spaces.values()):
            self.drain(space)

    def claim(self, space):
        """A purge of `space` starts: its library leaves every re-pin to us
        until the mirror's purge flag is pushed again (_tell_mirror)."""
        if self.has(space):
            lib.vr_fast_claim(space.slot)

    def drain(self, space, final=False):
        """Apply `space`'s log to its model, in order.  `final`: the space
        is gone (nothing to settle or unpin)."""
        if not self.has(space) or id(space) in self._draining:
            return
        self._draining.add(id(space))
        try:
            self._drain(space, final)
        finally:
            self._draining.discard(id(space))

    def _drain(self, space, final):
        slot, buf = space.slot, self._ops
        lib.vr_fast_rearm(slot)   # before the log is read: no wake-up is lost
        emit = self.native.bus.emit if self.native.bus.wants(Call) else None
        # A VOLATILE followed at once by the re-pin of the same range, where
        # nothing is purged or trapped, is consumed in C and applied here as
        # one op (an allocator's common pair: the model's cost per call would
        # bound how fast a program can make them).  Not while a purge is
        # under way (re-pins settle with it) or calls are traced one by one.
        pairs = emit is None and not final and not space.purge_under_way
        repinned = False
        # At most a log's worth: that covers every entry published before
        # this drain began (a purge's claim came first), and a program that
        # logs as fast as we apply cannot keep the loop from its other work.
        left = lib.VR_REGION_CELLS
        while left > 0:
            if pairs:
                n = lib.vr_fast_take_pairs(slot, buf, min(TAKE, left))
                if n > 0:
                    left -= n
                    self._pairs(space, ffi.unpack(buf, WORDS * n))
                    continue
            # Then the entry C left (just the one while pairs may follow it).
            n = lib.vr_fast_take(slot, buf, 1 if pairs else min(TAKE, left))
            if n <= 0:
                break
            left -= n
            words = ffi.unpack(buf, WORDS * n)
            for at in range(0, WORDS * n, WORDS):
                start, end, pos, flags = words[at:at + WORDS]
                if flags & lib.VR_OPF_CANCELLED:
                    consume(slot, pos, 0)
                    continue
                volatile = bool(flags & lib.VR_OPF_VOLATILE)
                purged = False
                if not volatile and not final:
                    purged, met = self._repin(space, start, end)
                    repinned |= met
                if not consume(slot, pos, int(purged)):   # cancelled meanwhile: its caller asks us
                    continue
                calls.apply(space, volatile, start, end, bool(flags & lib.VR_OPF_PARTIAL), purged)
                if emit:
                    length = end - start
                    emit(Call(pid=space.tgid, tid=flags >> 8,
                              mode=VOLATILE if volatile else NONVOLATILE, start=start, len=length,
                              ret=length if self._returns_bytes else int(purged),
                              errno=0, purged=purged, path="inproc",
                              volatile=space.ranges.volatile_bytes,
                              purged_bytes=space.ranges.purged_bytes))
        if repinned:   # purged runs or trapped spans ended: push them again
            self.native.sync_purged(space)

    @staticmethod
    def _pairs(space, words):
        """Ops of vr_fast_take_pairs: a pair over memory where nothing was
        volatile leaves the model as it was, so only the counts change;
        elsewhere it is applied as its two calls.  A VOLATILE whose re-pin
        was cancelled is applied alone."""
        for at in range(0, len(words), WORDS):
            start, end, _, flags = words[at:at + WORDS]
            partial = bool(flags & lib.VR_OPF_PARTIAL)
            if not flags & lib.VR_OPF_PAIR:
                calls.apply(space, True, start, end, partial)
            elif space.ranges.overlapping(start, end):
                calls.apply(space, True, start, end, partial)
                calls.apply(space, False, start, end)
            else:
                calls.count_pair(space, start, end)

    def _repin(self, space, start, end):
        """What a re-pin served in Python does before its answer: settle a
        purge under way there, end the SIGBUS trap.  (purged, met: purged
        pages or trapped spans were there)."""
        if space.purge_under_way:
            self.purger.settle(space, start, end)
        purged = space.ranges.is_purged(start, end)
        met = purged or bool(space.trapped.overlapping(start, end))
        if met:
            self.purger.unpin(space, (start, end))
        return purged, met



def _take_fd(pid, fd):
    """Our copy of file descriptor `fd` of process `pid` (pidfd_getfd)."""
    got = lib.vr_pidfd_getfd(pid, fd)
    if got < 0:
        raise OSError(-got, f"pidfd_getfd({pid}, {fd}): {os.strerror(-got)}")
    return got
