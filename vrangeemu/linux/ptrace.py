"""ptrace requests, wait statuses and the queue of stops (x86_64).

Raw requests go through python-ptrace's binding (its constants too); its
high-level debugger is not used: it cannot decode PTRACE_EVENT_SECCOMP or
PTRACE_EVENT_STOP, and polls with sleeps.  Every request raises TaskGone
or OSError (errors.py).
"""
import collections
import ctypes
import os
import signal
from typing import NamedTuple

from ptrace.binding import func as _pt
from ptrace.binding.func import (PTRACE_CONT, PTRACE_DETACH, PTRACE_EVENT_CLONE,
                                 PTRACE_EVENT_EXEC, PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK,
                                 PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC, PTRACE_O_TRACEFORK,
                                 PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACEVFORK, PTRACE_SINGLESTEP,
                                 PTRACE_SYSCALL)

from .errors import translated

# What python-ptrace 0.9.9 lacks (linux/ptrace.h).
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GETSIGMASK = 0x420a
PTRACE_SETSIGMASK = 0x420b
O_TRACESECCOMP = 1 << 7
EVENT_SECCOMP = 7
EVENT_STOP = 128
WALL = 0x40000000

EVENT_FORK, EVENT_VFORK, EVENT_CLONE, EVENT_EXEC = (
    PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC)
STOP_SIGNALS = frozenset((signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU))
# A syscall interrupted by a stop reports one of these in rax (kernel-internal).
RESTART_ERRNOS = frozenset((512, 513, 514, 516))

# Follow every new task; syscall stops (remote syscalls) report SIGTRAP|0x80.
# No PTRACE_O_EXITKILL: if the supervisor dies the program keeps running and
# its vrange calls fail with ENOSYS.
SEIZE_OPTIONS = (PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE
                 | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD)
SYSCALL_TRAP = signal.SIGTRAP | 0x80


class Stop(NamedTuple):
    """One decoded waitpid() status.

    kind is one of: 'exited' (value = exit code), 'killed' (value = signal),
    'event' (value = PTRACE_EVENT_*), 'group-stop' (value = stop signal),
    'trap-stop' (PTRACE_EVENT_STOP with SIGTRAP: PTRACE_INTERRUPT or the
    initial stop of an auto-attached task), 'syscall' (syscall entry or exit
    after PTRACE_SYSCALL), 'signal' (signal-delivery-stop, value = signal).
    """
    tid: int
    kind: str
    value: int

    @property
    def ended(self):
        return self.kind in ("exited", "killed")


def decode(tid, status):
    if os.WIFEXITED(status):
        return Stop(tid, "exited", os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        return Stop(tid, "killed", os.WTERMSIG(status))
    sig = os.WSTOPSIG(status)
    event = status >> 16
    if event == EVENT_STOP:
        return Stop(tid, "group-stop" if sig in STOP_SIGNALS else "trap-stop", sig)
    if event:
        return Stop(tid, "event", event)
    if sig == SYSCALL_TRAP:
        return Stop(tid, "syscall", sig)
    return Stop(tid, "signal", sig)


class StopQueue:
    """Wait statuses of all tracees, in order.  A wait for one task (during
    an injection) keeps the others' statuses here for the loop: they must be
    reaped, or a dying thread-group leader is never reported (the kernel
    reports it only after its other threads)."""

    def __init__(self):
        self.deferred = collections.deque()   # Stop

    def poll(self):
        """The next Stop without blocking (deferred ones first), or None."""
        if self.deferred:
            return self.deferred.popleft()
        try:
            tid, status = os.waitpid(-1, os.WNOHANG | WALL)
        except ChildProcessError:
            return None
        return decode(tid, status) if tid else None

    def wait_for(self, tid):
        """`tid`'s next status (blocking): one deferred already, or the next
        reaped; others' are deferred."""
        for stop in self.deferred:
            if stop.tid == tid:
                self.deferred.remove(stop)
                return stop
        while True:
            got, status = os.waitpid(-1, WALL)
            if got == tid:
                return decode(tid, status)
            self.deferred.append(decode(got, status))

    def defer(self, stop):
        """A stop reaped elsewhere (the native loop) for the loop, after those deferred."""
        self.deferred.append(stop)

    def put_back(self, stop):
        """A stop taken by a wait for one task that the loop must handle."""
        self.deferred.appendleft(stop)

    def wait_nohang(self, tid):
        """`tid`'s status if it has one now (only `tid` is reaped), else None;
        ChildProcessError if it is not ours (any more)."""
        got, status = os.waitpid(tid, WALL | os.WNOHANG)
        return decode(tid, status) if got else None


@translated
def interrupt(tid):
    _pt.ptrace(PTRACE_INTERRUPT, tid, 0, 0)


@translated
def cont(tid, sig=0):
    _pt.ptrace(PTRACE_CONT, tid, 0, sig)


@translated
def listen(tid):
    _pt.ptrace(PTRACE_LISTEN, tid, 0, 0)


@translated
def singlestep(tid, sig=0):
    _pt.ptrace(PTRACE_SINGLESTEP, tid, 0, sig)


@translated
def syscall(tid, sig=0):
    """Resume until the next syscall entry or exit (a 'syscall' stop)."""
    _pt.ptrace(PTRACE_SYSCALL, tid, 0, sig)


@translated
def detach(tid, sig=0):
    _pt.ptrace(PTRACE_DETACH, tid, 0, sig)


@translated
def eventmsg(tid):
    return _pt.ptrace_geteventmsg(tid)


@translated
def getregs(tid):
    return _pt.ptrace_getregs(tid)


@translated
def setregs(tid, regs):
    _pt.ptrace_setregs(tid, regs)


@translated
def getsiginfo(tid):
    """The siginfo of the stop the task is in (python-ptrace's siginfo struct)."""
    return _pt.ptrace_getsiginfo(tid)


@translated
def setsiginfo(tid, info):
    """Replace it: at a signal-delivery stop, what resuming with that signal delivers."""
    _pt.ptrace_setsiginfo(tid, info)


@translated
def siginfo_addr(tid):
    """si_addr of the signal a task is stopped to receive (at a signal-delivery stop)."""
    return _pt.ptrace_getsiginfo(tid)._sigfault._addr or 0


def _sigmask(request, tid, value=0):
    mask = ctypes.c_uint64(value)
    _pt.ptrace(request, tid, ctypes.sizeof(mask), ctypes.addressof(mask))
    return mask.value


@translated
def getsigmask(tid):
    """The stopped task's blocked-signal mask (a 64-bit int)."""
    return _sigmask(PTRACE_GETSIGMASK, tid)


@translated
def setsigmask(tid, value):
    """Set the stopped task's blocked-signal mask (SIGKILL/SIGSTOP stay unblocked)."""
    _sigmask(PTRACE_SETSIGMASK, tid, value)


def resume(stop):
    """Let a stopped task go on as the stop wants: keep a job-control stop
    (PTRACE_LISTEN: stays stopped until SIGCONT), deliver a signal, or run."""
    if stop.kind == "group-stop":
        listen(stop.tid)
    elif stop.kind == "signal":
        cont(stop.tid, stop.value)
    else:
        cont(stop.tid)
