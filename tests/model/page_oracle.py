"""A page-by-page oracle of one address space's volatile ranges, and random
histories of operations run on real spaces and on the oracle side by side
(shared by the model tests).

Each space's memory is a string of page states, one letter a page:

    '-' not resident       nothing to discard
    'R' resident, its own  discardable
    'S' resident, shared copy-on-write with a sharer that still needs it:
        not discardable, and `blocked`

as purging.py's callbacks report them (a blocked page is never discardable).
"""
import itertools

from hypothesis import HealthCheck, settings, strategies as st

from helpers import new_space

P = 4096
NPAGES = 20
MAX_SPACES = 3
FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# --- the oracle --------------------------------------------------------------------

class Pages:
    """One space, page by page: ranges as [first, end, stamp, partial] (page
    numbers), the set of purged pages.  The kernel patches' rules: a mark
    inside one range changes nothing; otherwise it replaces every range it
    overlaps by their union, with a fresh stamp and its own flag; unmark
    cuts ranges (pieces keep stamp and flag) and forgets purged pages;
    only volatile pages can be purged."""

    def __init__(self):
        self.ranges, self.purged = [], set()

    def copy(self):
        twin = Pages()
        twin.ranges, twin.purged = [list(r) for r in self.ranges], set(self.purged)
        return twin

    def mark(self, first, end, partial, tick):
        hits = [r for r in self.ranges if r[0] < end and first < r[1]]
        if len(hits) == 1 and hits[0][0] <= first and end <= hits[0][1]:
            return
        self.ranges = [r for r in self.ranges if r not in hits]
        self.ranges.append([min([first] + [r[0] for r in hits]),
                            max([end] + [r[1] for r in hits]), tick(), partial])

    def unmark(self, first, end):
        was = any(first <= p < end for p in self.purged)
        self.purged = {p for p in self.purged if not first <= p < end}
        pieces = []
        for s, e, stamp, partial in self.ranges:
            for a, b in ((s, min(e, first)), (max(s, end), e)) if s < end and first < e else ((s, e),):
                if a < b:
                    pieces.append([a, b, stamp, partial])
        self.ranges = pieces
        return was

    def set_purged(self, first, end):
        new = {p for p in range(first, end) if self.volatile(p)} - self.purged
        self.purged |= new
        return len(new) * P

    def volatile(self, page):
        return any(s <= page < e for s, e, _, _ in self.ranges)

    def candidates(self, rng, memory):
        """The pages of range `rng` a purge may take: not purged, discardable."""
        return [p for p in range(rng[0], rng[1]) if p not in self.purged and memory[p] == "R"]


def agree(real, model):
    """The real space holds what the oracle holds."""
    real.ranges._check()
    assert [(r.start // P, r.end // P, r.stamp, r.partial) for r in real.ranges] == \
        sorted(map(tuple, model.ranges))
    assert pages_of(real.ranges.purged_intervals()) == model.purged
    assert real.ranges.purged_bytes == len(model.purged) * P


def pages_of(runs):
    """The page numbers of [(start, end)] runs; fails if a page is in two runs
    or a run is not whole pages."""
    pages = set()
    for start, end in runs:
        assert start % P == 0 and end % P == 0 and start < end, (start, end)
        run = set(range(start // P, end // P))
        assert not run & pages, f"page(s) {sorted(run & pages)} planned twice"
        pages |= run
    return pages


def runs_of(flags, lo):
    """[(start, end)] byte runs of the pages i (from `lo`) where flags[i]."""
    runs, start = [], None
    for i, ok in enumerate(list(flags) + [False]):
        if ok and start is None:
            start = lo + i * P
        elif not ok and start is not None:
            runs.append((start, lo + i * P))
            start = None
    return runs


def discardable_in(memory):
    """The kernel's answer for one space: maximal runs of 'R' pages."""
    def discardable(lo, hi):
        assert lo % P == 0 and hi % P == 0 and lo < hi, (lo, hi)
        return runs_of([memory[p] == "R" for p in range(lo // P, hi // P)], lo)
    return discardable


def blocked_in(memory):
    def blocked(lo, hi):
        assert lo % P == 0 and hi % P == 0 and lo < hi, (lo, hi)
        return "S" in memory[lo // P:hi // P]
    return blocked


# --- random histories --------------------------------------------------------------

span = st.tuples(st.integers(0, NPAGES - 1), st.integers(1, 8)).map(
    lambda t: (t[0], min(NPAGES, t[0] + t[1])))
operation = st.one_of(
    st.tuples(st.just("mark"), st.integers(0, MAX_SPACES - 1), span, st.booleans()),
    st.tuples(st.just("unmark"), st.integers(0, MAX_SPACES - 1), span),
    st.tuples(st.just("purge"), st.integers(0, MAX_SPACES - 1), span),
    st.tuples(st.just("fork"), st.integers(0, MAX_SPACES - 1), st.integers(0, MAX_SPACES - 1)),
)
memory = st.text(alphabet="-RS", min_size=NPAGES, max_size=NPAGES)


class History:
    """Real spaces and their oracles, sharing one clock each."""

    def __init__(self, n):
        clock = itertools.count(1).__next__
        self.spaces = [new_space(100 + i, f"p{i}", clock) for i in range(n)]
        self.models = [Pages() for _ in range(n)]
        self._ticks = itertools.count(1)

    def tick(self):
        return next(self._ticks)

    def apply(self, op):
        """Run one operation on both sides and check they agree."""
        kind, i, *args = op
        i %= len(self.spaces)
        real, model = self.spaces[i], self.models[i]
        if kind == "mark":
            (first, end), partial = args
            real.ranges.mark(first * P, end * P, partial)
            model.mark(first, end, partial, self.tick)
        elif kind == "unmark":
            (first, end), = args
            assert real.ranges.unmark(first * P, end * P) == model.unmark(first, end)
        elif kind == "purge":
            (first, end), = args
            assert real.ranges.set_purged(first * P, end * P) == model.set_purged(first, end)
        else:   # fork: space j becomes a copy of space i (same stamps, same clock)
            j = args[0] % len(self.spaces)
            twin = new_space(real.tgid + 1000, real.name)
            twin.ranges = real.ranges.copy()
            self.spaces[j], self.models[j] = twin, model.copy()
        for sp, m in zip(self.spaces, self.models):
            agree(sp, m)

    def ranges(self):
        """Every range of every space as (stamp, first, space index, end, partial)."""
        return [(r[2], r[0], i, r[1], r[3]) for i, m in enumerate(self.models) for r in m.ranges]


def histories(min_ops=0, max_ops=25):
    return st.integers(1, MAX_SPACES).flatmap(lambda n: st.tuples(
        st.just(n), st.lists(operation, min_size=min_ops, max_size=max_ops),
        st.lists(memory, min_size=n, max_size=n)))


def replay(n, ops):
    h = History(n)
    for op in ops:
        h.apply(op)
    return h


def snapshot(spaces):
    return [(list(sp.ranges), sp.ranges.purged_intervals()) for sp in spaces]
