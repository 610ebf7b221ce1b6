"""COW reconciliation decisions (pure): who must agree before a shared page goes."""
import itertools

from vrangeemu.model.cow import sharers_if_discardable
from vrangeemu.model.ranges import VolatileRanges
from vrangeemu.model.space import AddressSpace

P = 4096


def forked(n):
    clock = itertools.count(1).__next__
    spaces = [AddressSpace(i, f"p{i}", VolatileRanges(clock)) for i in range(n)]
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
