"""Remote syscalls: the only place that runs code inside a traced task.

After rr's AutoRemoteSyscalls and proot's chained syscalls: a session saves
a stopped task's registers, signal mask and siginfo, blocks every signal (those that
arrive meanwhile stay pending in the kernel, siginfo and order intact),
runs syscalls at a `syscall` instruction by single-stepping over it, then
restores registers and mask.  Every wait is bounded.  Death is reported one
way: TaskGone (the task table has already recorded an exit when it is
raised here; an exec by another thread is left queued for the loop).
`InjectionFailed`: the instruction does not run (the program unmapped or
remapped it): the task is restored and goes on.

The task must be at a user-mode boundary: a PTRACE_EVENT_STOP (interrupt
or group-stop) or a signal-delivery stop; not at a fork/exec event stop,
where the kernel is still inside the syscall and would overwrite rax.
"""
import ctypes
import signal

from ..linux import ptrace
from ..linux.errors import TaskGone
from ..linux.process import tgkill

U64 = (1 << 64) - 1
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
ALL_SIGNALS = U64          # the kernel never blocks SIGKILL and SIGSTOP
MAX_STOPS = 16             # stops per injected syscall before giving up
FAULTS = frozenset((signal.SIGSEGV, signal.SIGBUS, signal.SIGILL))


class InjectionFailed(Exception):
    """The `syscall` instruction could not be run in the task (it was
    restored and goes on)."""


def syscall_insn_for(regs):
    """rip-2 if the stop interrupted a syscall (rip is just past `syscall`), else None."""
    if regs.orig_rax != U64 and (-ctypes.c_int64(regs.rax).value) in ptrace.RESTART_ERRNOS:
        return regs.rip - 2
    return None


class _Died(Exception):
    def __init__(self, stop, results):
        super().__init__(stop)
        self.stop = stop
        self.results = results


class Session:
    """One stopped task lent to us: `run()` syscalls in it; leaving the
    `with` block restores it (see RemoteSyscalls.session)."""

    def __init__(self, remote, task, insn):
        self._remote = remote
        self.task = task
        self.insn = insn
        self.held = []   # signals that arrived meanwhile, to deliver again
        self._saved = None

    def __enter__(self):
        tid = self.task.tid
        self._saved = ptrace.getregs(tid)
        # At a signal-delivery stop, resuming delivers the signal with the
        # siginfo of the stop the task is in then: keep the original's.
        self._siginfo = ptrace.getsiginfo(tid)
        self._mask = ptrace.getsigmask(tid)
        ptrace.setsigmask(tid, ALL_SIGNALS)
        return self

    def run(self, calls):
        """Run [(nr, (a0, a1, ...)), ...] one by one; each result (negative
        errno on failure), in order."""
        tid, saved, results = self.task.tid, self._saved, []
        for nr, args in calls:
            regs = type(saved).from_buffer_copy(saved)
            regs.rip = self.insn
            regs.rax = nr
            regs.orig_rax = U64   # no syscall restart on the way back to user mode
            for name, value in zip(ARG_REGS, args):
                setattr(regs, name, value & U64)
            ptrace.setregs(tid, regs)
            results.append(self._step(results))
        return results

    def _step(self, results):
        """Single-step over the instruction; its result."""
        tid = self.task.tid
        for _ in range(MAX_STOPS):
            ptrace.singlestep(tid)
            stop = self._remote.stops.wait_for(tid)
            if stop.ended:
                raise _Died(stop, results)
            if stop.kind == "event":   # an exec by another thread took this tid over
                self._remote.stops.put_back(stop)
                raise TaskGone(tid, "exec during a remote syscall", results)
            if stop.kind != "signal":
                continue   # a late PTRACE_INTERRUPT trap: step again
            after = ptrace.getregs(tid)
            if stop.value == signal.SIGTRAP and after.rip == self.insn + 2:
                return ctypes.c_int64(after.rax).value
            if stop.value in FAULTS and after.rip == self.insn:
                raise InjectionFailed(f"no syscall instruction at {self.insn:#x} in {tid}")
            if stop.value != signal.SIGTRAP:
                self.held.append(stop.value)   # not blockable, or raced the mask
        raise InjectionFailed(f"thread {tid} did not run its injected syscall")

    def __exit__(self, kind, exc, tb):
        if kind is _Died:
            self._remote.tasks.exited(exc.stop)
            raise TaskGone(self.task.tid, "died during a remote syscall", exc.results) from None
        if kind is TaskGone:
            return False
        ptrace.setregs(self.task.tid, self._saved)
        ptrace.setsigmask(self.task.tid, self._mask)
        ptrace.setsiginfo(self.task.tid, self._siginfo)
        self._remote.redeliver(self.task, self.held)
        return False


class RemoteSyscalls:
    """Remote syscalls into tasks of `tasks` (a TaskTable); `stops` is the
    loop's StopQueue (other tasks' statuses wait there meanwhile)."""

    def __init__(self, tasks, stops):
        self.tasks = tasks
        self.stops = stops

    def session(self, task, insn):
        """`with remote.session(task, insn) as s: s.run([...])` at the
        `syscall` instruction at `insn`."""
        return Session(self, task, insn)

    def run(self, task, insn, calls):
        """One session that runs `calls`; their results."""
        with self.session(task, insn) as s:
            return s.run(calls)

    def step_out(self, task):
        """From a seccomp stop to the user-mode boundary (the step's SIGTRAP
        stop, dropped), with every signal blocked meanwhile (they stay
        pending).  Raises TaskGone if it died."""
        mask = ptrace.getsigmask(task.tid)
        ptrace.setsigmask(task.tid, ALL_SIGNALS)
        held = []
        for _ in range(MAX_STOPS):
            ptrace.singlestep(task.tid)
            stop = self.stops.wait_for(task.tid)
            if stop.ended:
                self.tasks.exited(stop)
                raise TaskGone(task.tid, "died stepping out of its call")
            if stop.kind == "event":   # an exec by another thread took this tid over
                self.stops.put_back(stop)
                raise TaskGone(task.tid, "exec while stepping out of its call")
            if stop.kind == "signal" and stop.value == signal.SIGTRAP:
                ptrace.setsigmask(task.tid, mask)
                self.redeliver(task, held)
                return
            if stop.kind == "signal":
                held.append(stop.value)   # SIGSTOP: not blockable
        raise RuntimeError(f"thread {task.tid} did not step out of its vrange call")

    def redeliver(self, task, signals):
        """Queue `signals` for `task` again (it is still stopped)."""
        for sig in signals:
            try:
                tgkill(task.space.tgid if task.space else task.tid, task.tid, sig)
            except TaskGone:
                return   # it is dying: the signal is moot
