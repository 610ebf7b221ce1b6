"""Opening the files vrange-run writes (--trace, --stats-json).

vrange-run often runs as root, and the program it runs may be anyone's.  So
each file is opened once, before the program starts, and written through
that descriptor to the end:

* never through a symlink (O_NOFOLLOW on the last component): a program
  that swaps FILE for a link to a root-only file gets nothing written there;
* only if it is a regular file (or /dev/null, which keeps nothing): opened
  with O_NONBLOCK and checked with fstat, so a FIFO with no reader neither
  hangs vrange-run nor takes output, and a device is not written to; it is
  emptied only then;
* created with mode 0644 (less with a stricter umask).
"""
import errno
import os
import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class OutputRefused(Exception):
    """FILE cannot be an output file; the message names the cause."""


def open_output(path, buffering=-1):
    """`path` opened for writing as text, emptied; raises OutputRefused
    saying why it cannot be."""
    flags = (os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
             | os.O_CLOEXEC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise OutputRefused(_why(path, exc)) from None
    try:
        st = os.fstat(fd)
        if _is_null(st):
            return os.fdopen(fd, "w", buffering=buffering)
        if not stat.S_ISREG(st.st_mode):
            raise OutputRefused(f"{path}: is {_kind(st.st_mode)}, not a regular file")
        os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "w", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def _is_null(st):
    """The null device (1, 3): writes go nowhere, e.g. `--trace /dev/null`
    to measure what tracing costs."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def _why(path, exc):
    """The cause of a failed open, in words."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st and stat.S_ISLNK(st.st_mode) and exc.errno == errno.ELOOP:
        return f"{path}: is a symbolic link; not written through (give the file's own path)"
    if st and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        # EISDIR, or ENXIO: a FIFO no one reads, a socket
        return f"{path}: is {_kind(st.st_mode)}, not a regular file"
    return f"{path}: {exc.strerror}"


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "a special file")
