"""Pure data model of vrange() state (no I/O)."""

from .ranges import PAGE, Range, VolatileRanges

__all__ = ["PAGE", "Range", "VolatileRanges"]
