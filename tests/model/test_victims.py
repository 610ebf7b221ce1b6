"""Victim choice (model.purge) against a page-bitmap oracle written apart.

Random operation sequences (mark FULL/PARTIAL, unmark, set_purged, fork)
run over a few address spaces sharing one LRU clock, both on the real
VolatileRanges and on page_oracle.Pages, a page-by-page model of the same
rules; `ranges._check()` runs after every operation.  The plans of
choose_victims, range_runs, still_discardable and purge_runs are then
checked page by page, with random page states (see page_oracle) standing
for the kernel's `discardable` and `blocked` answers.
"""
from hypothesis import given, strategies as st

from page_oracle import (FAST, NPAGES, P, History, blocked_in, discardable_in, histories,
                         memory, operation, pages_of, replay, snapshot)
from vrangeemu.model.purge import choose_victims, purge_runs, range_runs, still_discardable


# --- choose_victims ----------------------------------------------------------------

def plan_pages(h, plan):
    """{space index: planned page numbers}; the plan names only our spaces,
    each with a non-empty list of runs."""
    index = {id(sp): i for i, sp in enumerate(h.spaces)}
    assert all(id(sp) in index for sp in plan), "plan names a space it was not given"
    assert all(plan.values()), "a space with nothing to purge is in the plan"
    return {index[id(sp)]: pages_of(runs) for sp, runs in plan.items()}


def check_victims(h, memories, need):
    before = snapshot(h.spaces)
    discardable = {id(sp): discardable_in(m) for sp, m in zip(h.spaces, memories)}
    blocked = {id(sp): blocked_in(m) for sp, m in zip(h.spaces, memories)}
    plan, freed = choose_victims(list(h.spaces), need,
                                 lambda sp, lo, hi: discardable[id(sp)](lo, hi),
                                 lambda sp, lo, hi: blocked[id(sp)](lo, hi))
    assert snapshot(h.spaces) == before, "choose_victims changed a space"
    taken = plan_pages(h, plan)
    n = len(h.spaces)
    taken = [taken.get(i, set()) for i in range(n)]

    # Every planned page is volatile, not already purged, discardable; none blocked.
    for i in range(n):
        model, mem = h.models[i], memories[i]
        for p in taken[i]:
            assert model.volatile(p), f"space {i} page {p} is not volatile"
            assert p not in model.purged, f"space {i} page {p} was purged already"
            assert mem[p] == "R", f"space {i} page {p} is {mem[p]!r}, not discardable"
    assert freed == sum(len(t) for t in taken) * P, "freed is not the planned bytes"

    # Per range: what it gave, what it could have given.
    ranges = h.ranges()
    gave, could = {}, {}
    for rng in ranges:
        stamp, first, i, end, partial = rng
        gave[rng] = sorted(p for p in taken[i] if first <= p < end)
        cand = h.models[i].candidates((first, end), memories[i])
        is_blocked = not partial and "S" in memories[i][first:end]
        could[rng] = [] if is_blocked else cand
        if not partial:     # whole or nothing; nothing when blocked
            assert gave[rng] in ([], cand), f"FULL range {rng} gave {gave[rng]} of {cand}"
            assert not (is_blocked and gave[rng]), f"blocked FULL range {rng} gave {gave[rng]}"
        else:               # lowest addresses first
            assert gave[rng] == cand[:len(gave[rng])], \
                f"PARTIAL range {rng} gave {gave[rng]}, not the lowest of {cand}"

    # Oldest first: a range gives only if every strictly older one that could
    # give gave all it could; and it gives only while freed < need.
    for rng in ranges:
        if not gave[rng]:
            continue
        older = [o for o in ranges if o[0] < rng[0]]
        for o in older:
            assert gave[o] == could[o], \
                f"{rng} gave {gave[rng]} while the older {o} gave {gave[o]} of {could[o]}"
        before_it = sum(len(gave[o]) for o in older) * P
        assert before_it < need, f"{rng} gave although {before_it} >= need {need} was freed"
        if rng[4]:          # a PARTIAL range gives only the pages still needed
            assert len(gave[rng]) * P < need - before_it + P, \
                f"PARTIAL {rng} gave {len(gave[rng])} pages for {need - before_it} bytes"
    # Enough, unless everything that could give gave.
    assert freed >= need or all(gave[r] == could[r] for r in ranges), \
        f"freed {freed} < need {need} with pages left"
    return taken, freed


def reference_victims(h, memories, need):
    """The page-level reference plan.  Ties of stamps (the pieces of a split
    range, a range and its fork copy) go lower address first, then the
    earlier space in the list, as choose_victims orders them."""
    taken, freed = [set() for _ in h.spaces], 0
    for stamp, first, i, end, partial in sorted(h.ranges()):
        if freed >= need:
            break
        if not partial and "S" in memories[i][first:end]:
            continue
        cand = h.models[i].candidates((first, end), memories[i])
        if partial:
            cand = cand[:-(-(need - freed) // P)]
        taken[i] |= set(cand)
        freed += len(cand) * P
    return taken, freed


@FAST
@given(histories(), st.data())
def test_victims_against_the_page_oracle(history, data):
    n, ops, memories = history
    h = History(n)
    for op in ops:
        h.apply(op)
        # `need` from 0 to more than all there is, page multiples or not.
        need = data.draw(st.integers(0, (NPAGES * n + 2) * P), label="need")
        got = check_victims(h, memories, need)
        assert got == reference_victims(h, memories, need)


def all_partial(op):
    return (*op[:3], True) if op[0] == "mark" else op


@FAST
@given(histories(), st.data())
def test_partial_ranges_free_just_the_pages_needed(history, data):
    """With only PARTIAL ranges, a plan frees `need` rounded up to whole
    pages, or all there is if that is less: never a page more."""
    n, ops, memories = history
    h = replay(n, [all_partial(op) for op in ops])
    need = data.draw(st.integers(0, (NPAGES * n + 2) * P), label="need")
    taken, freed = check_victims(h, memories, need)
    there = sum(len(h.models[i].candidates((first, end), memories[i]))
                for _, first, i, end, _ in h.ranges()) * P
    assert freed == min(-(-need // P) * P, there), (freed, need, there)


def test_oracle_sees_every_rule():
    """A hand history through the oracle's checks: FULL blocked, FULL whole,
    PARTIAL lowest first, a younger range left alone."""
    h = History(2)
    for op in [("mark", 0, (0, 4), False),     # stamp 1: FULL, page 2 blocked
               ("mark", 1, (0, 4), False),     # stamp 2: FULL, pages 1 and 3 resident
               ("mark", 0, (8, 16), True),     # stamp 3: PARTIAL, 9 purged
               ("purge", 0, (9, 10)),
               ("mark", 1, (10, 12), False)]:  # stamp 4: untouched
        h.apply(op)
    memories = ["RRSR----RRRRRRRR----", "-R-R------RR--------"]
    taken, freed = check_victims(h, memories, 4 * P + 1)
    assert taken == [{8, 10, 11}, {1, 3}] and freed == 5 * P
    assert (taken, freed) == reference_victims(h, memories, 4 * P + 1)


# --- range_runs, still_discardable, purge_runs ---------------------------------------

def expected_pages(model, mem, pages):
    return {p for p in pages if model.volatile(p) and p not in model.purged and mem[p] == "R"}


def in_order(runs):
    assert runs == sorted(runs), f"runs out of address order: {runs}"
    return runs


@FAST
@given(histories(), st.data())
def test_purge_runs_and_range_runs_against_the_page_oracle(history, data):
    n, ops, memories = history
    h = replay(n, ops)
    for sp, model, mem in zip(h.spaces, h.models, memories):
        before = snapshot([sp])
        got = pages_of(in_order(purge_runs(sp.ranges, discardable_in(mem))))
        assert got == expected_pages(model, mem, range(NPAGES))
        lo, hi = sorted(data.draw(st.tuples(st.integers(0, NPAGES), st.integers(0, NPAGES)),
                                  label="within"))
        for rng in sp.ranges:
            pages = range(max(rng.start // P, lo), min(rng.end // P, hi))
            runs = in_order(range_runs(sp.ranges, rng, discardable_in(mem), (lo * P, hi * P)))
            assert pages_of(runs) == expected_pages(model, mem, pages), (rng, lo, hi)
        assert snapshot([sp]) == before


@FAST
@given(histories(), st.lists(operation, max_size=10), memory,
       st.lists(st.integers(0, NPAGES), unique=True, max_size=8))
def test_still_discardable_keeps_only_what_may_go_now(history, later, memory_now, cuts):
    """A plan made earlier, carried out after more calls and with the memory
    changed: only its pages still volatile, unpurged and discardable go."""
    n, ops, _ = history
    h = replay(n, ops)
    cuts = sorted(cuts)
    planned = [(a * P, b * P) for a, b in zip(cuts[::2], cuts[1::2]) if a < b]
    for op in later:
        h.apply(op)
    sp, model = h.spaces[0], h.models[0]
    got = pages_of(still_discardable(sp.ranges, planned, discardable_in(memory_now)))
    assert got == expected_pages(model, memory_now, pages_of(planned))
