"""Use vrange() from Python programs running under vrange-run (native ABI).

    buf = VolatileBuffer(4 * PAGE_SIZE)
    buf.mark_volatile()              # the system may discard it now
    if buf.mark_nonvolatile():       # pinned again: was anything discarded?
        rebuild(buf)

Outside vrange-run every call raises `VrangeUnavailable`.
"""
import ctypes
import errno
import mmap
import os

from .abi import NATIVE_FLAG_PARTIAL, NATIVE_NR, PAGE_SIZE

VOLATILE = 1
NONVOLATILE = 0
PARTIAL = NATIVE_FLAG_PARTIAL

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_uint, ctypes.c_void_p]


class VrangeError(OSError):
    """A vrange call failed (errno and strerror as OSError)."""


class VrangeUnavailable(VrangeError):
    """vrange() is not served: the program is not running under vrange-run."""


def syscall_nr():
    """The trapped number: vrange-run exports it (it honours --syscall-nr)."""
    return int(os.environ.get("VRANGE_SYSCALL_NR", str(NATIVE_NR)), 0)


def vrange(start, length, mode, flags=0):
    """Raw native call; returns (bytes processed, purged: bool)."""
    purged = ctypes.c_int(0)
    done = _libc.syscall(syscall_nr(), start, length, mode, flags, ctypes.byref(purged))
    if done < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise VrangeUnavailable(
                err, "vrange() is not available: run this program under vrange-run "
                     "(e.g. `vrange-run python3 prog.py`)")
        raise VrangeError(err, os.strerror(err))
    return done, bool(purged.value)


class VolatileBuffer:
    """Private anonymous memory whose contents may be discarded while volatile."""

    def __init__(self, size):
        size = -(-size // PAGE_SIZE) * PAGE_SIZE
        self.map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        view = ctypes.c_char.from_buffer(self.map)
        self.address = ctypes.addressof(view)
        del view   # a live export would keep the mmap from closing
        self.size = size

    def mark_volatile(self, offset=0, length=None, partial=False):
        """Let the system discard [offset, offset+length); returns bytes marked."""
        length = self.size - offset if length is None else length
        done, _ = vrange(self.address + offset, length, VOLATILE, PARTIAL if partial else 0)
        return done

    def mark_nonvolatile(self, offset=0, length=None):
        """Pin [offset, offset+length) again; True if any page was discarded
        meanwhile (those pages now read as zeros)."""
        length = self.size - offset if length is None else length
        _, purged = vrange(self.address + offset, length, NONVOLATILE)
        return purged

    def close(self):
        self.map.close()
