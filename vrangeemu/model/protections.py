"""The protections --check-access replaced with PROT_NONE (pure).

--check-access makes a range PROT_NONE while it is volatile, so that any
access faults.  A re-pin must give each page back the protection it had
(a read-only range stays read-only), so the protection is saved, per run of
pages, when the range becomes volatile.

>>> saved = SavedProtections()
>>> saved.save([(0, 2 * PAGE, 1), (2 * PAGE, 4 * PAGE, 3)])    # r-- then rw-
>>> saved.save([(0, 4 * PAGE, 0)])        # marked again: PROT_NONE is ours
>>> saved.take(PAGE, 3 * PAGE)
[(4096, 8192, 1), (8192, 12288, 3)]
>>> saved.intervals()
[(0, 4096, 1), (12288, 16384, 3)]
"""
from __future__ import annotations

from sortedcontainers import SortedDict

from .ranges import PAGE

PROT_NONE = 0
Pieces = list[tuple[int, int, int]]   # (start, end, prot)
__all__ = ["SavedProtections"]


class SavedProtections:
    """Page runs -> the protection they had before --check-access, disjoint."""

    def __init__(self) -> None:
        self._runs = SortedDict()   # start -> (end, prot)

    def save(self, current: Pieces) -> None:
        """Record the protections `current` reads (the mappings now, in
        address order) before they become PROT_NONE.  A PROT_NONE run is
        ours where something is saved already (the range was volatile
        before); anything else is the program's and replaces the record."""
        for start, end, prot in current:
            if prot == PROT_NONE:
                for s, e, _ in self._overlapping(start, end):   # keep what is saved
                    self._put(start, s, PROT_NONE)
                    start = e
                self._put(start, end, PROT_NONE)
            else:
                self.take(start, end)
                self._put(start, end, prot)

    def take(self, start: int, end: int) -> Pieces:
        """The saved pieces of [start, end), clipped, in address order; they
        are forgotten (the pages get their protection back)."""
        pieces = self._overlapping(start, end)
        for s, _, _ in pieces:
            run_start = self._runs.bisect_right(s) - 1
            key = self._runs.keys()[run_start]
            run_end, prot = self._runs.pop(key)
            if key < start:
                self._runs[key] = (start, prot)
            if end < run_end:
                self._runs[end] = (run_end, prot)
        return pieces

    def _overlapping(self, start: int, end: int) -> Pieces:
        out = []
        i = max(self._runs.bisect_right(start) - 1, 0)
        for key in self._runs.keys()[i:]:
            if key >= end:
                break
            run_end, prot = self._runs[key]
            if run_end > start:
                out.append((max(key, start), min(run_end, end), prot))
        return out

    def _put(self, start: int, end: int, prot: int) -> None:
        if start < end:
            self._runs[start] = (end, prot)

    def copy(self) -> SavedProtections:
        """A fork child's: its pages are PROT_NONE as the parent's are."""
        other = SavedProtections()
        if self._runs:
            other._runs = self._runs.copy()
        return other

    def intervals(self) -> Pieces:
        return [(s, e, p) for s, (e, p) in self._runs.items()]

    def _check(self) -> None:
        """Runs whole pages, disjoint, in order."""
        prev = -1
        for s, (e, _) in self._runs.items():
            assert s % PAGE == 0 and e % PAGE == 0 and s < e, (s, e)
            assert s >= prev, f"saved run {(s, e)} overlaps its left"
            prev = e
