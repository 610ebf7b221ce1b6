"""The volatile ranges of one address space, as the vrange() patches kept them.

Two page-granular interval sets live here:

* the *ranges*: disjoint volatile ranges (the kernel's interval tree), each with
  an LRU stamp and a PARTIAL flag, indexed by start and by (stamp, start);
* the *purged* pages: pages whose data was discarded while volatile, kept as
  disjoint, maximally merged intervals that always lie inside the ranges.

Addresses are page aligned, ends exclusive, ``start < end``; the syscall layer
validates them, so nothing here does.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator, NamedTuple

from sortedcontainers import SortedDict

PAGE = 4096
__all__ = ["PAGE", "Range", "VolatileRanges", "lru_key"]


class Range(NamedTuple):
    """One volatile range ``[start, end)`` with its LRU stamp and PARTIAL flag.

    Immutable: VolatileRanges replaces ranges instead of editing them, so the
    LRU index keyed by ``(stamp, start)`` never goes stale.  A NamedTuple, as
    it is made on every call and is cheaper to make than a frozen dataclass.

    >>> r = Range(0x1000, 0x3000, stamp=7, partial=True)
    >>> r, r.size
    (Range(0x1000, 0x3000, stamp=7, partial=True), 8192)
    """

    start: int
    end: int
    stamp: int
    partial: bool = False

    @property
    def size(self) -> int:
        """Length in bytes."""
        return self.end - self.start

    def __repr__(self) -> str:
        return (f"Range({self.start:#x}, {self.end:#x}, "
                f"stamp={self.stamp}, partial={self.partial})")


def _range_end(r: Range) -> int:
    return r.end


def _int_end(e: int) -> int:
    return e


def _hits(d: SortedDict, start: int, end: int, end_of: Callable,
          touch: bool = False) -> list[int]:
    """The keys, in order, of the disjoint intervals in ``d`` (start ->
    value, ``end_of(value)`` is the end) sharing a page with [start, end), or
    with ``touch`` also those merely adjacent to it.  O(log n + k).

    Indexing the keys beats ``islice`` by ~4x for the usual k of 0-2: this
    runs once or twice per vrange call.
    """
    keys = d.keys()
    i = d.bisect_left(start)
    out = []
    if i:   # only the last interval starting before `start` can reach into it
        key = keys[i - 1]
        e = end_of(d[key])
        if e > start or (touch and e == start):
            out.append(key)
    n = len(keys)
    while i < n:
        key = keys[i]
        if key > end or (key == end and not touch):
            break
        out.append(key)
        i += 1
    return out


def lru_key(r: Range) -> int:
    # (stamp, start) as one int: stamps first, then starts (< 2**56); ints
    # compare and hash faster than tuples.
    return r.stamp << 56 | r.start


class VolatileRanges:
    """Volatile ranges and purged pages of one address space.

    ``clock`` returns the next LRU stamp; pass a shared one so several
    address spaces get comparable stamps.  Default: a private counter from 1.

    >>> P = PAGE
    >>> vr = VolatileRanges()
    >>> vr.mark(0, 4 * P); vr.mark(4 * P, 6 * P, partial=True)
    >>> list(vr)                      # touching ranges are not merged
    [Range(0x0, 0x4000, stamp=1, partial=False), Range(0x4000, 0x6000, stamp=2, partial=True)]
    >>> vr.set_purged(P, 5 * P) // P
    4
    >>> vr.unmark(0, P), vr.unmark(3 * P, 4 * P)
    (False, True)
    >>> list(vr), vr.purged_intervals()
    ([Range(0x1000, 0x3000, stamp=1, partial=False), Range(0x4000, 0x6000, stamp=2, partial=True)], [(4096, 12288), (16384, 20480)])
    """

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock if clock is not None else itertools.count(1).__next__
        self._ranges = SortedDict()  # start -> Range
        self._lru = SortedDict()     # (stamp, start) -> Range
        self._purged = SortedDict()  # start -> end; disjoint, never touching
        self._volatile_bytes = 0
        self._purged_bytes = 0
        # Ranges before this LRU position (lru_key) held nothing a purge
        # could take when last looked at: choose_victims resumes here.
        self.empty_before = 0

    # -- ranges --------------------------------------------------------------

    def _add(self, r: Range) -> None:
        self._ranges[r.start] = r
        self._lru[lru_key(r)] = r
        self._volatile_bytes += r.size

    def _drop(self, r: Range) -> None:
        del self._ranges[r.start]
        del self._lru[lru_key(r)]
        self._volatile_bytes -= r.size

    def mark(self, start: int, end: int, partial: bool = False) -> None:
        """VOLATILE: make [start, end) volatile.  Returns None.

        A single range already covering [start, end) is left alone (stamp and
        flag too).  Otherwise the ranges overlapping [start, end) are replaced
        by one range over their union with a fresh stamp and ``partial``.
        Merely touching ranges stay separate.  Purged pages stay purged.
        O((k + 1) log n) for k overlapping ranges.

        >>> vr = VolatileRanges()
        >>> vr.mark(0, 2 * PAGE); vr.mark(PAGE, 3 * PAGE, partial=True); list(vr)
        [Range(0x0, 0x3000, stamp=2, partial=True)]
        >>> vr.mark(PAGE, 2 * PAGE); list(vr)
        [Range(0x0, 0x3000, stamp=2, partial=True)]
        """
        hits = self.overlapping(start, end)
        if len(hits) == 1 and hits[0].start <= start and end <= hits[0].end:
            return  # kernel: an enclosing range wins, nothing is refreshed
        for r in hits:
            self._drop(r)
        if hits:
            start, end = min(start, hits[0].start), max(end, hits[-1].end)
        self._add(Range(start, end, self._clock(), bool(partial)))

    def unmark(self, start: int, end: int) -> bool:
        """NONVOLATILE: remove [start, end) from every range, trimming or
        splitting them (pieces keep stamp and flag), and forget its purged
        pages.  Returns True iff any page of [start, end) was purged.
        O((k + m + 1) log n) for k ranges and m purged intervals touched.

        >>> vr = VolatileRanges()
        >>> vr.mark(0, 3 * PAGE); vr.unmark(PAGE, 2 * PAGE)
        False
        >>> list(vr)
        [Range(0x0, 0x1000, stamp=1, partial=False), Range(0x2000, 0x3000, stamp=1, partial=False)]
        """
        purged = self._unpurge(start, end) > 0
        for r in self.overlapping(start, end):
            self._drop(r)
            if r.start < start:
                self._add(Range(r.start, start, r.stamp, r.partial))
            if end < r.end:
                self._add(Range(end, r.end, r.stamp, r.partial))
        return purged

    def overlapping(self, start: int, end: int) -> list[Range]:
        """Ranges sharing a page with [start, end), in address order.
        O(log n + k)."""
        return [self._ranges[k] for k in _hits(self._ranges, start, end, _range_end)]

    def __iter__(self) -> Iterator[Range]:
        """Ranges in address order.  O(1) to start, O(1) amortized per item."""
        return iter(self._ranges.values())

    def __len__(self) -> int:
        """Number of ranges.  O(1)."""
        return len(self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def bounds(self) -> tuple[int, int] | None:
        """(start of the lowest range, end of the highest), None if there
        are none.  O(log n); the live view scales its strips with it.

        >>> vr = VolatileRanges(); vr.bounds()
        >>> vr.mark(8 * PAGE, 9 * PAGE); vr.mark(PAGE, 2 * PAGE); vr.bounds() == (PAGE, 9 * PAGE)
        True
        """
        if not self._ranges:
            return None
        return self._ranges.peekitem(0)[1].start, self._ranges.peekitem(-1)[1].end

    def newest_stamp(self) -> int:
        """The stamp of the range marked last (0 if none): ranges marked
        later have larger stamps.  O(1)."""
        return self._lru.peekitem(-1)[1].stamp if self._lru else 0

    def marked_since(self, stamp: int) -> list[Range]:
        """Ranges whose stamp is larger than `stamp` (marked after it), oldest
        first.  O(log n + k).

        >>> vr = VolatileRanges(); vr.mark(0, PAGE); s = vr.newest_stamp()
        >>> vr.mark(4 * PAGE, 5 * PAGE); [r.start // PAGE for r in vr.marked_since(s)]
        [4]
        """
        return list(self._lru.values()[self._lru.bisect_left((stamp + 1) << 56):])

    def lru(self, since: int = 0) -> Iterator[Range]:
        """Ranges oldest stamp first, ties by start, from LRU position
        `since` on (lru_key(r) of the first range wanted, or more).  Lazy:
        do not mark or unmark while iterating (set_purged is fine).
        O(log n) to start.

        >>> vr = VolatileRanges(); vr.mark(0, PAGE); vr.mark(4 * PAGE, 5 * PAGE)
        >>> [r.start // PAGE for r in vr.lru(lru_key(next(vr.lru())) + 1)]
        [4]
        """
        lru = self._lru
        return map(lru.__getitem__, lru.islice(lru.bisect_left(since)))

    @property
    def volatile_bytes(self) -> int:
        """Total bytes in ranges.  O(1)."""
        return self._volatile_bytes

    # -- purged pages --------------------------------------------------------

    def _purge(self, start: int, end: int) -> int:
        """Add [start, end) to the purged set; return the bytes it added."""
        keys = _hits(self._purged, start, end, _int_end, touch=True)
        new = end - start
        for s in keys:
            e = self._purged.pop(s)
            new -= max(0, min(e, end) - max(s, start))  # touching ones overlap 0
        if keys:  # e is now the end of the rightmost one
            start, end = min(start, keys[0]), max(end, e)
        self._purged[start] = end
        self._purged_bytes += new
        return new

    def _unpurge(self, start: int, end: int) -> int:
        """Remove [start, end) from the purged set; return the bytes it removed."""
        removed = 0
        for s in _hits(self._purged, start, end, _int_end):
            e = self._purged.pop(s)
            removed += min(e, end) - max(s, start)
            if s < start:
                self._purged[s] = start
            if end < e:
                self._purged[end] = e
        self._purged_bytes -= removed
        return removed

    def set_purged(self, start: int, end: int) -> int:
        """Record that the volatile pages of [start, end) were discarded;
        non-volatile pages are ignored.  Returns the bytes newly purged.
        O((k + m + 1) log n).

        >>> vr = VolatileRanges(); vr.mark(PAGE, 2 * PAGE)
        >>> vr.set_purged(0, 3 * PAGE) == PAGE, vr.set_purged(0, 3 * PAGE)
        (True, 0)
        """
        return sum(self._purge(max(start, r.start), min(end, r.end))
                   for r in self.overlapping(start, end))

    def purged_intervals(self, start: int = 0, end: int = 2**64) -> list[tuple[int, int]]:
        """Purged intervals clipped to [start, end), in address order.
        O(log n + k)."""
        return [(max(s, start), min(self._purged[s], end))
                for s in _hits(self._purged, start, end, _int_end)]

    def is_purged(self, start: int, end: int) -> bool:
        """True iff any page of [start, end) is purged.  O(log n)."""
        return bool(_hits(self._purged, start, end, _int_end))

    def unpurged_intervals(self, rng: Range) -> list[tuple[int, int]]:
        """The parts of ``rng`` not yet purged, in address order.  O(log n + k).

        >>> vr = VolatileRanges(); vr.mark(0, 4 * PAGE); _ = vr.set_purged(PAGE, 2 * PAGE)
        >>> vr.unpurged_intervals(next(iter(vr)))
        [(0, 4096), (8192, 16384)]
        """
        gaps, pos = [], rng.start
        for s, e in self.purged_intervals(rng.start, rng.end):
            if pos < s:
                gaps.append((pos, s))
            pos = e
        if pos < rng.end:
            gaps.append((pos, rng.end))
        return gaps

    @property
    def all_purged(self) -> bool:
        """True if every volatile page is purged already (or none is
        volatile): a purge, which takes only pages not yet purged, has
        nothing to take.  O(1)."""
        return self._purged_bytes == self._volatile_bytes

    @property
    def purged_bytes(self) -> int:
        """Total purged bytes.  O(1)."""
        return self._purged_bytes

    # -- whole structure -----------------------------------------------------

    def copy(self) -> VolatileRanges:
        """An independent copy with the same stamps and the same clock (fork).
        Ranges are immutable, so sharing them is safe.  O(n)."""
        twin = VolatileRanges(self._clock)
        if not self._ranges and not self._purged:   # most forks: nothing to copy
            return twin
        twin._ranges = self._ranges.copy()
        twin._lru = self._lru.copy()
        twin._purged = self._purged.copy()
        twin._volatile_bytes = self._volatile_bytes
        twin._purged_bytes = self._purged_bytes
        return twin

    def clear(self) -> None:
        """Forget all ranges and purged pages (exec); the clock runs on.  O(n)."""
        self._ranges.clear()
        self._lru.clear()
        self._purged.clear()
        self._volatile_bytes = self._purged_bytes = self.empty_before = 0

    def __repr__(self) -> str:
        return f"VolatileRanges({list(self)!r}, purged={self.purged_intervals()!r})"

    def _check(self) -> None:
        """Assert every invariant.  O(n log n); for tests."""
        prev_end, total = 0, 0
        for key, r in self._ranges.items():
            assert isinstance(r, Range) and key == r.start < r.end, r
            assert r.start % PAGE == 0 and r.end % PAGE == 0, r
            assert r.start >= prev_end, f"overlap before {r}"
            assert self._lru.get(lru_key(r)) is r, f"LRU misses {r}"
            prev_end, total = r.end, total + r.size
        assert len(self._lru) == len(self._ranges), "stale LRU entries"
        assert total == self._volatile_bytes, (total, self._volatile_bytes)

        prev_end, total = -1, 0
        for s, e in self._purged.items():
            assert s < e and s % PAGE == 0 and e % PAGE == 0, (s, e)
            assert s > prev_end, f"purged {(s, e)} touches or overlaps its left"
            pos = s  # the ranges must tile [s, e) without a gap
            for r in self.overlapping(s, e):
                assert r.start <= pos, f"purged page {pos:#x} not volatile"
                pos = r.end
            assert pos >= e, f"purged page {pos:#x} not volatile"
            prev_end, total = e, total + e - s
        assert total == self._purged_bytes, (total, self._purged_bytes)
