"""The watchdog of an owned memory cgroup: if vrange-run dies, give the group back.

While vrange-run purges, its cgroup is held in a state that only makes sense
with vrange-run alive: v1 with the OOM killer off and the limit above SIZE
(a task at the limit pauses and waits for a purge), v2 with memory.max above
SIZE.  If vrange-run died there (even by SIGKILL), nobody would purge and the
program would pause at the limit for ever, in D state, in a group nobody
removes.

So when vrange-run creates a group it starts this watchdog first:

    vrange-run ──fork──> intermediate ──posix_spawn(setsid)──> watchdog
                         (exits at once: the watchdog is not vrange-run's
                          child, so the loop's waitpid(-1) never sees it)

    watchdog: python3 -I -S cgroup_watchdog.py PATH VERSION SIZE PIDFD DONE_FD
      poll(PIDFD: vrange-run's pidfd, readable when it exits,
           DONE_FD: a pipe only vrange-run writes)
      "done" on the pipe          -> exit, touching nothing (vrange-run
                                     removed the group itself)
      vrange-run gone, or the pipe
      closed without "done"       -> restore(): v1 oom_control 0 and
                                     limit_in_bytes SIZE (EBUSY: usage is
                                     above, the OOM killer acts; SIZE is
                                     retried meanwhile); v2 memory.max SIZE
                                     and memory.high max
                                  -> rmdir as soon as the group is empty
                                     (EBUSY until then), then exit

The watchdog runs this file as a script, so it imports only the standard
library (about 4 MiB of anonymous memory).  It lives in its own session with
SIGINT and SIGHUP ignored (Ctrl-C and a hang-up are the program's business),
stdin/stdout/stderr on /dev/null and every other inherited fd closed, so
nobody reading vrange-run's output waits for it.  vrange-run's pidfd is opened before the fork, so there is no
instant in which its death would go unnoticed.  On a normal exit vrange-run
removes the group itself and says "done" (`Watchdog.done`).
"""
import errno
import os
import select
import signal
import sys
import time

DONE = b"done"
POLL_FIRST, POLL_MAX = 0.01, 0.5    # seconds between rmdir tries while the group is in use


# --- vrange-run's side -----------------------------------------------------------

class Watchdog:
    """The running watchdog of one group, seen from vrange-run."""

    def __init__(self, pid, done_fd, pidfd=-1):
        self.pid = pid
        self._done_fd = done_fd
        self._pidfd = pidfd     # the watchdog's own, to see it exit (-1: unknown)

    def done(self, timeout=1.0):
        """vrange-run removed the group: the watchdog exits, touching
        nothing.  Waits (at most `timeout` s) until it has, so that a normal
        run leaves no process behind."""
        if self._done_fd is None:
            return
        try:
            os.write(self._done_fd, DONE)
        except OSError:     # it is gone already
            pass
        pidfd, self._pidfd = self._pidfd, -1
        self.release()
        if pidfd >= 0:
            select.select([pidfd], [], [], timeout)
            os.close(pidfd)

    def release(self):
        """Hand the group over now (it still has processes): the watchdog
        restores it and removes it once empty, as if vrange-run had died."""
        if self._done_fd is not None:
            os.close(self._done_fd)
            self._done_fd = None
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


def start(path, version, size):
    """Start the watchdog of the group at `path` (cgroup `version` 1 or 2)
    whose real limit is `size` bytes; returns a `Watchdog`.  Raises OSError
    if it could not be started."""
    if not sys.executable:
        raise OSError(errno.ENOENT, "no Python interpreter to run the watchdog with")
    try:
        pidfd = os.pidfd_open(os.getpid())
    except (AttributeError, OSError):    # before Linux 5.3: the pipe's EOF alone
        pidfd = -1
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), path, str(version), str(size),
            str(pidfd), str(done_r)]
    try:
        child = os.fork()
        if child == 0:   # the intermediate: spawn the watchdog, tell its pid, exit
            status = 1
            try:
                for fd in (pidfd, done_r):
                    if fd >= 0:
                        os.set_inheritable(fd, True)
                null = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                        (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
                pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=null,
                                     setsid=True, setsigmask=())
                os.write(pid_w, str(pid).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(pid_w)
        pid_w = None
        _, status = os.waitpid(child, 0)
        reported = os.read(pid_r, 32)
    except BaseException:
        os.close(done_w)
        raise
    finally:
        for fd in (pidfd, done_r, pid_r, pid_w):
            if fd is not None and fd >= 0:
                os.close(fd)
    if status != 0 or not reported:
        os.close(done_w)
        raise OSError(errno.ECHILD, f"the cgroup watchdog did not start (status {status:#x})")
    pid = int(reported)
    try:
        own = os.pidfd_open(pid)
    except (AttributeError, OSError):
        own = -1
    return Watchdog(pid, done_w, own)


# --- the group -------------------------------------------------------------------

def _write(path, name, value):
    with open(os.path.join(path, name), "w") as f:
        f.write(str(value))


def restore(path, version, size):
    """Give the group the kernel's rules back: OOM killer on, limit `size`.

    Returns False if v1 refused the limit with EBUSY (usage is above it: the
    OOM killer, now on, acts at the old limit; try again later), True
    otherwise.  A group that is gone (ENOENT) needs nothing.  The same
    rules as `Cgroup.enforce`, which vrange-run uses when nothing volatile is
    left."""
    try:
        if version == 2:
            _write(path, "memory.max", size)       # first: never unlimited in between
            _write(path, "memory.high", "max")
        else:
            _write(path, "memory.oom_control", 0)  # tasks paused at the limit wake, OOM kills
            _write(path, "memory.limit_in_bytes", size)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        return False
    return True


def remove_when_empty(path, version, size, limit_set=True, sleep=time.sleep):
    """rmdir the group once its processes are gone (EBUSY until then),
    retrying a v1 limit the kernel refused (`limit_set` False).  Returns
    True when the group is gone, False if rmdir fails for another reason."""
    delay = POLL_FIRST
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            # EBUSY: still populated.  ENOTEMPTY is what a plain directory
            # (the tests' fake group) answers instead.
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                return False
        if not limit_set:
            try:
                limit_set = restore(path, version, size)
            except OSError:
                limit_set = True    # cannot be helped: the OOM killer is on
        sleep(delay)
        delay = min(delay * 2, POLL_MAX)


# --- the watchdog process ------------------------------------------------------------

def owner_gone(pidfd, done_fd):
    """Block until vrange-run says "done" (False) or dies (True): its pidfd
    turns readable, or the pipe closes without "done"."""
    os.set_blocking(done_fd, False)
    poller = select.poll()
    poller.register(done_fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    while True:
        ready = dict(poller.poll())
        try:
            data = os.read(done_fd, len(DONE))
        except BlockingIOError:
            data = None
        if data:
            return not data.startswith(DONE)
        if data == b"" or ready.get(pidfd):    # EOF, or the process exited
            return True


def main(argv):
    path, version, size, pidfd, done_fd = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), \
        int(argv[5])
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    keep = sorted(fd for fd in (pidfd, done_fd) if fd >= 0)
    low = 3
    for fd in keep:               # close every inherited fd but ours
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    if not owner_gone(pidfd, done_fd):
        return 0
    try:
        limit_set = restore(path, version, size)
    except OSError:
        limit_set = True
    return 0 if remove_when_empty(path, version, size, limit_set) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
