"""A userfaultfd that makes missing pages raise SIGBUS (purged-page semantics).

The fd must be created inside the traced program (it binds to the creator's
mm) and copied out with pidfd_getfd; this wraps the copy the supervisor holds.
"""
import os

from .._native import lib
from .errors import check


class SigbusTrap:
    """Registered ranges fault with SIGBUS on a missing page (EFAULT in a
    syscall) instead of reading zeros."""

    def __init__(self, fd):
        self.fd = fd
        check(lib.vr_uffd_enable_sigbus(fd), "UFFDIO_API(UFFD_FEATURE_SIGBUS)")

    def register(self, start, end):
        check(lib.vr_uffd_register(self.fd, start, end - start),
              f"UFFDIO_REGISTER [{start:#x}, {end:#x})")

    def unregister(self, start, end):
        check(lib.vr_uffd_unregister(self.fd, start, end - start),
              f"UFFDIO_UNREGISTER [{start:#x}, {end:#x})")

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
