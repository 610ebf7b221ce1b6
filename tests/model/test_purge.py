"""purge_runs: which pages a purge discards (pure)."""
from vrangeemu.model.purge import purge_runs
from vrangeemu.model.ranges import VolatileRanges

P = 4096


def pages(*ok_pages):
    """A discardable() that says yes for the listed page numbers only."""
    return lambda start, end: [(a // P) in ok_pages for a in range(start, end, P)]


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
