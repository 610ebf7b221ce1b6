"""What a purge discards: runs of volatile, unpurged, discardable pages (pure).

`discardable(start, end)` stands for the kernel's answer (pagemap): the
[(start, end)] runs within [start, end) that are resident and mapped by this
process alone.

>>> from vrangeemu.model.ranges import VolatileRanges
>>> r = VolatileRanges(); r.mark(0, 4 * 4096)
>>> purge_runs(r, lambda s, e: [(s, s + 4096), (s + 8192, e)])
[(0, 4096), (8192, 16384)]
"""
import bisect
import heapq

from .ranges import lru_key

PAGE = 4096


def range_runs(ranges, rng, discardable, within=(0, 1 << 64)):
    """[(start, end)] of range `rng` (clipped to `within`) that a purge may
    discard, address order.

    Pages already purged are skipped, and only discardable runs are kept,
    so nothing another process still maps (copy-on-write) and nothing never
    touched is ever counted as purged.
    """
    runs = []
    for start, end in ranges.unpurged_intervals(rng):
        start, end = max(start, within[0]), min(end, within[1])
        if start < end:
            runs += discardable(start, end)
    return runs


def still_discardable(ranges, runs, discardable):
    """The parts of planned `runs` that may still be discarded now.

    A plan is made when pressure is seen and carried out when a thread
    stops; meanwhile the program may have re-pinned some of it."""
    return [run for start, end in runs for rng in ranges.overlapping(start, end)
            for run in range_runs(ranges, rng, discardable, (start, end))]


def intersect(runs, others):
    """The parts of sorted, disjoint `runs` inside runs of sorted, disjoint `others`.

    >>> intersect([(0, 10), (20, 30)], [(5, 22), (28, 40)])
    [(5, 10), (20, 22), (28, 30)]
    """
    out, j = [], 0
    for start, end in runs:
        while j < len(others) and others[j][1] <= start:
            j += 1
        k = j
        while k < len(others) and others[k][0] < end:
            out.append((max(start, others[k][0]), min(end, others[k][1])))
            k += 1
    return out


def subtract(runs, cuts):
    """The parts of sorted, disjoint `runs` outside every run of `cuts`.

    >>> subtract([(0, 10), (20, 30)], [(5, 22), (28, 40)])
    [(0, 5), (22, 28)]
    """
    out = []
    for start, end in runs:
        for lo, hi in sorted(cuts):
            if hi <= start or lo >= end:
                continue
            if lo > start:
                out.append((start, lo))
            start = max(start, hi)
            if start >= end:
                break
        if start < end:
            out.append((start, end))
    return out


def purge_runs(ranges, discardable):
    """Every run of every range of one space (the SIGUSR1 purge): one
    `discardable` question per range."""
    return [run for rng in ranges for run in range_runs(ranges, rng, discardable)]


def clip_to_volatile(ranges, runs):
    """The parts of sorted, disjoint `runs` (what may be discarded, found
    by one scan of a whole span) that are volatile and not yet purged:
    purge_runs for the answer of one scan, in O(r log n + k) for r runs,
    whatever the number of ranges that have nothing resident.

    >>> from vrangeemu.model.ranges import VolatileRanges
    >>> r = VolatileRanges(); r.mark(0, 4 * PAGE); r.mark(8 * PAGE, 9 * PAGE)
    >>> _ = r.set_purged(PAGE, 2 * PAGE)
    >>> clip_to_volatile(r, [(0, 3 * PAGE), (7 * PAGE, 10 * PAGE)]) == [
    ...     (0, PAGE), (2 * PAGE, 3 * PAGE), (8 * PAGE, 9 * PAGE)]
    True
    """
    out = []
    for start, end in runs:
        for rng in ranges.overlapping(start, end):
            for s, e in ranges.unpurged_intervals(rng):
                s, e = max(s, start), min(e, end)
                if s < e:
                    out.append((s, e))
    return out


def choose_victims(spaces, need, discardable, blocked=None, holds=None):
    """Runs to discard to free at least `need` bytes, oldest range first.

    One LRU across all `spaces` (their ranges share one clock), as the
    kernel patches kept one LRU of volatile ranges.  A FULL range is
    discarded whole, and only if every page of it can be: when
    `blocked(space, start, end)` says a resident page there must stay (a
    copy-on-write sharer still needs it) the range is passed over.  A
    PARTIAL range loses only the pages still needed, lowest addresses first,
    and never the blocked ones.  Only discardable pages count as freed.
    `discardable(space, start, end)` -> [(start, end)] runs.  `holds(space,
    start, end)`, if given, is a cheap first look: False when the range has
    no page to take (purged already, or never touched), so the walk passes
    the oldest ranges, long purged, without asking what of them is purged.
    The leading ranges of a space that held nothing are remembered
    (`VolatileRanges.empty_before`, an LRU position), so the next walk starts after them; if
    that walk falls short of `need`, it is made again from the oldest.
    Returns ({space: [(start, end), ...]}, bytes freed).

    >>> from vrangeemu.model.ranges import VolatileRanges
    >>> from vrangeemu.model.space import AddressSpace
    >>> a = AddressSpace(1, "a"); a.ranges.mark(0, 2 * PAGE)
    >>> choose_victims([a], PAGE, lambda s, lo, hi: [(lo, hi)])[1]
    8192
    """
    plan, freed = _walk(spaces, need, discardable, blocked, holds)
    if freed < need and any(sp.ranges.empty_before for sp in spaces):
        for sp in spaces:
            sp.ranges.empty_before = 0
        plan, freed = _walk(spaces, need, discardable, blocked, holds)
    return plan, freed


def _walk(spaces, need, discardable, blocked, holds):
    # Lazy: a decision usually needs the oldest few of maybe 10^5 ranges.
    oldest_first = heapq.merge(*(_lru_items(i, sp) for i, sp in enumerate(spaces)),
                               key=lambda item: item[0])
    plan, freed, leading = {}, 0, set(range(len(spaces)))
    for (_, _, i), space, rng in oldest_first:
        if freed >= need:
            break
        empty = holds is not None and not holds(space, rng.start, rng.end)
        if not empty and not rng.partial and blocked and blocked(space, rng.start, rng.end):
            leading.discard(i)   # it holds pages: not empty
            continue
        runs = [] if empty else range_runs(space.ranges, rng,
                                           lambda lo, hi: discardable(space, lo, hi))
        if i in leading:
            if runs:
                leading.discard(i)
            else:
                space.ranges.empty_before = lru_key(rng) + 1
        if rng.partial:
            runs = _first_bytes(runs, need - freed)
        if runs:
            plan.setdefault(space, []).extend(runs)
            freed += sum(end - start for start, end in runs)
    return plan, freed


def _lru_items(i, space):
    for r in space.ranges.lru(space.ranges.empty_before):
        yield (r.stamp, r.start, i), space, r


def _first_bytes(runs, nbytes):
    """The leading runs covering `nbytes` (rounded up to pages)."""
    out = []
    for start, end in runs:
        if nbytes <= 0:
            break
        end = min(end, start + -(-nbytes // PAGE) * PAGE)
        out.append((start, end))
        nbytes -= end - start
    return out


class RunIndex:
    """Sorted, disjoint runs, asked for their parts within a span."""

    def __init__(self, runs):
        self.runs = runs
        self.starts = [s for s, _ in runs]

    def holds(self, lo, hi):
        """True if a run has a part inside [lo, hi).

        >>> RunIndex([(0, 4), (6, 10)]).holds(4, 6), RunIndex([(0, 4)]).holds(3, 9)
        (False, True)
        """
        i = bisect.bisect_right(self.starts, lo) - 1
        if i >= 0 and self.runs[i][1] > lo:
            return True
        return i + 1 < len(self.runs) and self.runs[i + 1][0] < hi

    def within(self, lo, hi):
        """The parts of the runs inside [lo, hi), in order.

        >>> RunIndex([(0, 4), (6, 10)]).within(2, 8)
        [(2, 4), (6, 8)]
        """
        runs, out = self.runs, []
        for i in range(max(bisect.bisect_right(self.starts, lo) - 1, 0), len(runs)):
            s, e = runs[i]
            if s >= hi:
                break
            if e > lo:
                out.append((max(s, lo), min(e, hi)))
        return out


def split_runs(runs, start, end):
    """(the parts of `runs` within [start, end), the parts outside), in order.

    >>> split_runs([(0, 4), (6, 10)], 2, 8)
    ([(2, 4), (6, 8)], [(0, 2), (8, 10)])
    """
    inside, outside = [], []
    for s, e in runs:
        if e <= start or s >= end:
            outside.append((s, e))
            continue
        inside.append((max(s, start), min(e, end)))
        if s < start:
            outside.append((s, start))
        if e > end:
            outside.append((end, e))
    return inside, outside
