"""ptrace requests and wait-status decoding (x86_64).

Raw requests go through python-ptrace's binding; its high-level debugger is
not used because it cannot decode PTRACE_EVENT_SECCOMP or PTRACE_EVENT_STOP.
"""
import errno
import os
import signal
from typing import NamedTuple

from ptrace.binding import func as _pt

PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_DETACH = 17
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208

O_TRACEFORK = 1 << 1
O_TRACEVFORK = 1 << 2
O_TRACECLONE = 1 << 3
O_TRACEEXEC = 1 << 4
O_TRACESECCOMP = 1 << 7

EVENT_FORK = 1
EVENT_VFORK = 2
EVENT_CLONE = 3
EVENT_EXEC = 4
EVENT_SECCOMP = 7
EVENT_STOP = 128

WALL = 0x40000000
STOP_SIGNALS = frozenset((signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU))
# A syscall interrupted by a stop reports one of these in rax (kernel-internal).
RESTART_ERRNOS = frozenset((512, 513, 514, 516))

# Follow every new task; no PTRACE_O_EXITKILL: if the supervisor dies the
# program keeps running and its vrange calls fail with ENOSYS.
SEIZE_OPTIONS = O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE | O_TRACEEXEC

PtraceError = _pt.PtraceError


class Stop(NamedTuple):
    """One decoded waitpid() status.

    kind is one of: 'exited' (value = exit code), 'killed' (value = signal),
    'event' (value = PTRACE_EVENT_*), 'group-stop' (value = stop signal),
    'trap-stop' (PTRACE_EVENT_STOP with SIGTRAP: PTRACE_INTERRUPT or the
    initial stop of an auto-attached task), 'signal' (signal-delivery-stop,
    value = signal).
    """
    tid: int
    kind: str
    value: int


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
    return Stop(tid, "signal", sig)


def request(command, tid, addr=0, data=0):
    return _pt.ptrace(command, tid, addr, data)


def interrupt(tid):
    request(PTRACE_INTERRUPT, tid)


def cont(tid, sig=0):
    request(PTRACE_CONT, tid, 0, sig)


def listen(tid):
    request(PTRACE_LISTEN, tid)


def singlestep(tid, sig=0):
    request(PTRACE_SINGLESTEP, tid, 0, sig)


def detach(tid, sig=0):
    request(PTRACE_DETACH, tid, 0, sig)


def eventmsg(tid):
    return _pt.ptrace_geteventmsg(tid)


def getregs(tid):
    return _pt.ptrace_getregs(tid)


def setregs(tid, regs):
    _pt.ptrace_setregs(tid, regs)


def siginfo_addr(tid):
    """si_addr of the signal a task is stopped to receive (at a signal-delivery stop)."""
    return _pt.ptrace_getsiginfo(tid)._sigfault._addr or 0


def gone(exc):
    """True if a PtraceError means the task no longer exists (or is not stopped)."""
    return getattr(exc, "errno", None) == errno.ESRCH
