"""purge_runs: which pages a purge discards (pure)."""
from hypothesis import given, strategies as st

from vrangeemu.model.purge import clip_to_volatile, purge_runs
from vrangeemu.model.ranges import VolatileRanges

P = 4096


def as_runs(flags, start):
    """Per-page booleans from `start` -> [(start, end)] runs of True."""
    runs, run = [], None
    for i, ok in enumerate(flags + [False]):
        addr = start + i * P
        if ok and run is None:
            run = addr
        elif not ok and run is not None:
            runs.append((run, addr))
            run = None
    return runs


def pages(*ok_pages):
    """A discardable() that says yes for the listed page numbers only."""
    return lambda start, end: as_runs([(a // P) in ok_pages for a in range(start, end, P)], start)


def test_only_volatile_discardable_unpurged_pages_are_planned():
    r = VolatileRanges()
    r.mark(0, 4 * P)
    r.mark(10 * P, 12 * P)
    r.set_purged(P, 2 * P)
    runs = purge_runs(r, pages(0, 1, 2, 3, 5, 6, 10, 11))
    # page 1 already purged; 4..9 not volatile; all of 10..11 discardable.
    assert runs == [(0, P), (2 * P, 4 * P), (10 * P, 12 * P)]


def test_shared_or_absent_pages_split_runs_and_are_never_planned():
    r = VolatileRanges()
    r.mark(0, 6 * P)
    assert purge_runs(r, pages(0, 2, 3, 5)) == [(0, P), (2 * P, 4 * P), (5 * P, 6 * P)]
    assert purge_runs(r, pages()) == []


def test_no_ranges_no_plan():
    assert purge_runs(VolatileRanges(), pages(0, 1)) == []


# --- choose_victims: one LRU across spaces --------------------------------------
import itertools

from helpers import new_space
from vrangeemu.model.purge import choose_victims


def spaces_with_shared_clock(n):
    clock = itertools.count(1).__next__
    return [new_space(i, f"p{i}", clock) for i in range(n)]


def everything(space, start, end):
    return [(start, end)]


def test_victims_are_taken_oldest_first_across_spaces():
    a, b = spaces_with_shared_clock(2)
    a.ranges.mark(0, 4 * P)          # stamp 1 (oldest)
    b.ranges.mark(0, 2 * P)          # stamp 2
    a.ranges.mark(10 * P, 12 * P)    # stamp 3 (newest)
    plan, freed = choose_victims([a, b], 5 * P, everything)
    assert plan == {a: [(0, 4 * P)], b: [(0, 2 * P)]} and freed == 6 * P


def test_full_ranges_go_whole_partial_ranges_lose_only_what_is_needed():
    a, = spaces_with_shared_clock(1)
    a.ranges.mark(0, 8 * P, partial=True)
    plan, freed = choose_victims([a], 3 * P - 100, everything)
    assert plan == {a: [(0, 3 * P)]} and freed == 3 * P
    a.ranges.unmark(0, 8 * P)
    a.ranges.mark(0, 8 * P, partial=False)
    plan, freed = choose_victims([a], P, everything)
    assert plan == {a: [(0, 8 * P)]} and freed == 8 * P


def test_only_discardable_pages_count_and_purged_ones_are_skipped():
    a, b = spaces_with_shared_clock(2)
    a.ranges.mark(0, 4 * P)
    a.ranges.set_purged(0, 2 * P)
    b.ranges.mark(0, 4 * P)
    shared_in_b = lambda sp, lo, hi: as_runs([sp is a or (addr // P) % 2 == 0
                                              for addr in range(lo, hi, P)], lo)
    plan, freed = choose_victims([a, b], 10 * P, shared_in_b)
    assert plan == {a: [(2 * P, 4 * P)], b: [(0, P), (2 * P, 3 * P)]}
    assert freed == 4 * P


def test_nothing_needed_or_nothing_volatile_plans_nothing():
    a, = spaces_with_shared_clock(1)
    assert choose_victims([a], P, everything) == ({}, 0)
    a.ranges.mark(0, P)
    assert choose_victims([a], 0, everything) == ({}, 0)


def test_a_full_range_with_a_blocked_page_is_passed_over_whole():
    a, b = spaces_with_shared_clock(2)
    a.ranges.mark(0, 4 * P)                 # FULL, oldest
    b.ranges.mark(0, 4 * P, partial=True)   # PARTIAL
    blocked = lambda sp, lo, hi: lo <= 2 * P < hi      # page 2 must stay, in both
    no_page_2 = lambda sp, lo, hi: [r for r in [(lo, min(hi, 2 * P)), (max(lo, 3 * P), hi)]
                                    if r[0] < r[1]]
    plan, freed = choose_victims([a, b], 8 * P, no_page_2, blocked)
    assert a not in plan                                   # all or nothing: nothing
    assert plan[b] == [(0, 2 * P), (3 * P, 4 * P)] and freed == 3 * P


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 8)), max_size=12),
       st.lists(st.tuples(st.integers(0, 48), st.integers(1, 6)), max_size=6),
       st.lists(st.booleans(), min_size=50, max_size=50))
def test_one_scan_clipped_to_the_ranges_plans_what_a_question_per_range_plans(marks, purges,
                                                                               resident):
    r = VolatileRanges()
    for start, n in marks:
        r.mark(start * P, (start + n) * P)
    for start, n in purges:
        r.set_purged(start * P, (start + n) * P)
    runs = as_runs(resident, 0)

    def discardable(lo, hi):
        return [(max(s, lo), min(e, hi)) for s, e in runs if s < hi and lo < e]
    assert clip_to_volatile(r, runs) == sorted(purge_runs(r, discardable))


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 4)), min_size=1, max_size=12),
       st.lists(st.booleans(), min_size=48, max_size=48),
       st.lists(st.integers(1, 12), min_size=1, max_size=4))
def test_a_walk_resumed_after_ranges_that_held_nothing_plans_what_a_walk_from_the_oldest_does(
        marks, resident, needs):
    # Purge after purge (residency only shrinks, as purges take pages), the
    # walk resumed at VolatileRanges.empty_before plans exactly what a walk
    # from the oldest range would.
    a, = spaces_with_shared_clock(1)
    for first, n in marks:
        a.ranges.mark(first * P, (first + n) * P)
    held = set(i for i, r in enumerate(resident) if r)

    def discardable(space, lo, hi):
        return as_runs([(addr // P) in held for addr in range(lo, hi, P)], lo)

    def holds(space, lo, hi):
        return any(lo // P <= p < hi // P for p in held)
    for need in needs:
        cursor = a.ranges.empty_before
        a.ranges.empty_before = 0
        want = choose_victims([a], need * P, discardable, None, holds)
        a.ranges.empty_before = cursor
        got = choose_victims([a], need * P, discardable, None, holds)
        assert got == want
        for start, end in got[0].get(a, []):   # the purge: those pages go
            a.ranges.set_purged(start, end)
            held -= set(range(start // P, end // P))


def test_a_walk_that_falls_short_after_the_resume_point_starts_again_from_the_oldest():
    from vrangeemu.model.ranges import lru_key
    a, = spaces_with_shared_clock(1)
    a.ranges.mark(0, P)            # oldest: empty at the first walk
    a.ranges.mark(4 * P, 5 * P)
    held = {4}
    discardable = lambda sp, lo, hi: as_runs([(x // P) in held for x in range(lo, hi, P)], lo)
    assert choose_victims([a], P, discardable)[0] == {a: [(4 * P, 5 * P)]}
    oldest = next(a.ranges.lru())
    assert a.ranges.empty_before == lru_key(oldest) + 1   # range 0 held nothing
    held = {0}                                  # written since, while volatile
    assert choose_victims([a], P, discardable)[0] == {a: [(0, P)]}
