"""The ptrace stops the native loop followed, applied to the task table.

The native loop (native/ext/follow.c) resumes the stops that need no
decision at once: fork, vfork, clone and exec of a task whose space never
had a volatile range, such a task's exit and signals, and the first stop
of a child it followed the creation of.  It logs each one, in order with
the calls, with what would have been read at the stop (kcmp, the program's
name).  The new spaces' /proc files are opened at their first call
(`Supervisor._on_call`), maybe long after the stop: until a call nothing
reads them (no range: nothing to purge).  `apply` does here, when the log
is applied, what `Supervisor._on_stop` does at such a stop, less the
resuming; `hand_back` queues the stops the loop reaped but left to Python.
"""
from ..linux import ptrace
from ..linux.errors import TaskGone
from ..linux.fastloop import EXEC, EXIT, FORK, STARTED


class Following:
    """`fault` "follow": a test hook, a supervisor bug at the second
    followed fork (tests/e2e/test_follow.py)."""

    def __init__(self, tasks, stops, native, fault=""):
        self.tasks, self.stops, self.native = tasks, stops, native
        self._forks_to_fault = 2 if fault == "follow" else 0

    def apply(self, ev):
        """One stop the native loop followed (fastloop.Followed)."""
        if ev.kind == EXIT:
            self.tasks.exited(ptrace.decode(ev.tid, ev.value))
            return
        task = self.tasks.get(ev.tid)
        if task is None:   # C follows only tasks Python knows or was told of
            raise AssertionError(f"native loop followed unknown task {ev.tid}: {ev}")
        if ev.kind == STARTED:
            task.starting = False
        elif ev.kind == EXEC:
            self.tasks.exec(task, ev.tid, name=ev.comm, followed=True)
        elif ev.kind == FORK:
            if self._forks_to_fault:
                self._forks_to_fault -= 1
                if not self._forks_to_fault:
                    raise RuntimeError("test fault: a bug while applying a followed fork")
            if self.tasks.adopt(task, ev.child, ev.value, shares_mm=bool(ev.shares),
                                followed=True):
                # Its first stop came to Python (handed back) before this
                # event: resumed here, as _on_event does.
                self.native.started(ev.child)
                try:
                    ptrace.cont(ev.child)
                except TaskGone:
                    pass   # its exit is still to come
            elif ev.claimed:
                self.tasks.get(ev.child).starting = False

    def hand_back(self, stops):
        """Stops (tid, wait status) the native loop reaped for Python, in order."""
        for tid, status in stops:
            self.stops.defer(ptrace.decode(tid, status))
