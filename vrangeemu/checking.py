"""Allocator testing: forced purges and volatile-access checking.

`Checking` is mixed into `Supervisor`.  Both features act at the ptrace
stop of each vrange call (they imply --trap ptrace), so nothing can happen
between the answer and what follows it:

* --purge-policy always|random (model.policy): the ranges it picks are
  purged at that stop, through the ordinary purge path (COW rules apply);
* --check-access report|abort: a range is PROT_NONE while it is volatile, so
  any access faults; the SIGSEGV is caught at its signal-delivery stop,
  reported, and either the page is re-pinned and the access re-run (report)
  or the program is killed (abort).

To inject syscalls the thread first steps out of the seccomp stop: a
PTRACE_SINGLESTEP there finishes the (skipped) call and stops with SIGTRAP
at the user-mode boundary, where inject.run works; that SIGTRAP is dropped.
"""
import os
import signal
import sys
import time

from ._native import lib
from .abi import VOLATILE
from .linux import inject, ptrace

SYS_MPROTECT = 10
PROT_NONE = 0
PROT_RW = 3
PAGE = 4096
EXIT_VIOLATION = 66   # the program touched volatile memory (documented in --help)
MARKED_AT_KEPT = 1 << 16   # marking times kept before those of gone ranges are dropped


class Violation:
    __slots__ = ("pid", "tid", "program", "addr", "ip", "range", "marked_at", "purged")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class Checking:
    """Mixed into Supervisor, which sets `policy` (model.policy.PurgePolicy),
    `check_access` ("off", "report", "abort") and provides the rest."""

    def _checking_init(self):
        self.violations = []
        self.marked_at = {}      # Range stamp -> seconds into the run it was marked
        self._marked_limit = MARKED_AT_KEPT
        self.started_at = time.monotonic()

    @property
    def checks_calls(self):
        """True if calls must stop in ptrace (forced purges or access checks)."""
        return self.policy.forced or self.check_access != "off"

    # --- after a call ---------------------------------------------------------
    def _after_call(self, task, args, answer):
        """At the seccomp stop of an answered call: protect or unprotect its
        span and run the purges the policy wants now.  Returns the signal to
        resume with, or None if the task died."""
        if not self.checks_calls:
            return 0
        space = task.space
        call = self.profile.decode(args)
        protect, purge = [], self.policy.on_call(id(space))
        if answer.span and answer.span[0] < answer.span[1]:
            start, end = answer.span
            if call.mode == VOLATILE:
                self._note_marked(space, start, end)
                purge += self.policy.on_volatile(id(space), start, end)
            if self.check_access != "off":
                prot = PROT_NONE if call.mode == VOLATILE else PROT_RW
                protect.append((SYS_MPROTECT, (start, end - start, prot)))
        if not protect and not purge:
            return 0
        sig = self._step_out(task)   # may swallow a PTRACE_INTERRUPT: see the end
        if sig is None:
            return None
        if protect and not self._inject(task, protect):
            return None
        if purge:
            self._purge_now(task, purge)
        elif task.purge_by:   # a purge asked for meanwhile: we are at a boundary now
            self._purge_in(task)
        return sig if task.tid in self.tasks else None

    def _note_marked(self, space, start, end):
        for r in space.ranges.overlapping(start, end):
            self.marked_at.setdefault(r.stamp, time.monotonic() - self.started_at)
        if len(self.marked_at) > self._marked_limit:   # forget ranges that are gone
            live = {r.stamp for sp in self.spaces() for r in sp.ranges}
            self.marked_at = {k: v for k, v in self.marked_at.items() if k in live}
            self._marked_limit = max(MARKED_AT_KEPT, 2 * len(self.marked_at))

    def _purge_before_call(self, task):
        """At a seccomp stop with a purge pending for its thread (asked for
        before this call): skip the call for now, step out, purge, and let
        the program run the call again (rip back on its `syscall`), so the
        purge lands first, as in notify mode.  Returns the resume signal or
        None if the task died."""
        regs = ptrace.getregs(task.tid)
        regs.orig_rax = (1 << 64) - 1   # skipped ...
        regs.rax = self.profile.nr      # ... and made again, with the same arguments
        regs.rip -= 2
        ptrace.setregs(task.tid, regs)
        sig = self._step_out(task)
        if sig is None:
            return None
        self._purge_in(task)
        return sig if task.tid in self.tasks else None

    def _purge_now(self, task, runs):
        space = task.space
        if space.pending_purge != "all":
            space.pending_purge = (space.pending_purge or []) + runs
        space.purge_why = self.policy.name
        self._purge_in(task)

    def _step_out(self, task):
        """From a seccomp stop to the user-mode boundary: the step's SIGTRAP
        stop (dropped).  A signal or an interrupt that comes first is waited
        through; returns the signal to deliver afterwards (0 if none), or
        None if the task died."""
        held = 0
        for _ in range(8):
            ptrace.singlestep(task.tid)
            stop = inject.wait_for(task.tid, self.deferred)
            if stop.kind in ("exited", "killed"):
                self._on_exit(stop)
                return None
            if stop.kind == "signal" and stop.value == signal.SIGTRAP:
                return held
            if stop.kind == "signal":
                if held:   # a second one: let the kernel queue it again
                    lib.vr_tgkill(task.space.tgid, task.tid, held)
                held = stop.value
        raise RuntimeError(f"thread {task.tid} did not step out of its vrange call")

    def _inject(self, task, syscalls):
        """Run `syscalls` in the stopped task and re-send the signals held
        meanwhile.  False if it died (then it is already forgotten)."""
        done = inject.run(task.tid, self._insn(task), syscalls, self.deferred)
        if done.death is not None:
            self._on_exit(done.death)
            return False
        for sig in done.signals:
            lib.vr_tgkill(task.space.tgid, task.tid, sig)
        return True

    def _insn(self, task):
        """A `syscall` instruction to inject at: the vDSO's, else the one the
        task just left (we only inject right after a call or at a fault)."""
        insn = task.space.memory.syscall_insn(task.tid)
        if insn is None:
            raise RuntimeError(f"no syscall instruction found in {task.space.tgid}")
        return insn

    # --- faults -------------------------------------------------------------------
    def _on_fault(self, task):
        """A SIGSEGV about to be delivered: if it is an access to a range
        --check-access protected, report it and re-pin the page (report) or
        kill the program (abort).  Returns True if handled (task resumed or
        gone), False to deliver the signal normally."""
        space = task.space
        if self.check_access == "off" or space is None:
            return False
        try:
            addr = ptrace.siginfo_addr(task.tid)
        except ptrace.PtraceError:
            return False
        page = addr & ~(PAGE - 1)
        hit = space.ranges.overlapping(page, page + PAGE)
        if not hit:
            return False
        rng = hit[0]
        ip = ptrace.getregs(task.tid).rip
        v = Violation(pid=space.tgid, tid=task.tid, program=space.name, addr=addr, ip=ip,
                      range=(rng.start, rng.end), marked_at=self.marked_at.get(rng.stamp),
                      purged=space.ranges.is_purged(page, page + PAGE))
        self.violations.append(v)
        space.stats.violations += 1
        self._report(v)
        if self.trace:
            self.trace.event("violation", pid=v.pid, tid=v.tid, addr=v.addr, ip=v.ip,
                             range=list(v.range), marked_at=v.marked_at, purged=v.purged,
                             action=self.check_access)
        if self.check_access == "abort":
            os.kill(space.tgid, signal.SIGKILL)
            ptrace.cont(task.tid, 0)
            return True
        # report: as if that page had been re-pinned, then run the access again
        space.ranges.unmark(page, page + PAGE)
        if space.trap_fd >= 0:
            lib.vr_uffd_unregister(space.trap_fd, page, PAGE)
        if self._inject(task, [(SYS_MPROTECT, (page, PAGE, PROT_RW))]):
            ptrace.cont(task.tid, 0)
        return True

    def _report(self, v):
        when = f"{v.marked_at:.4f} s into the run" if v.marked_at is not None else "earlier"
        print(f"vrange-run: VOLATILE ACCESS: process {v.pid} ({v.program}) thread {v.tid} "
              f"touched {v.addr:#x} at ip {v.ip:#x}\n"
              f"vrange-run:   in volatile range [{v.range[0]:#x}, {v.range[1]:#x}) marked "
              f"{when}; that page was {'purged' if v.purged else 'not purged'}\n"
              f"vrange-run:   {'killing the program (--check-access abort)' if self.check_access == 'abort' else 're-pinned that page; the program goes on (--check-access report)'}",
              file=sys.stderr, flush=True)

    def checking_summary(self, out):
        """The end-of-run summary of --check-access / --purge-policy."""
        if not self.checks_calls:
            return
        stats = [st for _, _, st in self.finished] + [sp.stats for sp in self.spaces()]
        marked = sum(st.volatile_calls for st in stats)
        purged = sum(st.purges for st in stats)
        answers = sum(st.purged_answers for st in stats)
        procs = len({v.pid for v in self.violations})
        policy = self.policy.name + (f", seed {self.policy.seed}" if self.policy.name == "random" else "")
        found = ""
        if self.check_access != "off":
            found = (f"{len(self.violations)} volatile access violation(s)"
                     f"{f' in {procs} process(es)' if procs else ''}; ")
        print(f"vrange-run: summary: {found}{marked} VOLATILE calls, {purged} runs discarded "
              f"(policy {policy}), {answers} purged answers received by the program",
              file=out, flush=True)

