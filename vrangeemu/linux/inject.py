"""Run syscalls inside a stopped tracee ("chained syscalls", as proot does).

The thread must be in a ptrace stop at a user-mode boundary: a
PTRACE_EVENT_STOP (PTRACE_INTERRUPT or group-stop) or a signal-delivery
stop.  Not at a fork/exec event stop: there the kernel is still inside the
syscall and would overwrite rax on the way out.
"""
import ctypes
import os
import signal
from typing import List, NamedTuple, Optional

from . import ptrace

SYS_CLOSE = 3
SYS_MADVISE = 28
SYS_USERFAULTFD = 323
MADV_DONTNEED = 4
O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000
_U64 = (1 << 64) - 1


class Injection(NamedTuple):
    results: List[int]          # each syscall's return (negative errno on failure)
    signals: List[int]          # signals that arrived meanwhile, to deliver again
    death: Optional[ptrace.Stop]  # set if the task died: its exit/kill status


def syscall_insn_for(regs):
    """rip-2 if the stop interrupted a syscall (rip is just past `syscall`)."""
    if regs.orig_rax != _U64 and (-ctypes.c_int64(regs.rax).value) in ptrace.RESTART_ERRNOS:
        return regs.rip - 2
    return None


def run(tid, insn, calls, elsewhere):
    """Run `calls` [(nr, (a0, a1, ...)), ...] one by one at the `syscall`
    instruction at `insn`, then restore every register.

    Each call is one PTRACE_SINGLESTEP over that instruction.  Signals that
    arrive meanwhile are held back and returned for redelivery; if the task
    dies, stop and return its status (registers are then moot).  Wait
    statuses of other tasks that come meanwhile are appended to `elsewhere`
    as (tid, status) for the caller to dispatch: they must be reaped, or a
    dying thread-group leader is never reported (the kernel reports it only
    after its other threads).
    """
    saved = ptrace.getregs(tid)
    results, held = [], []
    for nr, args in calls:
        regs = type(saved).from_buffer_copy(saved)
        regs.rip = insn
        regs.rax = nr
        regs.orig_rax = _U64   # no syscall restart on the way back to user mode
        for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
            setattr(regs, name, value & _U64)
        ptrace.setregs(tid, regs)
        while True:
            ptrace.singlestep(tid)
            stop = wait_for(tid, elsewhere)
            if stop.kind in ("exited", "killed"):
                return Injection(results, held, stop)
            if stop.kind == "signal":
                after = ptrace.getregs(tid)
                if stop.value == signal.SIGTRAP and after.rip == insn + 2:
                    results.append(ctypes.c_int64(after.rax).value)
                    break
                held.append(stop.value)
            # other stops (a late PTRACE_INTERRUPT trap): step again
    ptrace.setregs(tid, saved)
    return Injection(results, held, None)


def wait_for(tid, elsewhere):
    """The next wait status of `tid`; others' go to `elsewhere` (see run)."""
    while True:
        got, status = os.waitpid(-1, ptrace.WALL)
        if got == tid:
            return ptrace.decode(tid, status)
        elsewhere.append((got, status))
