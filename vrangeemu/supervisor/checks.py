"""Allocator testing: forced purges and volatile-access checking.

Both act at the ptrace stop of each vrange call (they imply --trap ptrace),
so nothing can happen between the answer and what follows it:

* --purge-policy always|random (model.policy): the ranges it picks are
  purged at that stop, through the ordinary purge path (COW rules apply);
* --check-access report|abort: a range is PROT_NONE while it is volatile, so
  any access faults; the SIGSEGV is caught at its signal-delivery stop,
  reported, and either the page is re-pinned and the access re-run (report)
  or the program is killed (abort).

To run syscalls in the thread it first steps out of the seccomp stop: a
PTRACE_SINGLESTEP there finishes the (skipped) call and stops with SIGTRAP
at the user-mode boundary, where remote syscalls work; that SIGTRAP is dropped.
"""
import os
import signal
import sys
import time
from typing import NamedTuple, Optional, Tuple

from ..abi import VOLATILE
from ..linux import ptrace
from ..linux.errors import TaskGone
from ..linux.syscalls import SYS_MPROTECT
from ..observe.events import Violation as ViolationEvent
from .remote import InjectionFailed

PROT_NONE = 0
PROT_RW = 3   # a faulting page with no saved protection (should not happen)
PAGE = 4096
EXIT_VIOLATION = 66   # the program touched volatile memory (documented in --help)
MARKED_AT_KEPT = 1 << 16   # marking times kept before those of gone ranges are dropped


class Violation(NamedTuple):
    pid: int
    tid: int
    program: str
    addr: int
    ip: int
    range: Tuple[int, int]
    marked_at: Optional[float]
    purged: bool


class Checker:
    """The allocator checks: `policy` (model.policy.PurgePolicy) and
    `check_access` ("off", "report", "abort"), acting through `remote`
    (RemoteSyscalls) and `purger`; spaces come from `tasks` (TaskTable)."""

    def __init__(self, policy, check_access, tasks, remote, purger, bus):
        self.policy, self.check_access = policy, check_access
        self.tasks, self.remote, self.purger, self.bus = tasks, remote, purger, bus
        self.violations = []
        self.marked_at = {}      # Range stamp -> seconds into the run it was marked
        self._marked_limit = MARKED_AT_KEPT
        self.started_at = time.monotonic()
        tasks.on_space_end.append(lambda space: policy.forget(id(space)))

    @property
    def active(self):
        """True if calls must stop in ptrace (forced purges or access checks)."""
        return self.policy.forced or self.check_access != "off"

    # --- after a call ---------------------------------------------------------
    def after_call(self, task, answer):
        """At the seccomp stop of an answered call: protect or unprotect its
        span and run the purges the policy wants now.  Returns the signal to
        resume with (none: signals stay pending meanwhile); raises TaskGone
        if the task died."""
        if not self.active:
            return 0
        space = task.space
        protect, purge = [], self.policy.on_call(id(space))
        if answer.span and answer.span[0] < answer.span[1]:
            start, end = answer.span
            if answer.call.mode == VOLATILE:
                self._note_marked(space, start, end)
                purge += self.policy.on_volatile(id(space), start, end)
            if self.check_access != "off":
                protect = self._protections(space, answer.call.mode == VOLATILE, start, end)
        if not protect and not purge:
            return 0
        self.remote.step_out(task)   # may swallow a PTRACE_INTERRUPT: see the end
        if protect:
            try:
                self.remote.run(task, protect)
            except InjectionFailed as exc:
                print(f"vrange-run: --check-access: cannot protect [{start:#x}, {end:#x}): {exc}",
                      file=sys.stderr, flush=True)
        if purge:
            self.purger.run_forced(task, purge, self.policy.name)
        elif self.purger.due(task):   # a purge asked for meanwhile: we are at a boundary now
            self.purger.run_at_stop(task)
        return 0

    @staticmethod
    def _protections(space, volatile, start, end):
        """The mprotect calls of a marked or re-pinned span: PROT_NONE
        while volatile; a re-pin gives each page the protection it had."""
        if volatile:
            space.saved_prot.save(space.memory.protections(start, end))
            return [(SYS_MPROTECT, (start, end - start, PROT_NONE))]
        return [(SYS_MPROTECT, (s, e - s, prot)) for s, e, prot in space.saved_prot.take(start, end)]

    def _note_marked(self, space, start, end):
        for r in space.ranges.overlapping(start, end):
            self.marked_at.setdefault(r.stamp, time.monotonic() - self.started_at)
        if len(self.marked_at) > self._marked_limit:   # forget ranges that are gone
            live = {r.stamp for sp in self.tasks.spaces() for r in sp.ranges}
            self.marked_at = {k: v for k, v in self.marked_at.items() if k in live}
            self._marked_limit = max(MARKED_AT_KEPT, 2 * len(self.marked_at))

    # --- faults -------------------------------------------------------------------
    def on_fault(self, task):
        """A SIGSEGV about to be delivered: if it is an access to a range
        --check-access protected, report it and re-pin the page (report) or
        kill the program (abort).  Returns True if handled (task resumed or
        gone), False to deliver the signal normally."""
        space = task.space
        if self.check_access == "off" or space is None:
            return False
        try:
            addr = ptrace.siginfo_addr(task.tid)
        except (TaskGone, OSError):
            return False
        page = addr & ~(PAGE - 1)
        hit = space.ranges.overlapping(page, page + PAGE)
        if not hit:
            return False
        rng = hit[0]
        v = Violation(pid=space.tgid, tid=task.tid, program=space.name, addr=addr,
                      ip=ptrace.getregs(task.tid).rip, range=(rng.start, rng.end),
                      marked_at=self.marked_at.get(rng.stamp),
                      purged=space.ranges.is_purged(page, page + PAGE))
        self.violations.append(v)
        space.stats.violations += 1
        self._report(v)
        self.bus.emit(ViolationEvent(pid=v.pid, tid=v.tid, addr=v.addr, ip=v.ip,
                                     range=list(v.range), marked_at=v.marked_at,
                                     purged=v.purged, action=self.check_access))
        if self.check_access == "abort":
            os.kill(space.tgid, signal.SIGKILL)
            ptrace.cont(task.tid, 0)
            return True
        # report: as if that page had been re-pinned, then run the access again
        space.ranges.unmark(page, page + PAGE)
        self.purger.unpin(space, (page, page + PAGE))
        self.purger.mirror.cut_purged(space, page, page + PAGE)
        restore = space.saved_prot.take(page, page + PAGE) or [(page, page + PAGE, PROT_RW)]
        try:
            self.remote.run(task, [(SYS_MPROTECT, (s, e - s, prot)) for s, e, prot in restore])
        except InjectionFailed:
            return False   # cannot re-pin it: the program gets its SIGSEGV
        ptrace.cont(task.tid, 0)
        return True

    def _report(self, v):
        when = f"{v.marked_at:.4f} s into the run" if v.marked_at is not None else "earlier"
        action = ("killing the program (--check-access abort)" if self.check_access == "abort"
                  else "re-pinned that page; the program goes on (--check-access report)")
        print(f"vrange-run: VOLATILE ACCESS: process {v.pid} ({v.program}) thread {v.tid} "
              f"touched {v.addr:#x} at ip {v.ip:#x}\n"
              f"vrange-run:   in volatile range [{v.range[0]:#x}, {v.range[1]:#x}) marked "
              f"{when}; that page was {'purged' if v.purged else 'not purged'}\n"
              f"vrange-run:   {action}", file=sys.stderr, flush=True)

    def summary(self, out):
        """The end-of-run summary of --check-access / --purge-policy."""
        if not self.active:
            return
        stats = [st for _, _, st in self.tasks.finished] + [sp.stats for sp in self.tasks.spaces()]
        marked = sum(st.volatile_calls for st in stats)
        purges = sum(st.purges for st in stats)
        runs = sum(st.runs_discarded for st in stats)
        answers = sum(st.purged_answers for st in stats)
        procs = len({v.pid for v in self.violations})
        policy = self.policy.name + (f", seed {self.policy.seed}" if self.policy.name == "random" else "")
        found = ""
        if self.check_access != "off":
            found = (f"{len(self.violations)} volatile access violation(s)"
                     f"{f' in {procs} process(es)' if procs else ''}; ")
        print(f"vrange-run: summary: {found}{marked} VOLATILE calls, {purges} purges "
              f"({runs} runs discarded; policy {policy}), {answers} purged answers received by the program",
              file=out, flush=True)
