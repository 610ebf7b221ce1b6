"""Tests for vrangeemu.model.ranges: hand cases, an oracle state machine, a stress run."""

import itertools
import random

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vrangeemu.model.ranges import PAGE, Range, VolatileRanges

P = PAGE


def spans(vr):
    """Ranges as (first page, end page, partial)."""
    return [(r.start // P, r.end // P, r.partial) for r in vr]


def pages(intervals):
    return [(s // P, e // P) for s, e in intervals]


def marked(*spans_, partial=False):
    vr = VolatileRanges()
    for s, e in spans_:
        vr.mark(s * P, e * P, partial)
    return vr


# -- mark ----------------------------------------------------------------------

def test_mark_inside_existing_range_is_noop():
    vr = marked((0, 10))
    before = list(vr)
    vr.mark(2 * P, 5 * P, partial=True)
    vr.mark(0, 10 * P, partial=True)  # exactly covering counts as covered
    assert list(vr) == before and before[0].stamp == 1 and not before[0].partial
    vr._check()


def test_overlapping_marks_merge_with_fresh_stamp():
    vr = marked((0, 4), (6, 8), (10, 12))
    vr.mark(3 * P, 7 * P, partial=True)
    assert spans(vr) == [(0, 8, True), (10, 12, False)]
    assert next(iter(vr)).stamp == 4
    vr.mark(P, 11 * P)  # spans several ranges, none covers it
    assert spans(vr) == [(0, 12, False)]
    assert next(iter(vr)).stamp == 5
    vr._check()


def test_touching_marks_stay_separate_ranges():
    vr = marked((0, 2), (4, 6))
    vr.mark(2 * P, 4 * P)
    assert spans(vr) == [(0, 2, False), (2, 4, False), (4, 6, False)]
    assert len(vr) == 3 and vr.volatile_bytes == 6 * P
    vr._check()


# -- unmark --------------------------------------------------------------------

def test_unmark_head_tail_middle_whole():
    vr = marked((0, 10), (20, 30), (40, 50))
    vr.unmark(0, 2 * P)            # head
    vr.unmark(8 * P, 10 * P)       # tail
    vr.unmark(24 * P, 26 * P)      # middle: split
    vr.unmark(40 * P, 50 * P)      # whole
    assert spans(vr) == [(2, 8, False), (20, 24, False), (26, 30, False)]
    assert vr.volatile_bytes == 14 * P
    vr._check()


def test_unmark_spanning_several_ranges():
    vr = marked((0, 4), (5, 8), (9, 12), (13, 16))
    assert vr.unmark(2 * P, 14 * P) is False
    assert spans(vr) == [(0, 2, False), (14, 16, False)]
    assert vr.unmark(100 * P, 200 * P) is False  # nothing there: harmless
    vr._check()


def test_unmark_without_purged_pages_returns_false():
    vr = marked((0, 8))
    assert vr.unmark(0, 8 * P) is False
    assert not vr and len(vr) == 0


def test_unmark_reports_purged_per_page_not_per_range():
    vr = marked((0, 8))
    assert vr.set_purged(5 * P, 7 * P) == 2 * P
    assert vr.unmark(0, 3 * P) is False       # no purged page in here
    assert vr.is_purged(3 * P, 8 * P)
    assert vr.unmark(3 * P, 6 * P) is True    # page 5 was purged
    assert pages(vr.purged_intervals()) == [(6, 7)]
    assert vr.unmark(6 * P, 8 * P) is True
    assert vr.purged_bytes == 0 and not vr
    vr._check()


def test_unmark_clears_purged_state_before_remark():
    vr = marked((0, 4))
    vr.set_purged(0, 4 * P)
    assert vr.unmark(P, 2 * P) is True
    vr.mark(P, 2 * P)
    assert not vr.is_purged(P, 2 * P) and vr.purged_bytes == 3 * P
    vr._check()


# -- purged pages --------------------------------------------------------------

def test_mark_over_purged_pages_keeps_them_purged():
    vr = marked((2, 4))
    vr.set_purged(2 * P, 4 * P)
    vr.mark(0, 8 * P)  # merges the purged range into a bigger one
    assert spans(vr) == [(0, 8, False)]
    assert pages(vr.purged_intervals()) == [(2, 4)]
    assert vr.unpurged_intervals(next(iter(vr))) == [(0, 2 * P), (4 * P, 8 * P)]
    vr._check()


def test_set_purged_outside_any_range_is_ignored():
    vr = marked((4, 6))
    assert vr.set_purged(0, 4 * P) == 0
    assert vr.set_purged(6 * P, 9 * P) == 0
    assert vr.purged_intervals() == [] and vr.purged_bytes == 0
    assert vr.set_purged(0, 9 * P) == 2 * P   # only the volatile part counts
    assert vr.set_purged(0, 9 * P) == 0       # already purged
    vr._check()


def test_purged_intervals_merge_across_touching_ranges_and_clip():
    vr = marked((0, 2), (2, 4), (5, 6))
    assert vr.set_purged(P, 3 * P) == 2 * P
    assert vr.set_purged(0, P) + vr.set_purged(3 * P, 6 * P) == 3 * P
    assert pages(vr.purged_intervals()) == [(0, 4), (5, 6)]
    assert pages(vr.purged_intervals(P, 6 * P)) == [(1, 4), (5, 6)]
    assert not vr.is_purged(4 * P, 5 * P)
    vr._check()


# -- queries and whole-structure operations -------------------------------------

def test_overlapping_excludes_touching_ranges():
    vr = marked((0, 2), (2, 4), (4, 6))
    assert spans(vr.overlapping(2 * P, 4 * P)) == [(2, 4, False)]
    assert spans(vr.overlapping(P, 5 * P)) == spans(vr)
    assert vr.overlapping(6 * P, 9 * P) == []


def test_lru_oldest_first_and_split_pieces_keep_stamp():
    vr = marked((10, 20), (0, 4), (30, 34))
    vr.unmark(14 * P, 16 * P)
    assert [(r.start // P, r.stamp) for r in vr.lru()] == [(10, 1), (16, 1), (0, 2), (30, 3)]
    vr.mark(3 * P, 5 * P)  # refreshes (0, 4) into (0, 5)
    assert [r.start // P for r in vr.lru()] == [10, 16, 30, 0]
    vr._check()


def test_copy_is_independent_and_shares_clock():
    vr = marked((0, 4), (8, 12))
    vr.set_purged(0, P)
    twin = vr.copy()
    assert list(twin) == list(vr) and twin.purged_intervals() == vr.purged_intervals()
    twin.unmark(0, 2 * P)
    twin.mark(20 * P, 21 * P)
    vr.set_purged(8 * P, 9 * P)
    assert spans(vr) == [(0, 4, False), (8, 12, False)]
    assert pages(vr.purged_intervals()) == [(0, 1), (8, 9)]
    assert spans(twin) == [(2, 4, False), (8, 12, False), (20, 21, False)]
    assert pages(twin.purged_intervals()) == []
    vr.mark(40 * P, 41 * P)
    assert max(r.stamp for r in vr) == 4  # stamp 3 went to the twin
    vr._check()
    twin._check()


def test_clear_empties():
    vr = marked((0, 4))
    vr.set_purged(0, P)
    vr.clear()
    assert not vr and list(vr) == [] and list(vr.lru()) == []
    assert vr.volatile_bytes == vr.purged_bytes == 0 and vr.purged_intervals() == []
    vr.mark(0, P)
    assert next(iter(vr)).stamp == 2  # the clock is not reset
    vr._check()


def test_shared_external_clock():
    clock = itertools.count(100).__next__
    a, b = VolatileRanges(clock), VolatileRanges(clock)
    a.mark(0, P)
    b.mark(0, P)
    assert [r.stamp for r in a] == [100] and [r.stamp for r in b] == [101]


def test_range_is_immutable_value():
    r = Range(0, 2 * P, 3, True)
    assert r.size == 2 * P and r == Range(0, 2 * P, 3, True)
    try:
        r.start = P
    except AttributeError:
        pass
    else:
        raise AssertionError("Range is mutable")


# -- oracle state machine ------------------------------------------------------

NPAGES = 64


class Oracle:
    """Naive per-page model: owner range id and purged flag for every page."""

    def __init__(self):
        self.owner = [None] * NPAGES   # range id per page
        self.purged = [False] * NPAGES
        self.meta = {}                 # range id -> (stamp, partial)
        self.ids = itertools.count()
        self.stamps = itertools.count(1)

    def mark(self, a, b, partial):
        hits = [(s, e) for s, e, _ in self.runs() if s < b and e > a]
        if len(hits) == 1 and hits[0][0] <= a and b <= hits[0][1]:
            return  # one range covers [a, b)
        lo = min([a] + [s for s, _ in hits])
        hi = max([b] + [e for _, e in hits])
        rid = next(self.ids)
        self.meta[rid] = (next(self.stamps), partial)
        for p in range(lo, hi):
            self.owner[p] = rid

    def unmark(self, a, b):
        was = any(self.purged[a:b])
        for p in range(a, b):
            self.owner[p], self.purged[p] = None, False
        return was

    def set_purged(self, a, b):
        new = [p for p in range(a, b) if self.owner[p] is not None and not self.purged[p]]
        for p in new:
            self.purged[p] = True
        return len(new) * P

    def runs(self):
        """(first page, end page, id) of each range: a run of pages with the
        same owner (two pieces of a split range are never adjacent)."""
        out = []
        for rid, run in itertools.groupby(range(NPAGES), key=self.owner.__getitem__):
            run = list(run)
            if rid is not None:
                out.append((run[0], run[-1] + 1, rid))
        return out

    def ranges(self):
        """(start, end, stamp, partial) in address order."""
        return [(s * P, e * P) + self.meta[rid] for s, e, rid in self.runs()]


page_span = st.lists(st.integers(0, NPAGES), min_size=2, max_size=2, unique=True).map(sorted)


class RangesMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.vr = VolatileRanges()
        self.oracle = Oracle()

    @rule(span=page_span, partial=st.booleans())
    def mark(self, span, partial):
        a, b = span
        assert self.vr.mark(a * P, b * P, partial) is None
        self.oracle.mark(a, b, partial)

    @rule(span=page_span)
    def unmark(self, span):
        a, b = span
        assert self.vr.unmark(a * P, b * P) is self.oracle.unmark(a, b)

    @rule(span=page_span)
    def set_purged(self, span):
        a, b = span
        assert self.vr.set_purged(a * P, b * P) == self.oracle.set_purged(a, b)

    @rule(span=page_span)
    def queries(self, span):
        a, b = span
        expect = [r for r in self.oracle.ranges() if r[0] < b * P and r[1] > a * P]
        assert [(r.start, r.end, r.stamp, r.partial)
                for r in self.vr.overlapping(a * P, b * P)] == expect
        assert self.vr.is_purged(a * P, b * P) == any(self.oracle.purged[a:b])
        clipped = {p for s, e in self.vr.purged_intervals(a * P, b * P)
                   for p in range(s // P, e // P)}
        assert clipped == {p for p in range(a, b) if self.oracle.purged[p]}

    @rule()
    def fork(self):
        parent, self.vr = self.vr, self.vr.copy()
        parent.clear()  # must not disturb the copy we continue with
        parent._check()

    @invariant()
    def agrees_with_oracle(self):
        vr, oracle = self.vr, self.oracle
        vr._check()
        ranges = oracle.ranges()
        assert [(r.start, r.end, r.stamp, r.partial) for r in vr] == ranges
        assert [(r.start, r.end) for r in vr.lru()] == \
            [(s, e) for s, e, stamp, _ in sorted(ranges, key=lambda r: (r[2], r[0]))]
        purged = [p for p in range(NPAGES) if oracle.purged[p]]
        assert [p for s, e in vr.purged_intervals() for p in range(s // P, e // P)] == purged
        assert vr.volatile_bytes == sum(o is not None for o in oracle.owner) * P
        assert vr.purged_bytes == len(purged) * P
        assert len(vr) == len(ranges) and bool(vr) == bool(ranges)
        for r in vr:
            assert [p for s, e in vr.unpurged_intervals(r) for p in range(s // P, e // P)] == \
                [p for p in range(r.start // P, r.end // P) if not oracle.purged[p]]


RangesMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, database=None)
TestRangesAgainstOracle = RangesMachine.TestCase


# -- stress --------------------------------------------------------------------

def test_random_stress():
    rnd = random.Random(20140320)
    vr, npages = VolatileRanges(), 1 << 16
    for step in range(10_000):
        a = rnd.randrange(npages)
        b = min(npages, a + rnd.choice((1, 2, rnd.randint(1, 64), rnd.randint(1, 1024))))
        op = rnd.random()
        if op < 0.45:
            vr.mark(a * P, b * P, rnd.random() < 0.5)
        elif op < 0.75:
            assert vr.set_purged(a * P, b * P) >= 0
        elif op < 0.999:
            was = vr.is_purged(a * P, b * P)
            assert vr.unmark(a * P, b * P) is was
            assert vr.overlapping(a * P, b * P) == [] and not vr.is_purged(a * P, b * P)
        else:
            vr = vr.copy()
        if step % 100 == 0:
            vr._check()
    assert len(vr) > 100  # the run exercised a non-trivial tree
    vr._check()
