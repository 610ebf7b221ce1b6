"""model.protections: what --check-access saved, against a page oracle."""
from hypothesis import given, strategies as st

from page_oracle import FAST, NPAGES, P
from vrangeemu.model.protections import PROT_NONE, SavedProtections

span = st.tuples(st.integers(0, NPAGES - 1), st.integers(1, 8)).map(
    lambda t: (t[0], min(NPAGES, t[0] + t[1])))
# A mark saves what the pages show (each page its own protection); a re-pin takes.
step = st.one_of(
    st.tuples(st.just("mark"), span, st.lists(st.integers(0, 3), min_size=8, max_size=8)),
    st.tuples(st.just("repin"), span, st.just(None)))


@FAST
@given(st.lists(step, max_size=12))
def test_a_repin_gives_back_the_protection_each_page_had_before_it_was_first_marked(steps):
    saved = SavedProtections()
    shown = {}      # page -> protection the program sees now (default rw-)
    expected = {}   # page -> what a re-pin must give back
    for kind, (first, end), prots in steps:
        if kind == "mark":
            current = []
            for page in range(first, end):
                prot = shown.get(page, 3)
                if prot != PROT_NONE or page not in expected:   # the program's own
                    expected[page] = prot
                current.append((page * P, (page + 1) * P, prot))
                shown[page] = PROT_NONE
            saved.save(current)
        else:
            pieces = saved.take(first * P, end * P)
            got = {}
            for s, e, prot in pieces:
                assert s % P == 0 and e % P == 0
                for page in range(s // P, e // P):
                    got[page] = prot
            want = {page: expected.pop(page) for page in range(first, end) if page in expected}
            assert got == want
            for page, prot in got.items():
                shown[page] = prot
        saved._check()
