"""The two pagemap scanners agree on a process that shares no page."""
import ctypes
import mmap
import os

import pytest

from vrangeemu.linux.procfs import ProcessMemory

PAGE = 4096


@pytest.mark.parametrize("pages, step", [(64, 1), (600, 3), (5000, 2)])
def test_resident_runs_match_the_pagemap(pages, step):
    buf = mmap.mmap(-1, pages * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    for i in range(0, pages, step):    # every `step`-th page resident
        buf[i * PAGE] = 1
    memory = ProcessMemory(os.getpid())
    try:
        resident = memory.resident(base, base + pages * PAGE)
        assert resident == memory.discardable(base, base + pages * PAGE)
        assert sum(e - s for s, e in resident) == len(range(0, pages, step)) * PAGE
    finally:
        memory.close()
