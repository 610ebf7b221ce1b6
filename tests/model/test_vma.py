"""The VMA walk rules (pure)."""
import errno

from vrangeemu.model.vma import ANON, FILE, LOCKED, SHARED, SPECIAL, Vma, extent

P = 4096


def test_fully_mapped_anonymous_range_is_processed_whole():
    vmas = [Vma(0, 2 * P, ANON), Vma(2 * P, 5 * P, ANON)]
    assert extent(0, 5 * P, vmas, volatile=True) == (5 * P, 0)


def test_hole_anywhere_is_enomem():
    assert extent(0, 4 * P, [Vma(P, 4 * P, ANON)], True) == (0, errno.ENOMEM)
    assert extent(0, 4 * P, [Vma(0, P, ANON), Vma(2 * P, 4 * P, ANON)], True) == (0, errno.ENOMEM)
    assert extent(0, 4 * P, [Vma(0, 3 * P, ANON)], False) == (0, errno.ENOMEM)
    assert extent(0, 4 * P, [], False) == (0, errno.ENOMEM)


def test_hole_wins_over_a_file_mapping_before_it():
    vmas = [Vma(0, P, FILE), Vma(2 * P, 3 * P, ANON)]
    assert extent(0, 3 * P, vmas, True) == (0, errno.ENOMEM)


def test_file_or_shared_anywhere_is_einval():
    for kind in (FILE, SHARED):
        vmas = [Vma(0, 2 * P, ANON), Vma(2 * P, 3 * P, kind)]
        assert extent(0, 3 * P, vmas, True) == (0, errno.EINVAL)
        assert extent(0, 3 * P, vmas, False) == (0, errno.EINVAL)


def test_locked_stops_a_volatile_walk_only():
    vmas = [Vma(0, 2 * P, ANON), Vma(2 * P, 3 * P, LOCKED), Vma(3 * P, 4 * P, ANON)]
    assert extent(0, 4 * P, vmas, True) == (2 * P, 0)
    assert extent(0, 4 * P, vmas, False) == (4 * P, 0)
    assert extent(2 * P, 3 * P, [Vma(2 * P, 3 * P, LOCKED)], True) == (0, errno.EINVAL)


def test_special_stops_both_walks():
    vmas = [Vma(0, P, ANON), Vma(P, 2 * P, SPECIAL)]
    assert extent(0, 2 * P, vmas, True) == (P, 0)
    assert extent(0, 2 * P, vmas, False) == (P, 0)
    assert extent(P, 2 * P, vmas[1:], False) == (0, errno.EINVAL)
