"""Acting on other processes from outside: memory writes, signals, fds, kcmp."""
import errno
import os

from .._native import ffi, lib
from .errors import TaskGone, check


def write_i32(tid, addr, value):
    """Write an int into task `tid`'s memory; 0, or the positive errno the
    caller's syscall should fail with (EFAULT for a bad address, ESRCH if
    the task is gone)."""
    return -lib.vr_write_i32(tid, addr, value)


def tgkill(tgid, tid, sig):
    """Queue `sig` for one thread.  Raises TaskGone if it no longer exists."""
    check(lib.vr_tgkill(tgid, tid, sig), f"tgkill({tid}, {sig})", tid)


def same_mm(tid1, tid2):
    """True/False if the two tasks share an address space (kcmp KCMP_VM),
    None if kcmp cannot tell (CONFIG_KCMP=n, or a task is gone)."""
    order = lib.vr_kcmp_vm(tid1, tid2)
    if order < 0:
        if order not in (-errno.ENOSYS, -errno.ESRCH, -errno.EPERM):
            raise OSError(-order, f"kcmp({tid1}, {tid2}): {os.strerror(-order)}")
        return None
    return order == 0


def pidfd_getfd(pid, fd):
    """A copy of process `pid`'s fd `fd` in this process (Linux 5.6+)."""
    return check(lib.vr_pidfd_getfd(pid, fd), f"pidfd_getfd({pid}, {fd})", pid)


class SignalFd:
    """The given signals blocked and read from a signalfd (non-blocking)."""

    def __init__(self, signals):
        sigs = ffi.new("int[]", list(signals))
        self.fd = check(lib.vr_signalfd(sigs, len(sigs)), "signalfd")
        self._info = ffi.new("struct vr_siginfo *")

    def fileno(self):
        return self.fd

    def read(self):
        """[(signo, si_code, si_pid)] of every pending signal."""
        out = []
        while check(lib.vr_signalfd_read(self.fd, self._info), "read(signalfd)") > 0:
            out.append((self._info.signo, self._info.code, self._info.pid))
        return out

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


__all__ = ["TaskGone", "SignalFd", "pidfd_getfd", "same_mm", "tgkill", "write_i32"]
