"""vrangeemu: the vrange() volatile-range syscall, emulated on a stock kernel.

The public API is the Python client for programs run under `vrange-run`
(native ABI); the supervisor, the model and the views are internal:

    from vrangeemu import VolatileBuffer
    buf = VolatileBuffer(4 * PAGE_SIZE)
    buf.mark_volatile()
    if buf.mark_nonvolatile():   # True: some page was discarded meanwhile
        ...
"""
from .abi import PAGE_SIZE
from .client import (NONVOLATILE, PARTIAL, VOLATILE, VolatileBuffer, VrangeError,
                     VrangeUnavailable, syscall_nr, vrange)

__all__ = ["NONVOLATILE", "PAGE_SIZE", "PARTIAL", "VOLATILE", "VolatileBuffer", "VrangeError",
           "VrangeUnavailable", "syscall_nr", "vrange"]
