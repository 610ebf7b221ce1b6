"""Giving up after an internal error: detach from every task, never leaving one stopped."""
import os
import time

from ..linux import ptrace
from ..linux.errors import TaskGone

DETACH_WAIT = 1.0   # seconds to wait for a running task to stop so it can be detached


def abandon(tasks, stops):
    """Stop tracing the tasks of `tasks` (TaskTable) and wait for the
    program; its vrange calls then fail with ENOSYS.  Returns its exit Stop."""
    for task in tasks.all():
        tid = task.tid
        try:
            ptrace.detach(tid)          # works if it is in a ptrace stop
            continue
        except (TaskGone, OSError):
            pass
        try:
            ptrace.interrupt(tid)
        except (TaskGone, OSError):
            continue
        deadline = time.monotonic() + DETACH_WAIT
        while time.monotonic() < deadline:
            try:
                stop = stops.wait_nohang(tid)
            except ChildProcessError:
                break
            if stop is None:
                time.sleep(0.001)
                continue
            if stop.ended:
                tasks.exited(stop)
            else:
                _let_go(stop)
            break
    # Stopped already, their statuses reaped: first stops before their
    # creator's event, and stops reaped but not handled yet.
    held = [ptrace.Stop(tid, "trap-stop", 0) for tid in tasks.unclaimed]
    for stop in [*held, *stops.deferred]:
        if stop.ended:
            if stop.tid == tasks.main_pid:
                tasks.main_status = stop
            continue
        _let_go(stop)
    stops.deferred.clear()
    main = tasks.main_pid
    while tasks.main_status is None and main:
        # Stops of tasks the table never got to know (a first stop before
        # its creator's event, a child the native loop followed whose event
        # was not applied) come here too: nobody else would resume them.
        try:
            tid, status = os.waitpid(-1, ptrace.WALL)
        except ChildProcessError:
            break
        stop = ptrace.decode(tid, status)
        if tid == main and stop.ended:
            tasks.main_status = stop
        elif not stop.ended:
            _let_go(stop)
    return tasks.main_status


def _let_go(stop):
    """Detach the task of `stop` from that stop, passing on the signal it
    was about to receive."""
    try:
        ptrace.detach(stop.tid, stop.value if stop.kind == "signal" else 0)
    except (TaskGone, OSError):
        pass
