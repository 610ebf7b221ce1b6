"""Serving one vrange call against one address space (no ptrace here).

The supervisor decodes nothing itself: it hands the raw arguments to
`serve()` and sends back what it returns; the answer carries the decoded
call (one decode per call: tracing and the checks read `answer.call`).
The model is changed only by `Answer.commit()`, which the supervisor calls
after the answer reached the program, so a call the kernel restarts is
never applied twice.
"""
import errno
from typing import Callable, NamedTuple, Optional

from ..abi import NONVOLATILE, VOLATILE, Call, Reply
from ..model.vma import extent


class Answer(NamedTuple):
    value: int                            # the syscall's return value when error == 0
    error: int                            # positive errno, or 0
    commit: Optional[Callable[[], None]]  # applies the change; None when nothing changes
    # NONVOLATILE over purged pages: (start, end) whose purged pages must
    # read as zeros, not raise SIGBUS, once the answer arrives.
    repinned_purged: Optional[tuple] = None
    # (start, end) the call changed, for what follows a call (--check-access).
    span: Optional[tuple] = None
    call: Optional[Call] = None           # the decoded call (None: not decoded)
    # (addr, value) of a `purged` write left until the re-pin is done: the
    # pointer lies in trapped pages this call re-pins (write_after_repin).
    purged_write: Optional[tuple] = None
    # (start, end) whose SIGBUS trap the supervisor ended for this call.
    unpinned: Optional[tuple] = None

    @property
    def repinned(self):
        """(start, end) a successful NONVOLATILE re-pins, else None: its
        SIGBUS trap must end before the answer arrives."""
        if self.error or self.call is None or self.call.mode != NONVOLATILE:
            return None
        return self.span


def serve(space, profile, args, write_purged, settle=None):
    """Answer one call of `profile` with raw `args` for `space`.

    `space` has `.ranges` (VolatileRanges), `.memory` (a ProcessMemory-like
    view: vmas(), mark_locked()), `.may_lock` and `.stats` (a supervisor
    TracedSpace); `write_purged(addr, value)`
    writes the caller's `int *purged` and returns 0 or a positive errno;
    `settle(start, end)`, before a valid NONVOLATILE is answered, finishes
    what a purge under way still has to discard there.
    """
    call = profile.decode(args)
    if call.error:
        return _refuse(space, call, call.error)
    end = call.start + call.length
    volatile = call.mode == VOLATILE
    vmas = space.memory.vmas(call.start, end)
    if volatile and space.may_lock:   # else no mlock was ever seen (see fastloop)
        vmas = space.memory.mark_locked(vmas)
    processed, err = extent(call.start, end, vmas, volatile)
    if err:
        # The kernel wrote *purged = 0 before walking: a bad pointer wins.
        if call.purged_ptr and write_purged(call.purged_ptr, 0):
            err = errno.EFAULT
        return _refuse(space, call, err)
    stop = call.start + processed
    if settle and not volatile:
        settle(call.start, stop)
    purged = not volatile and space.ranges.is_purged(call.start, stop)
    later = None
    if call.purged_ptr:
        if not volatile and _in_trap_repinned(space, call.purged_ptr, call.start, stop):
            later = (call.purged_ptr, int(purged))
        elif write_purged(call.purged_ptr, int(purged)):
            return _refuse(space, call, errno.EFAULT)

    def commit():
        apply(space, volatile, call.start, stop, call.partial, purged)
    return Answer(profile.encode(call, Reply(processed, purged)), 0, commit,
                  (call.start, stop) if purged else None, (call.start, stop), call, later)


def _in_trap_repinned(space, ptr, start, stop):
    """`ptr`'s int lies in SIGBUS-trapped pages that [start, stop) re-pins,
    and they can be written: the kernel re-pins before it writes *purged,
    so that write succeeds once the trap there has ended."""
    return (start <= ptr and ptr + 4 <= stop and space.trapped.overlapping(ptr, ptr + 4)
            and space.memory.writable(ptr, 4))


def write_after_repin(answer, space, write_purged):
    """Do the `purged` write serve() left for after the re-pin (the trap of
    the re-pinned span has ended); EFAULT if it still fails (the program
    unmapped or protected the page in between: the purged pages then read
    as zeros, not SIGBUS, while the range stays volatile)."""
    if answer.purged_write and write_purged(*answer.purged_write):
        return _refuse(space, answer.call, errno.EFAULT)
    return answer


def apply(space, volatile, start, stop, partial=False, purged=False):
    """The model change of one answered call that processed [start, stop)
    (also for the calls the native loop answered)."""
    stats = space.stats
    stats.calls += 1
    if volatile:
        space.ranges.mark(start, stop, partial)
        stats.volatile_calls += 1
        stats.marked_bytes += stop - start
        stats.volatile_peak = max(stats.volatile_peak, space.ranges.volatile_bytes)
    else:
        space.ranges.unmark(start, stop)
        stats.purged_answers += purged


def count_pair(space, start, stop):
    """A VOLATILE of [start, stop) and its re-pin right after, over memory
    where nothing was volatile (applied together, from the in-process log):
    the model is as it was, only the counts change, as apply() would count
    the two calls."""
    stats = space.stats
    stats.calls += 2
    stats.volatile_calls += 1
    stats.marked_bytes += stop - start
    stats.volatile_peak = max(stats.volatile_peak, space.ranges.volatile_bytes + stop - start)


def _refuse(space, call, err):
    def commit():
        space.stats.calls += 1
        space.stats.errors += 1
    return Answer(0, err, commit, call=call)
