"""Argument decoding and return encoding of each ABI profile (pure)."""
import errno

import pytest

from vrangeemu.abi import NONVOLATILE, PROFILES, USER_SPACE_END, VOLATILE, Reply

P = 4096


@pytest.mark.parametrize("name, nr, vol, nonvol", [
    ("native", 1000, 1, 0), ("v7", 314, 0, 1), ("v10", 314, 0, 1), ("v12", 316, 1, 0)])
def test_numbers_and_mode_constants(name, nr, vol, nonvol):
    prof = PROFILES[name]
    assert prof.nr == nr
    assert prof.decode([P, P, vol, 0, 0, 0]).mode == VOLATILE
    assert prof.decode([P, P, nonvol, 0, 0, 0]).mode == NONVOLATILE


def test_argument_positions_of_purged_pointer_flags_and_behavior():
    assert PROFILES["v10"].decode([P, P, 0, 0xABC000, 0, 0]).purged_ptr == 0xABC000
    assert PROFILES["v12"].decode([P, P, 1, 0, 0xABC000, 0]).purged_ptr == 0xABC000
    assert PROFILES["native"].decode([P, P, 1, 1, 0xABC000, 0]).partial
    assert PROFILES["v7"].decode([P, P, 0, 1, 0, 0]).partial
    assert PROFILES["v7"].decode([P, P, 0, 0, 0xABC000, 0]).purged_ptr == 0


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("start, length", [
    (P + 1, P), (P, 100), (P, 0), (P, (1 << 64) - P), (USER_SPACE_END, P)])
def test_bad_ranges_are_einval(name, start, length):
    prof = PROFILES[name]
    assert prof.decode([start, length, prof.volatile, 0, 0, 0]).error == errno.EINVAL


def test_mode_is_compared_as_a_32_bit_int():
    # The kernel's `int mode`: the upper half of the register is ignored.
    assert PROFILES["native"].decode([P, P, (7 << 32) | 1, 0, 0, 0]).mode == VOLATILE


@pytest.mark.parametrize("name, args", [
    ("native", [P, P, 1, 2, 0, 0]), ("v12", [P, P, 1, 1, 0, 0]), ("v7", [P, P, 0, 2, 0, 0]),
    ("native", [P, P, 9, 0, 0, 0])])
def test_bad_flags_behavior_or_mode_are_einval(name, args):
    assert PROFILES[name].decode(args).error == errno.EINVAL


def test_length_rounds_down_and_returns_follow_the_profile():
    call = PROFILES["v10"].decode([P, 3 * P + 5, 1, 0, 0, 0])
    assert call.length == 3 * P and call.error == 0
    assert PROFILES["v10"].encode(call, Reply(3 * P, True)) == 3 * P
    v7 = PROFILES["v7"]
    assert v7.encode(v7.decode([P, P, 1, 0, 0, 0]), Reply(P, True)) == 1
    assert v7.encode(v7.decode([P, P, 1, 0, 0, 0]), Reply(P, False)) == 0
    assert v7.encode(v7.decode([P, P, 0, 0, 0, 0]), Reply(P, False)) == 0
