"""The supervisor's --trace events (mixed into Supervisor; the writer is trace.py)."""
from .linux import ptrace
from .trace import VERSION

PAGE = 4096


class Tracing:
    """Events that need the supervisor's state; `self.trace` is a trace.Trace or None."""

    def _trace_start(self):
        if self.trace:
            readings = self.pressure.readings if self.pressure else None
            self.trace.event("start", version=VERSION, argv=self.argv, pid=self.main_pid, abi=self.profile.name,
                             nr=self.profile.nr, trap=self.trap, native_loop=self.fast is not None,
                             pressure=self.pressure.name if self.pressure else None,
                             limit=getattr(readings, "limit", None),
                             high=getattr(readings, "high", None), low=getattr(readings, "low", None))

    def _trace_call(self, space, tid, args, answer):
        if self.trace:
            call = self.profile.decode(args)
            self.trace.call(space, tid, call.mode, call.start, call.length,
                            -1 if answer.error else answer.value, answer.error,
                            answer.repinned_purged is not None, "python")

    def _trace_sigbus(self, task):
        """A SIGBUS about to be delivered: a purged page touched while volatile?"""
        try:
            addr = ptrace.siginfo_addr(task.tid)
        except ptrace.PtraceError:
            return
        space, page = task.space, addr & ~(PAGE - 1)
        hit = space.ranges.overlapping(page, page + PAGE) if space else []
        self.trace.event("sigbus", pid=space.tgid if space else task.tid, tid=task.tid,
                         addr=addr, range=[hit[0].start, hit[0].end] if hit else None,
                         purged=bool(hit) and space.ranges.is_purged(page, page + PAGE))
