"""What the SIGBUS trap of purged pages covers (pure).

The kernel patches raised SIGBUS at an access to a purged page of a volatile
range, and only there.  The supervisor gets that with a userfaultfd in
MISSING mode with UFFD_FEATURE_SIGBUS (linux/uffd.py): a missing page of a
registered span faults with SIGBUS (EFAULT in a syscall).  Two kernel facts
shape the decisions made here:

* Registering a span splits its mapping at both ends; unregistering part of
  it splits it again, and neighbours merge back once their registrations
  agree.  Registering each purged run cost two mappings a run
  (vm.max_map_count, 65530, was reached at ~32700 runs), so whole volatile
  ranges are registered: a range costs at most two more mappings however
  many of its pages go.
* Every missing page of a registered span faults, also a page the program
  never touched, which read as zeros under the patches.  So every page of a
  newly registered span that is missing before the discard (its *holes*)
  gets the zero page at once (UFFDIO_ZEROPAGE): a read gives zeros and a
  write an ordinary copy-on-write fault.  A hole was never touched, was
  freed by the program itself, or was purged before the span was trapped (a
  fork child's copies: the registration is not inherited); each of these
  read as zeros until now and still does.  The pages the purge discards are
  resident until their madvise, so they are no holes: they alone fault.
  Between registering and filling, an access to a hole by another thread
  of the program would fault too; the fill follows the registration at once.

`TrappedSpans` records what the supervisor registered; `spans_to_trap`
decides what to register at a purge, `repin_checked` which NONVOLATILE calls
the native loop must hand to Python (purged pages to report, trapped spans
to unregister).

>>> from vrangeemu.model.ranges import VolatileRanges
>>> ranges = VolatileRanges(); ranges.mark(0, 8 * PAGE); ranges.mark(8 * PAGE, 9 * PAGE)
>>> plan = [(0, PAGE), (2 * PAGE, 3 * PAGE)]          # pages 0 and 2 go
>>> spans_to_trap(ranges, plan, TrappedSpans(), lambda lo, hi: [(lo, hi)])
[(0, 32768)]
"""
from __future__ import annotations

import heapq
from typing import Callable

from sortedcontainers import SortedDict

from .purge import subtract
from .ranges import PAGE, VolatileRanges, _hits, _int_end

Runs = list[tuple[int, int]]
__all__ = ["TrappedSpans", "spans_to_trap", "repin_checked"]


class TrappedSpans:
    """Page-aligned spans registered on a space's SIGBUS userfaultfd, kept
    disjoint and merged (touching spans are one registration to the kernel).

    >>> t = TrappedSpans(); t.add(0, 4 * PAGE); t.add(4 * PAGE, 6 * PAGE)
    >>> t.intervals()
    [(0, 24576)]
    >>> t.remove(PAGE, 2 * PAGE), t.intervals()
    ([(4096, 8192)], [(0, 4096), (8192, 24576)])
    >>> t.overlapping(0, 3 * PAGE)
    [(0, 4096), (8192, 12288)]
    """

    def __init__(self) -> None:
        self._spans = SortedDict()   # start -> end; disjoint, never touching

    def add(self, start: int, end: int) -> None:
        """Record [start, end) as registered.  O((k + 1) log n)."""
        for s in _hits(self._spans, start, end, _int_end, touch=True):
            e = self._spans.pop(s)
            start, end = min(start, s), max(end, e)
        self._spans[start] = end

    def remove(self, start: int, end: int) -> Runs:
        """Forget [start, end); returns the registered pieces it held, in
        address order (what to unregister).  O((k + 1) log n)."""
        removed = []
        for s in _hits(self._spans, start, end, _int_end):
            e = self._spans.pop(s)
            removed.append((max(s, start), min(e, end)))
            if s < start:
                self._spans[s] = start
            if end < e:
                self._spans[end] = e
        return removed

    def overlapping(self, start: int, end: int) -> Runs:
        """Registered pieces of [start, end), clipped, in address order.
        O(log n + k)."""
        return [(max(s, start), min(self._spans[s], end))
                for s in _hits(self._spans, start, end, _int_end)]

    def intervals(self) -> Runs:
        """Every registered span, in address order.  O(n)."""
        return list(self._spans.items())

    def __bool__(self) -> bool:
        return bool(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __repr__(self) -> str:
        return f"TrappedSpans({self.intervals()!r})"

    def _check(self, ranges: VolatileRanges) -> None:
        """Assert the invariants: spans disjoint, not touching, whole pages,
        and volatile (a re-pin unregisters what it re-pins).  For tests and
        VRANGEEMU_CHECK=1."""
        prev_end = -1
        for s, e in self._spans.items():
            assert s < e and s % PAGE == 0 and e % PAGE == 0, (s, e)
            assert s > prev_end, f"trapped {(s, e)} touches or overlaps its left"
            pos = s
            for r in ranges.overlapping(s, e):
                assert r.start <= pos, f"trapped page {pos:#x} not volatile"
                pos = r.end
            assert pos >= e, f"trapped page {pos:#x} not volatile"
            prev_end = e


def spans_to_trap(ranges: VolatileRanges, plan: Runs, trapped: TrappedSpans,
                  anon: Callable[[int, int], Runs]) -> Runs:
    """The spans to register before the runs of `plan` are discarded: every
    volatile range sharing a page with a run of `plan`, less what `trapped`
    already holds, clipped to private anonymous mappings (the only ones a
    userfaultfd takes in MISSING mode, and the only ones a range is made of
    unless the program remapped it): `anon(lo, hi)` -> [(start, end)] within
    [lo, hi), the kernel's answer.  Address order, touching spans joined.

    >>> r = VolatileRanges(); r.mark(0, 4 * PAGE); r.mark(4 * PAGE, 8 * PAGE)
    >>> r.mark(10 * PAGE, 12 * PAGE); r.mark(20 * PAGE, 30 * PAGE)
    >>> t = TrappedSpans(); t.add(0, 2 * PAGE)
    >>> mapped = lambda lo, hi: [(lo, min(hi, 26 * PAGE))] if lo < 26 * PAGE else []
    >>> [(s // PAGE, e // PAGE) for s, e in spans_to_trap(
    ...     r, [(21 * PAGE, 22 * PAGE), (3 * PAGE, 5 * PAGE)], t, mapped)]
    [(2, 8), (20, 26)]
    """
    hit, last = {}, None   # start -> end of each range met
    for start, end in plan:   # plans under pressure come oldest range first
        if last is not None and last.start <= start and end <= last.end:
            continue   # the same range as the run before: no look-up
        for last in ranges.overlapping(start, end):
            hit[last.start] = last.end
    spans: Runs = []
    for start in sorted(hit):
        for lo, hi in subtract([(start, hit[start])], trapped.overlapping(start, hit[start])):
            for s, e in anon(lo, hi):
                if spans and spans[-1][1] == s:
                    spans[-1] = (spans[-1][0], e)
                else:
                    spans.append((s, e))
    return spans


def repin_checked(ranges: VolatileRanges, trapped: TrappedSpans) -> Runs:
    """Where a NONVOLATILE call needs Python, not the native loop: purged
    pages (its answer says so) and trapped spans (the trap must end before
    the answer arrives).  Sorted, disjoint, touching runs joined.

    >>> r = VolatileRanges(); r.mark(0, 8 * PAGE); _ = r.set_purged(0, PAGE)
    >>> t = TrappedSpans(); t.add(PAGE, 3 * PAGE); t.add(5 * PAGE, 6 * PAGE)
    >>> [(s // PAGE, e // PAGE) for s, e in repin_checked(r, t)]
    [(0, 3), (5, 6)]
    """
    runs: Runs = []
    for start, end in heapq.merge(ranges.purged_intervals(), trapped.intervals()):
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs
