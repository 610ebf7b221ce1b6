"""Which part of a request the mappings allow: the kernel patches' VMA walk, pure.

>>> extent(0x1000, 0x3000, [Vma(0x1000, 0x3000, ANON)], volatile=True)
(8192, 0)
>>> extent(0x1000, 0x3000, [Vma(0x1000, 0x2000, ANON)], volatile=True)[1] == errno.ENOMEM
True
"""
import errno
from typing import NamedTuple

ANON = "anon"        # private anonymous: the only kind that can be volatile
FILE = "file"        # file-backed
SHARED = "shared"    # MAP_SHARED (including shared anonymous memory)
SPECIAL = "special"  # VM_IO/PFNMAP ([vdso], [vvar]) or hugetlb
LOCKED = "locked"    # mlocked private anonymous


class Vma(NamedTuple):
    start: int
    end: int
    kind: str


def extent(start, end, vmas, volatile):
    """(bytes processed from start, errno) for a request over [start, end).

    `vmas` are the mappings meeting [start, end), clipped, in address order.
    Rules checked before any change: a hole anywhere -> ENOMEM; a file-backed
    or shared mapping anywhere -> EINVAL.  Then the walk stops at the first
    special mapping, and for VOLATILE at the first mlocked one; stopping
    before the first page is EINVAL, later it is a short count.
    """
    at = start
    for vma in vmas:
        if vma.start != at:
            return 0, errno.ENOMEM
        at = vma.end
    if at != end:
        return 0, errno.ENOMEM
    if any(vma.kind in (FILE, SHARED) for vma in vmas):
        return 0, errno.EINVAL
    for vma in vmas:
        if vma.kind == SPECIAL or (volatile and vma.kind == LOCKED):
            return (vma.start - start, 0) if vma.start > start else (0, errno.EINVAL)
    return end - start, 0
