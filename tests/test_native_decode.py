"""The native loop decodes a call's arguments as the model does.

native/ext/fastpath.c answers the common calls itself; whether a call may go
that way, and what it asks, comes from vr_fast_decode().  Here it must agree
with `Profile.decode` (vrangeemu/abi.py) for every ABI profile: a call is
eligible exactly when the Python decode finds no error and a known mode,
and then both read the same start, length, mode, PARTIAL and purged pointer.
(Ineligible calls take the Python path, which decides as it always did.)
"""
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vrangeemu._native import ffi, lib
from vrangeemu.abi import PAGE_SIZE, PROFILES, USER_SPACE_END, VOLATILE

U64 = (1 << 64) - 1


def c_profile(profile):
    """A struct vr_fast_profile filled as FastLoop.__init__ fills it."""
    p = ffi.new("struct vr_fast_profile *")
    p.nr, p.mode_volatile, p.mode_nonvolatile = profile.nr, profile.volatile, profile.nonvolatile
    p.returns_purged = profile.returns == "purged"
    p.purged_arg, p.flags_arg = profile.purged_arg, profile.flags_arg
    p.behavior_arg, p.allowed_flags = profile.behavior_arg, profile.allowed_flags
    p.user_end = USER_SPACE_END
    return p


def near(values, spread):
    """Integers within `spread` of one of `values`, kept in 0..2^64-1."""
    return st.builds(lambda v, d: min(max(v + d, 0), U64), st.sampled_from(values),
                     st.integers(-spread, spread))


pages = st.integers(0, 1 << 20).map(lambda n: n * PAGE_SIZE)
page_lengths = st.builds(lambda n, d: max(n * PAGE_SIZE + d, 0),   # around 0 and page multiples
                         st.integers(0, 64), st.integers(-2, 2))
starts = st.one_of(
    pages,                                                   # aligned
    near([0x10000, 0x7f0000000000], 3 * PAGE_SIZE),          # aligned or not
    near([USER_SPACE_END, 1 << 47, 1 << 56, U64 - PAGE_SIZE + 1], 4 * PAGE_SIZE),
    st.integers(0, U64),
)
lengths = st.one_of(
    page_lengths,
    near([0, PAGE_SIZE, USER_SPACE_END, 1 << 63, U64], 2 * PAGE_SIZE),   # 0 and overflow
    st.integers(0, U64),
)
HIGH = [0, 1 << 32, 0xFFFFFFFF << 32]        # high bits the C int/unsigned int drops


def words_with_low(lows):
    return st.builds(lambda low, high: low | high, st.sampled_from(lows), st.sampled_from(HIGH))


# mode, flags, behavior: 0 and 1 are valid somewhere in every profile
plausible_words = words_with_low([0, 1])
words = st.one_of(plausible_words, words_with_low([2, 3, 0x80000000, 0xFFFFFFFF]),
                  st.integers(0, U64))
pointers = st.one_of(st.just(0), st.integers(1, U64))
# Calls a program would make (mostly eligible, right up to the end of user space)
# and anything at all (mostly not).
plausible = st.tuples(
    st.one_of(pages, st.integers(1, 64).map(lambda n: USER_SPACE_END - n * PAGE_SIZE)),
    page_lengths, plausible_words, plausible_words, st.one_of(plausible_words, pointers),
    pointers)
wild = st.tuples(starts, lengths, words, words, st.one_of(words, pointers), pointers)
argument_lists = st.one_of(plausible, wild)


@pytest.mark.parametrize("name", sorted(PROFILES))
@settings(max_examples=1500, deadline=None)
@given(args=argument_lists)
@example(args=(0x10000, 2 * PAGE_SIZE, 1, 1, 0x5000, 0))
@example(args=(0x10000, 2 * PAGE_SIZE, 0, 1, 0x5000, 0))
@example(args=(USER_SPACE_END - PAGE_SIZE, PAGE_SIZE, 0, 0, 0, 0))       # ends at the end
@example(args=(USER_SPACE_END - PAGE_SIZE, 2 * PAGE_SIZE, 0, 0, 0, 0))   # one page past
@example(args=(U64 - PAGE_SIZE + 1, 2 * PAGE_SIZE, 0, 0, 0, 0))         # start + len wraps
@example(args=(0x10000, PAGE_SIZE - 1, 1, 0, 0, 0))                      # rounds down to 0
@example(args=(0x10001, PAGE_SIZE, 1, 0, 0, 0))                         # unaligned start
@example(args=(0x10000, PAGE_SIZE, (1 << 32) | 1, 1 << 32, 0, 0))        # high bits ignored
def test_c_decode_agrees_with_the_profile(name, args):
    profile = PROFILES[name]
    call = ffi.new("struct vr_fast_call *")
    eligible = lib.vr_fast_decode(c_profile(profile), list(args), call)
    assert eligible in (0, 1)
    py = profile.decode(list(args))
    assert bool(eligible) == (py.error == 0 and py.mode is not None), py
    if eligible:
        assert (call.start, call.len, call.purged_ptr) == (py.start, py.length, py.purged_ptr)
        assert bool(call.is_volatile) == (py.mode == VOLATILE)
        assert bool(call.partial) == py.partial
