"""model.trap: what the SIGBUS trap registers, against a page oracle."""
import pytest
from hypothesis import given, strategies as st

from page_oracle import FAST, NPAGES, P, pages_of, runs_of
from vrangeemu.model.ranges import VolatileRanges
from vrangeemu.model.trap import TrappedSpans, repin_checked, spans_to_trap

span = st.tuples(st.integers(0, NPAGES - 1), st.integers(1, 8)).map(
    lambda t: (t[0], min(NPAGES, t[0] + t[1])))
page_set = st.sets(st.integers(0, NPAGES - 1))


def volatile(marks, purged):
    """VolatileRanges with `marks` [(first, end)] and `purged` pages (if volatile)."""
    ranges = VolatileRanges()
    for first, end in marks:
        ranges.mark(first * P, end * P)
    for page in purged:
        ranges.set_purged(page * P, (page + 1) * P)
    return ranges


def trapped_of(spans):
    trapped = TrappedSpans()
    for first, end in spans:
        trapped.add(first * P, end * P)
    return trapped


@FAST
@given(st.lists(span, max_size=6), st.lists(span, max_size=4), st.lists(span, max_size=3),
       page_set)
def test_spans_to_trap_are_the_untrapped_anonymous_pages_of_every_range_the_plan_meets(
        marks, plan, trapped_spans, unmapped):
    ranges = volatile(marks, ())
    trapped = trapped_of(trapped_spans)

    def anon(lo, hi):
        assert lo % P == 0 and hi % P == 0 and lo < hi, (lo, hi)
        return runs_of([p not in unmapped for p in range(lo // P, hi // P)], lo)

    got = spans_to_trap(ranges, [(a * P, b * P) for a, b in plan], trapped, anon)
    planned = {p for a, b in plan for p in range(a, b)}
    hit = [r for r in ranges if any(r.start // P <= p < r.end // P for p in planned)]
    want = {p for r in hit for p in range(r.start // P, r.end // P)}
    want -= unmapped | pages_of(trapped.intervals())
    assert pages_of(got) == want
    assert got == sorted(got) and all(a[1] < b[0] for a, b in zip(got, got[1:]))  # joined


@FAST
@given(st.lists(st.tuples(st.booleans(), span), max_size=12))
def test_trapped_spans_follow_a_page_set(ops):
    trapped, pages = TrappedSpans(), set()
    for add, (first, end) in ops:
        if add:
            trapped.add(first * P, end * P)
            pages |= set(range(first, end))
        else:
            removed = trapped.remove(first * P, end * P)
            assert pages_of(removed) == pages & set(range(first, end))
            pages -= set(range(first, end))
        everything = VolatileRanges()
        everything.mark(0, NPAGES * P)
        trapped._check(everything)
        assert pages_of(trapped.intervals()) == pages
        assert pages_of(trapped.overlapping(3 * P, 9 * P)) == pages & set(range(3, 9))


@FAST
@given(st.lists(span, max_size=6), page_set, st.lists(span, max_size=4))
def test_repin_checked_is_purged_or_trapped(marks, purged, trapped_spans):
    ranges = volatile(marks, purged)
    trapped = trapped_of(trapped_spans)
    got = repin_checked(ranges, trapped)
    assert pages_of(got) == pages_of(ranges.purged_intervals()) | pages_of(trapped.intervals())
    assert all(a[1] < b[0] for a, b in zip(got, got[1:]))   # sorted, touching runs joined


def test_trapped_outside_the_ranges_breaks_the_invariant():
    ranges, trapped = volatile([(0, 4)], ()), trapped_of([(2, 6)])
    with pytest.raises(AssertionError, match="not volatile"):
        trapped._check(ranges)
