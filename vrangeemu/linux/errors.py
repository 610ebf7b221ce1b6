"""The one place where failures at the OS boundary are translated.

Two outcomes leave this package: `TaskGone` (the task no longer exists, or
is no longer stopped for us: ESRCH) and OSError for everything else.  The C
part returns -errno; python-ptrace raises PtraceError; both come through
here, so callers never see a raw return code or a PtraceError.
"""
import errno
import functools
import os

from ptrace.error import PtraceError


class TaskGone(Exception):
    """A traced task vanished (exited, was killed, or exec'd away).

    `results` holds what a remote-syscall chain completed before that."""

    def __init__(self, tid, what="", results=()):
        super().__init__(f"task {tid} is gone{f' ({what})' if what else ''}")
        self.tid = tid
        self.results = list(results)


def check(rc, what, tid=None):
    """`rc` of a C function (>= 0 success, -errno failure): rc, or raise.

    ESRCH about a task (`tid` given) is TaskGone."""
    if rc >= 0:
        return rc
    if rc == -errno.ESRCH and tid is not None:
        raise TaskGone(tid, what)
    raise OSError(-rc, f"{what}: {os.strerror(-rc)}")


def translated(fn):
    """Decorate a ptrace request taking the tid first: PtraceError becomes
    TaskGone (ESRCH) or OSError."""
    @functools.wraps(fn)
    def wrapper(tid, *args):
        try:
            return fn(tid, *args)
        except PtraceError as exc:
            if exc.errno == errno.ESRCH:
                raise TaskGone(tid, fn.__name__) from None
            raise OSError(exc.errno or errno.EIO, f"ptrace {fn.__name__}({tid}): {exc}") from None
    return wrapper
