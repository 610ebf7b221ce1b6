"""A userfaultfd that makes missing pages raise SIGBUS (purged-page semantics).

The fd must be created inside the traced program (it binds to the creator's
mm) and copied out with pidfd_getfd; this wraps the copy the supervisor holds.
What to register and fill is decided in model/trap.py.
"""
import os

from .._native import ffi, lib
from .errors import check


class SigbusTrap:
    """Registered ranges fault with SIGBUS on a missing page (EFAULT in a
    syscall) instead of reading zeros."""

    def __init__(self, fd):
        self.fd = fd
        check(lib.vr_uffd_enable_sigbus(fd), "UFFDIO_API(UFFD_FEATURE_SIGBUS)")

    def register(self, start, end):
        """Missing pages of [start, end) fault from now on.  Splits the
        mapping at both ends; registering again is a no-op."""
        check(lib.vr_uffd_register(self.fd, start, end - start),
              f"UFFDIO_REGISTER [{start:#x}, {end:#x})")

    def unregister(self, start, end):
        """End the trap in [start, end): missing pages read as zeros again;
        the mapping merges back with its neighbours where they agree."""
        check(lib.vr_uffd_unregister(self.fd, start, end - start),
              f"UFFDIO_UNREGISTER [{start:#x}, {end:#x})")

    def zero_fill(self, runs):
        """Map the zero page at each missing page of `runs` (registered
        here): it reads as zeros and a write takes an ordinary fault.  Pages
        present already are left alone.  Returns the pages filled."""
        if not runs:
            return 0
        flat = ffi.new("uint64_t[]", [x for run in runs for x in run])
        return check(lib.vr_uffd_zeropage(self.fd, flat, len(runs)),
                     f"UFFDIO_ZEROPAGE ({len(runs)} runs from {runs[0][0]:#x})")

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
