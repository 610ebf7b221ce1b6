"""The purge side of the supervisor: who is stopped, what is discarded, how.

`Purging` is mixed into `Supervisor`: purge requests (SIGUSR1, pressure),
stopping a thread that can stop, the injected madvise at that stop, the
copy-on-write checks that decide which shared pages may go, and the
userfaultfd that makes purged pages raise SIGBUS.  What to discard is
decided in the pure model (model.purge, model.cow); this module reads the
facts (/proc) and acts (ptrace).
"""
import errno
import os
import select
import time

from ._native import lib
from .linux import inject, procfs, ptrace
from .linux.procfs import PM_PFN_MASK, PM_PRESENT
from .model.cow import sharers_if_discardable
from .model.purge import choose_victims, purge_runs, still_discardable

PAGE = 4096
# How long calls wait for a requested purge to run; a task that takes longer
# to stop (D state, OOM wait) is purged whenever it stops.
PURGE_WAIT = 0.5


class Purging:
    """Purge requests and their execution (mixed into Supervisor, which
    provides tasks, log, pressure, purged_access, fault and _on_exit)."""

    def spaces(self):
        seen = {}
        for task in self.tasks.values():
            if task.space is not None:
                seen[id(task.space)] = task.space
        return list(seen.values())

    def tgids(self):
        return [space.tgid for space in self.spaces()]

    def volatile_bytes(self):
        return sum(space.ranges.volatile_bytes for space in self.spaces())

    def purge_all(self):
        """SIGUSR1: discard every volatile page of every space."""
        for space in self.spaces():
            if space.ranges and space.pending_purge is None:
                self._request_purge(space, "all", "signal")

    def _check_pressure(self):
        """Called when the pressure source is due or woke us: purge the
        oldest volatile ranges across all spaces until enough is freed."""
        need = self.pressure.need()
        self._pressure_due = time.monotonic() + self.pressure.timeout()
        if self.trace:
            r = self.pressure.readings
            self.trace.event("pressure", source=r.source, usage=r.last_usage, high=r.high,
                             low=r.low, limit=r.limit, need=need)
        if need <= 0:
            return
        for space in self.spaces():   # what pressure found resident, for --stats
            scan = space.memory.resident if self._alone(space) else space.memory.discardable
            resident = sum(e - s for s, e in purge_runs(space.ranges, scan))
            space.stats.resident_volatile_peak = max(space.stats.resident_volatile_peak,
                                                     resident)
        now = time.monotonic()
        in_flight = [sp for sp in self.spaces() if sp.pending_purge is not None
                     and any(self.tasks[t].purge_by > now for t in sp.tids)]
        idle = [sp for sp in self.spaces() if sp not in in_flight]
        for space in idle:   # a request past its deadline is planned again
            space.pending_purge = None
        companions = {}
        plan, freed = choose_victims(idle, need,
                                     lambda sp, lo, hi: self._discardable(sp, lo, hi, companions),
                                     self._blocked)
        for space, runs in companions.items():   # COW sharers lose the same pages
            if space.pending_purge is None:
                plan[space] = merge_runs(plan.get(space, []) + runs)
        if not plan:
            if not in_flight:
                self.pressure.exhausted()
            return
        self.log(f"pressure ({self.pressure.name}): {need >> 10} KiB over the low mark, "
                 f"purging {freed >> 10} KiB from {len(plan)} process(es)")
        for space, runs in plan.items():
            self._request_purge(space, runs, "pressure")

    def _request_purge(self, space, runs, why):
        """Stop one thread of `space`; `_purge_in` discards `runs` ("all" or
        [(start, end)]) when it stops (see `_await_purges`)."""
        for tid in self._stoppable(space):
            try:
                ptrace.interrupt(tid)
            except ptrace.PtraceError as exc:
                if ptrace.gone(exc):
                    continue
                raise
            space.pending_purge = runs
            space.purge_why = why
            self.tasks[tid].purge_by = time.monotonic() + PURGE_WAIT
            return

    def _stoppable(self, space):
        """Tasks of `space` best able to stop soon: running or sleeping
        interruptibly first, D state last; never a zombie (a leader after
        pthread_exit) nor a vfork parent (it stops only once its child is
        gone, and /proc may still show it runnable)."""
        rank = {"R": 0, "S": 0, "t": 1, "T": 1, "D": 2}
        states = {tid: procfs.task_state(tid) for tid in space.tids
                  if not self.tasks[tid].starting and not self.tasks[tid].in_vfork}
        return sorted((tid for tid, st in states.items() if st in rank),
                      key=lambda tid: (rank[states[tid]], tid))

    def _await_purges(self, sigfd):
        """Run the requested purges before serving any further call, so a purge
        asked for before a call is done before it; waits at most PURGE_WAIT."""
        while True:
            now = time.monotonic()
            due = [t.purge_by for t in self.tasks.values() if t.purge_by > now]
            if not due:
                return
            if select.select([sigfd], [], [], max(due) - now)[0]:
                self._on_signals(sigfd)

    def _purge_in(self, task):
        """Called at a PTRACE_INTERRUPT or signal stop of `task`: discard every
        volatile page of its space that is resident and not shared.  Returns
        False if the task died meanwhile (then it is already forgotten)."""
        task.purge_by = 0.0
        if self.fault == "purge":
            raise RuntimeError("fault injected by VRANGEEMU_TEST_FAULT=purge")
        space = task.space
        wanted, space.pending_purge = space.pending_purge, None
        discardable = lambda lo, hi: self._discardable(space, lo, hi)   # noqa: E731
        if wanted == "all":
            plan = purge_runs(space.ranges, discardable)
        else:   # planned earlier: only what is still volatile and resident
            plan = still_discardable(space.ranges, wanted or [], discardable)
        if not plan:
            return True
        insn = space.memory.syscall_insn(task.tid) or inject.syscall_insn_for(ptrace.getregs(task.tid))
        if insn is None:
            self.log(f"purge of {space.tgid} skipped: no syscall instruction found")
            return True
        held = []
        first = []   # syscalls to run before the madvises (closing the uffd's tracee copy)
        if self.purged_access == "sigbus" and space.trap_fd == -1:
            made = self._make_trap(task, space, insn)
            if made.death is not None:
                self._on_exit(made.death)
                return False
            held += made.signals
            first = made.results
        trapped = space.trap_fd >= 0
        if trapped:   # before the discard: no access may slip in between
            for start, end in plan:
                lib.vr_uffd_register(space.trap_fd, start, end - start)
        madvise = [(inject.SYS_MADVISE, (start, end - start, inject.MADV_DONTNEED))
                   for start, end in plan]
        done = inject.run(task.tid, insn, first + madvise, self.deferred)
        freed = 0
        for (start, end), result in zip(plan, done.results[len(first):]):
            if result == 0:
                freed += space.ranges.set_purged(start, end)
                space.stats.purges += 1
            else:   # e.g. EINVAL: the program mlocked it since
                if trapped:
                    lib.vr_uffd_unregister(space.trap_fd, start, end - start)
                self.log(f"madvise({start:#x}, {end - start}) in {task.tid}: "
                         f"{os.strerror(-result)}")
        space.stats.purged_bytes += freed
        self._mirror(space)
        space.stats.anon_rss_after_purge = procfs.anon_rss_of(task.tid)
        if self.trace:
            self.trace.event("purge", pid=space.tgid, tid=task.tid, why=space.purge_why,
                             runs=[list(run) for run in plan], bytes=freed,
                             rss_anon=space.stats.anon_rss_after_purge,
                             volatile=space.ranges.volatile_bytes,
                             purged_bytes=space.ranges.purged_bytes,
                             usage=self.pressure.readings.last_usage if self.pressure else None)
        self.log(f"purged {freed} bytes in {len(done.results)} runs from {space.tgid}")
        if done.death is not None:
            self._on_exit(done.death)
            return False
        for sig in held + done.signals:
            lib.vr_tgkill(space.tgid, task.tid, sig)
        return True

    def _alone(self, space):
        """No other traced space exists, so no page of `space` can be shared
        copy-on-write with one (KSM aside: discarding frees nothing, harmless)
        and the cheaper PAGEMAP_SCAN walk finds what may go."""
        return all(sp is space for sp in self.spaces())

    def _blocked(self, space, lo, hi):
        """True if a resident page of [lo, hi) must stay: shared copy-on-write
        with a process that still needs it (the zero page aside)."""
        if self._alone(space):
            return False
        return bool(self._shared_verdicts(space, lo, hi)[1])

    def _discardable(self, space, lo, hi, companions=None):
        """Runs of [lo, hi) that `space` may discard now: its exclusive
        resident pages, plus pages shared copy-on-write whose every sharer
        is traced and has them volatile (model.cow).  With `companions`, the
        sharers' matching pages are added there so they are purged too."""
        if self._alone(space):
            return space.memory.resident(lo, hi)
        runs = space.memory.discardable(lo, hi)
        if not any(sp.ranges for sp in self.spaces() if sp is not space):
            return runs
        approved, _ = self._shared_verdicts(space, lo, hi)
        for addr, sharers in approved:
            runs.append((addr, addr + PAGE))
            if companions is not None:
                for sp in sharers:
                    if sp is not space:
                        companions.setdefault(sp, []).append((addr, addr + PAGE))
        return merge_runs(runs)

    def _shared_verdicts(self, space, lo, hi):
        """The resident pages of [lo, hi) that `space` shares with others:
        ([(addr, sharers)] that may go from all sharers, [addr] that must
        stay).  Sharers are traced spaces mapping the same PFN at the same
        address; their number must match /proc/kpagecount."""
        shared = space.memory.shared_pages(lo, hi)
        if not shared:
            return [], []
        if not shared[0][1]:   # PFNs hidden (no CAP_SYS_ADMIN): keep every shared page
            if not self._pfn_warned:
                self._pfn_warned = True
                self.log("pagemap PFNs are not readable: pages shared copy-on-write "
                         "are never purged")
            return [], [addr for addr, _ in shared]
        others = [sp for sp in self.spaces() if sp is not space and sp.ranges]
        entries = {id(sp): sp.memory.pagemap(lo, hi) for sp in others}
        approved, kept = [], []
        for addr, pfn in shared:
            i = (addr - lo) >> 12
            found = [sp for sp in others
                     if entries[id(sp)][i] & PM_PRESENT and entries[id(sp)][i] & PM_PFN_MASK == pfn]
            count = procfs.map_count(pfn)
            sharers = sharers_if_discardable(addr, space, found, count)
            if sharers:
                approved.append((addr, sharers))
            elif count:   # count 0: the zero page, no data to keep
                kept.append(addr)
        return approved, kept

    def _make_trap(self, task, space, insn):
        """Create the userfaultfd that makes purged pages raise SIGBUS: made in
        the program (it binds to its mm), copied out with pidfd_getfd.
        Returns the Injection; its `results` become the calls that close the
        program's copy.  On failure the space falls back to zero-fill."""
        made = inject.run(task.tid, insn, [(inject.SYS_USERFAULTFD,
                                            (inject.O_CLOEXEC | inject.O_NONBLOCK,))],
                          self.deferred)
        if made.death is not None or not made.results:
            return made
        fd = made.results[0]
        copy = lib.vr_pidfd_getfd(space.tgid, fd) if fd >= 0 else fd
        if copy >= 0 and lib.vr_uffd_enable_sigbus(copy) == 0:
            space.trap_fd = copy
        else:
            if copy >= 0:
                os.close(copy)
            space.trap_fd = -2
            err = -copy if copy < 0 else errno.EINVAL
            self.log(f"no SIGBUS for purged pages of {space.tgid} ({os.strerror(err)}): "
                     f"they read as zeros")
        return made._replace(results=[(inject.SYS_CLOSE, (fd,))] if fd >= 0 else [])

    def _unpin_purged(self, space, answer):
        """Re-pinned purged pages read as zeros from the moment the answer
        arrives: end their SIGBUS trap first."""
        if answer.repinned_purged and space.trap_fd >= 0:
            start, end = answer.repinned_purged
            lib.vr_uffd_unregister(space.trap_fd, start, end - start)


def merge_runs(runs):
    """Sorted runs with touching or overlapping ones joined."""
    out = []
    for start, end in sorted(runs):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
