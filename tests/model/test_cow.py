"""COW reconciliation decisions (pure): who must agree before a shared page goes."""
import itertools

from hypothesis import given, strategies as st

from helpers import new_space
from page_oracle import FAST, NPAGES, histories, replay
from vrangeemu.model.cow import sharers_if_discardable, volatile_unpurged

P = 4096


def forked(n):
    clock = itertools.count(1).__next__
    spaces = [new_space(i, f"p{i}", clock) for i in range(n)]
    for sp in spaces:
        sp.ranges.mark(0, 8 * P)    # inherited across fork
    return spaces


def test_every_sharer_volatile_discards_from_all():
    parent, child = forked(2)
    assert sharers_if_discardable(3 * P, parent, [child], mapcount=2) == [parent, child]


def test_a_sharer_that_re_pinned_keeps_the_page():
    parent, child = forked(2)
    child.ranges.unmark(2 * P, 4 * P)
    assert sharers_if_discardable(3 * P, parent, [child], mapcount=2) is None
    assert sharers_if_discardable(5 * P, parent, [child], mapcount=2) == [parent, child]


def test_an_untraced_or_unfound_sharer_keeps_the_page():
    parent, child = forked(2)
    assert sharers_if_discardable(0, parent, [child], mapcount=3) is None
    assert sharers_if_discardable(0, parent, [], mapcount=2) is None


def test_a_sharer_whose_copy_is_already_purged_keeps_the_page():
    # It re-faulted the page after its purge: its copy is live data again.
    parent, child = forked(2)
    child.ranges.set_purged(0, P)
    assert sharers_if_discardable(0, parent, [child], mapcount=2) is None


def test_three_sharers_need_all_three():
    a, b, c = forked(3)
    assert sharers_if_discardable(P, a, [b, c], mapcount=3) == [a, b, c]
    c.ranges.unmark(0, 8 * P)
    assert sharers_if_discardable(P, a, [b, c], mapcount=3) is None


def test_the_zero_page_is_never_approved():
    # /proc/kpagecount says 0 for the shared zero page: nothing to keep, nothing
    # to free; the decision is "keep" whoever maps it.
    a, b = forked(2)
    assert sharers_if_discardable(0, a, [b], mapcount=0) is None
    assert sharers_if_discardable(0, a, [], mapcount=0) is None


def test_a_count_lower_than_the_sharers_found_keeps_the_page():
    # A sharer seen at a stale PFN, or the count read after one let go.
    a, b, c = forked(3)
    assert sharers_if_discardable(0, a, [b, c], mapcount=2) is None
    assert sharers_if_discardable(0, a, [b], mapcount=1) is None


def test_an_owner_that_no_longer_has_the_page_volatile_keeps_it():
    a, b = forked(2)
    a.ranges.unmark(0, P)
    assert sharers_if_discardable(0, a, [b], mapcount=2) is None


# --- against a page oracle -------------------------------------------------------

def mapcounts(found):
    """The kernel's count: mostly what was found (+1 for the owner), else any."""
    return st.one_of(st.just(found + 1), st.integers(0, found + 3))


@FAST
@given(histories(), st.data())
def test_sharers_against_the_page_oracle(history, data):
    """A page may go iff the kernel's mapcount is 1 + the traced sharers
    found and every one of them (owner too) has it volatile and not purged;
    then it goes from all of them, the owner first."""
    n, ops, _ = history
    h = replay(n, ops)
    page = data.draw(st.integers(0, NPAGES - 1), label="page")
    addr = page * P
    live = [m.volatile(page) and page not in m.purged
            for m in h.models]
    for sp, ok in zip(h.spaces, live):
        assert volatile_unpurged(sp, addr) is ok
    owner = data.draw(st.integers(0, n - 1), label="owner")
    others = data.draw(st.permutations([i for i in range(n) if i != owner]), label="others")
    others = others[:data.draw(st.integers(0, len(others)), label="found")]
    mapcount = data.draw(mapcounts(len(others)), label="mapcount")
    before = [(list(sp.ranges), sp.ranges.purged_intervals()) for sp in h.spaces]

    got = sharers_if_discardable(addr, h.spaces[owner], [h.spaces[i] for i in others], mapcount)

    assert [(list(sp.ranges), sp.ranges.purged_intervals()) for sp in h.spaces] == before
    sharers = [owner, *others]
    if mapcount == len(sharers) and all(live[i] for i in sharers):
        assert got is not None and [id(sp) for sp in got] == [id(h.spaces[i]) for i in sharers]
        for sp in got:          # it goes from all of them: then none may give it again
            sp.ranges.set_purged(addr, addr + P)
        assert not any(volatile_unpurged(h.spaces[i], addr) for i in sharers)
        assert sharers_if_discardable(addr, h.spaces[owner], [h.spaces[i] for i in others],
                                      mapcount) is None
    else:
        assert got is None, (mapcount, sharers, live)
