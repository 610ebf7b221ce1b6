"""Purging: requests, the stop of a thread that can stop, the discard.

What to discard is decided in the pure model (model.purge); copy-on-write
facts come from sharing.py; the discard is madvise(MADV_DONTNEED) run in
the program through a remote-syscall session.  A `PurgeRequest` is the one
record of a purge asked for and not yet carried out.
"""
import contextlib
import mmap
import os
import time

from ..linux import procfs, ptrace, stub
from ..linux.errors import TaskGone
from ..linux.procfs import PM_PRESENT
from ..model.purge import (RunIndex, choose_victims, clip_to_volatile, intersect, purge_runs,
                           split_runs, still_discardable, subtract)
from ..observe.events import Purge
from .remote import InjectionFailed
from .sharing import merge_runs
from .trapping import Trapping

# How long calls wait for a requested purge to run; a task that takes longer
# to stop (D state, OOM wait) is purged whenever it stops.
PURGE_WAIT = 0.5
PREPARE = "prepare"   # a request that discards nothing: it starts the purger thread
# Runs discarded in one go by the purger thread (~3 ms here); calls are served
# between slices, and a re-pin settles the runs it meets first (settle()).
SLICE_RUNS = 64


class PurgeRequest:
    """A purge asked of one space: discard `runs` ("all", or [(start, end)])
    for reason `why` ("signal", "pressure" or a --purge-policy name).

    `tid` is the thread interrupted to carry it out (0: the caller purges at
    a stop of its own); calls wait for it until `deadline` (time.monotonic()).
    States: waiting (before the deadline), overdue (after it: pressure may
    plan anew); a request is dropped once carried out or its thread is gone.
    `later`: the rest of a purge under way in slices (see SLICE_RUNS): runs
    that held pages when planned, and the ranges marked volatile since
    (stamp > `since`), checked again slice by slice.  `fresh`: planned in
    this loop turn, so no call can have re-pinned any of it yet."""
    __slots__ = ("runs", "why", "tid", "deadline", "later", "since", "fresh")

    def __init__(self, runs, why, tid=0, deadline=0.0, later=False, since=0, fresh=False):
        self.runs, self.why, self.tid, self.deadline = runs, why, tid, deadline
        self.later, self.since, self.fresh = later, since, fresh

    def state(self, now):
        return "waiting" if self.tid and self.deadline > now else "overdue"

    def add(self, runs, why):
        """Fold more runs into this request."""
        if self.runs != "all":
            self.runs = list(self.runs) + list(runs)
        self.why = why

    def __repr__(self):
        return f"PurgeRequest({self.runs!r}, {self.why!r}, tid={self.tid})"


class Purger:
    """Purges in the spaces of `tasks` (TaskTable) through `remote`
    (RemoteSyscalls), sharing rules from `sharing`; tells `mirror` (the
    native loop) what changed and `bus` what happened.  `purged_access`:
    "sigbus" (purged pages fault, as the patches) or "zero"; `fault`: a test
    hook ("purge": a supervisor bug at a purge; "no-lock-check": locked
    memory is not left out, so madvise meets it)."""

    def __init__(self, tasks, remote, sharing, mirror, bus, log, purged_access="sigbus",
                 fault=""):
        self.tasks, self.remote, self.sharing, self.mirror = tasks, remote, sharing, mirror
        self.bus, self.log = bus, log
        self.trapping = Trapping(mirror, log)   # purged pages raise SIGBUS
        self.purged_access, self.fault = purged_access, fault
        self.pressure = None   # the pressure source, for the usage in Purge events
        self.use_purger = fault != "no-purger"   # purge through a thread of our own
        self._prepared = set()   # id() of spaces prepare() was asked for
        self.busy = set()        # tids in a received, unanswered call: they stop last
        self._settling = set()   # id() of spaces in settle()
        self._resident_seen_due = 0.0
        tasks.on_task_left.append(self.retire)
        tasks.on_space_end.append(lambda space: self._prepared.discard(id(space)))

    # --- requests --------------------------------------------------------------------
    def purge_all(self, why="signal"):
        """SIGUSR1: discard every volatile page of every space.  A purge under
        way in slices takes in the ranges marked since it was planned rather
        than scanning again (its cost: what changed); a space with every
        volatile page purged already is left alone (a storm of requests over
        hundreds of processes once kept the loop from serving calls)."""
        self.mirror.drain_all()
        for space in self.tasks.spaces():
            request = space.purge
            if space.purge_under_way:
                request.runs += [(r.start, r.end) for r in space.ranges.marked_since(request.since)]
                request.since, request.why = space.ranges.newest_stamp(), why
            elif request is None and not space.ranges.all_purged:
                self.request(space, "all", why)   # else nothing is left: no thread stops

    def continue_later(self):
        """One more slice of each purge under way (a loop turn each); one
        whose purger thread is gone or not parked is given up (pressure
        plans anew), so the loop never spins on it."""
        for space in self.tasks.spaces():
            if not space.purge_under_way:
                continue
            if space.purger is None or not space.purger.parked:
                self._drop_later(space)
                continue
            try:
                self.run_at_stop(space.purger)
            except TaskGone:
                self._drop_later(space)

    @property
    def under_way(self):
        """True while some purge goes on in slices."""
        return any(sp.purge_under_way for sp in self.tasks.spaces())

    def settle(self, space, start, end):
        """A re-pin of [start, end) while a purge of `space` is under way:
        discard its runs there first, so the answer reports them (that purge
        was asked for before the call)."""
        request = space.purge
        if not space.purge_under_way or space.purger is None or not space.purger.parked:
            return
        mine, rest = split_runs(request.runs, start, end)
        if not mine:
            return
        request.runs = rest
        space.purge = PurgeRequest(mine, request.why, space.purger.tid)
        self._settling.add(id(space))   # the claim stays: the purge goes on after this part
        try:
            self.run_at_stop(space.purger, sliced=False)
        except TaskGone:   # the process is going: the answer goes out as it is
            pass
        finally:
            self._settling.discard(id(space))
            if space.purge is None and rest and space.tids:
                space.purge = request
            self._tell_mirror(space)

    def _drop_later(self, space):
        if space.purge_under_way:
            space.purge = None
            self._tell_mirror(space)

    def _continue_later(self, space, runs, why, since):
        """The rest of a sliced purge, for the purger thread's next slices."""
        space.purge = PurgeRequest(runs, why, space.purger.tid, later=True, since=since)

    def _tell_mirror(self, space):
        """While a purge of `space` is under way in slices, every NONVOLATILE
        there needs Python (settle).  Also the in-process library's claim: it
        must not drop while settle() carries out part of a purge that goes
        on (a re-pin answered then could be discarded by the rest)."""
        self.mirror.set_repin_all(space, space.purge_under_way or id(space) in self._settling)

    def relieve(self, need):
        """Pressure wants `need` bytes: purge the oldest volatile ranges
        across all spaces.  False if nothing is left to purge (and nothing
        is on its way)."""
        self.mirror.drain_all()
        spaces = self.tasks.spaces()
        now = time.monotonic()
        if now >= self._resident_seen_due:   # for --stats: at most 10 times a second,
            for space in spaces:              # and at most ~5% of the time
                resident = sum(e - s for s, e in self._all_runs(space, space.memory.discardable))
                space.stats.resident_volatile_peak = max(space.stats.resident_volatile_peak,
                                                         resident)
            self._resident_seen_due = now + max(0.1, 20 * (time.monotonic() - now))
        # A purge going on in slices is on its way too: planning it anew at
        # every reading would walk every range again each slice while a fast
        # program keeps the group over the mark.
        in_flight = [sp for sp in spaces
                     if sp.purge is not None and (sp.purge.state(now) == "waiting"
                                                  or sp.purge_under_way)]
        idle = [sp for sp in spaces if sp not in in_flight]
        for space in idle:   # an overdue request is planned again
            self._drop_later(space)
            space.purge = None
        companions, resident = {}, {}

        def resident_of(sp):   # one scan of its ranges' span, not one per range
            if sp not in resident:
                resident[sp] = RunIndex(sp.memory.resident(*sp.ranges.bounds()))
            return resident[sp]

        def discardable(sp, lo, hi):
            if not self.sharing.alone(sp):
                return self.sharing.discardable(sp, lo, hi, companions)
            return resident_of(sp).within(lo, hi)

        def holds(sp, lo, hi):
            return not self.sharing.alone(sp) or resident_of(sp).holds(lo, hi)
        plan, freed = choose_victims(idle, need, discardable, self.sharing.blocked, holds)
        for space, runs in companions.items():   # COW sharers lose the same pages
            if space.purge is None:
                plan[space] = merge_runs(plan.get(space, []) + runs)
        if not plan:
            return bool(in_flight)
        self.log(f"pressure ({self.pressure.name}): {need >> 10} KiB over the low mark, "
                 f"purging {freed >> 10} KiB from {len(plan)} process(es)")
        for space, runs in plan.items():
            self.request(space, runs, "pressure")
        return True

    def request(self, space, runs, why):
        """Discard `runs` of `space`: at once through its parked purger
        thread, else when the thread interrupted now stops (`run_at_stop`)."""
        purger = space.purger
        if purger is not None and purger.parked:
            space.purge = PurgeRequest(runs, why, purger.tid, time.monotonic(), fresh=True)
            try:
                self.run_at_stop(purger)
            except TaskGone:
                pass   # its exit is recorded, or still to come
            return
        candidates = [purger.tid] if purger is not None else self._stoppable(space)
        for tid in candidates:
            try:
                ptrace.interrupt(tid)
            except TaskGone:
                continue
            space.purge = PurgeRequest(runs, why, tid, time.monotonic() + PURGE_WAIT)
            return

    def prepare(self, space):
        """Start `space`'s purger thread now, while its threads can still be
        stopped (under a memory limit a task paused at it cannot), once per
        space."""
        if space.purger is None and space.purge is None and space.stub == 0 \
                and self.use_purger and id(space) not in self._prepared:
            self._prepared.add(id(space))
            self.request(space, [], PREPARE)

    def _stoppable(self, space):
        """Tasks of `space` best able to stop soon: running or sleeping
        interruptibly first, D state last; never a zombie (a leader after
        pthread_exit) nor a vfork parent (it stops only once its child is
        gone, and /proc may still show it runnable).  A thread in a received
        call (`busy`) comes last: it stops only once its call is answered
        (loop.py answers it "make the call again" then)."""
        rank = {"R": 0, "S": 0, "t": 1, "T": 1, "D": 2}
        tasks = [self.tasks.get(tid) for tid in space.tids]
        states = {t.tid: procfs.task_state(t.tid) for t in tasks
                  if not t.starting and not t.in_vfork}
        return sorted((tid for tid, st in states.items() if st in rank),
                      key=lambda tid: (tid in self.busy, rank[states[tid]], tid))

    @contextlib.contextmanager
    def busy_with(self, tid):
        """Meanwhile thread `tid` holds a received call: purges ask another
        thread to stop first (see _stoppable)."""
        self.busy = {tid} if tid else set()
        try:
            yield
        finally:
            self.busy = set()

    def waits_for(self, tid):
        """True if a requested purge waits for thread `tid` to stop."""
        return any(sp.purge is not None and sp.purge.tid == tid and not sp.purge.later
                   for sp in self.tasks.spaces())

    def due(self, task):
        """True if a requested purge waits for this task's stop."""
        request = task.space.purge if task.space is not None else None
        return request is not None and request.tid == task.tid

    def due_before_call(self, task):
        """True if a purge requested of this task's space is still to be done
        when the task traps a call (ptrace trap mode): it lands before the
        call, whichever thread was interrupted for it (that one then finds
        nothing to do at its stop)."""
        return task.space is not None and task.space.purge is not None

    def deadlines(self, now, held=0):
        """Deadlines of the requests calls still wait for, but those waiting
        for thread `held` (one that cannot stop yet)."""
        return [sp.purge.deadline for sp in self.tasks.spaces()
                if sp.purge is not None and sp.purge.state(now) == "waiting"
                and sp.purge.tid != held]

    def run_before_call(self, task, nr):
        """ptrace trap mode, at the seccomp stop of a call (syscall `nr`) while
        a purge waits for this thread: skip the call for now, step out,
        purge, and let the program make the call again (rip back on its
        `syscall`), so the purge lands first, as in notify mode.  Returns the
        signal to resume with (none: signals stay pending meanwhile)."""
        regs = ptrace.getregs(task.tid)
        regs.orig_rax = (1 << 64) - 1   # skipped ...
        regs.rax = nr                   # ... and made again, with the same arguments
        regs.rip -= 2
        ptrace.setregs(task.tid, regs)
        self.remote.step_out(task)
        self.run_at_stop(task)
        return 0

    def run_forced(self, task, runs, why):
        """--purge-policy: discard `runs` of `task`'s space now (the task is
        at a user-mode boundary), with anything already requested."""
        space = task.space
        if space.purge is None:
            space.purge = PurgeRequest(list(runs), why)
        else:
            space.purge.add(runs, why)
        self.run_at_stop(task)

    # --- the discard -----------------------------------------------------------------
    def run_at_stop(self, task, sliced=True):
        """At a stop of `task` at a user-mode boundary: carry out its space's
        request, discarding what is still volatile, resident and not shared.
        With `sliced`, a large plan goes SLICE_RUNS runs at a time: the first
        now, the rest later through the purger thread (continue_later).
        Raises TaskGone if the task died meanwhile."""
        if self.fault == "purge":
            raise RuntimeError("fault injected by VRANGEEMU_TEST_FAULT=purge")
        space = task.space
        request, space.purge = space.purge, None
        if request is None:
            return
        # The in-process library leaves re-pins to us from here on; what it
        # answered before goes into the model before anything is planned.
        self.mirror.claim(space)
        self.mirror.drain(space)
        discardable = lambda lo, hi: self.sharing.discardable(space, lo, hi)   # noqa: E731
        since = space.ranges.newest_stamp()
        if request.runs == "all":
            plan = self._all_runs(space, clip=False)
        elif request.later:
            plan, since = request.runs, request.since
        elif request.fresh:
            plan = request.runs
        else:   # planned earlier: only what is still volatile and resident
            plan = still_discardable(space.ranges, request.runs, discardable)
        now, rest = (plan[:SLICE_RUNS], plan[SLICE_RUNS:]) if sliced else (plan, [])
        if request.later:   # planned a while ago: only what still holds pages
            now = self._still_held(space, now, discardable)
        now = self._discardable_now(space, now)
        if not now and rest and space.purger is None:   # no thread to come back with
            now, rest = self._discardable_now(space, rest), []
        if not now and not (request.why == PREPARE and space.purger is None):
            if rest:   # nothing in this slice: the next one
                self._continue_later(space, rest, request.why, since)
            self._tell_mirror(space)
            return
        gone = None
        try:
            with self.remote.session(task) as session:
                if task.purger and not task.named:   # as `ps -L` and /proc show it
                    task.named = True
                    session.run([(stub.SYS_PRCTL, (stub.PR_SET_NAME, space.stub + stub.NAME))])
                if self.purged_access == "sigbus" and space.trap is None:
                    self.trapping.make(session, space)
                results = self._discard(session, space, now)
                if space.purger is None and not task.purger and session.has_stub and self.use_purger:
                    self._start_purger(session, task)
                if rest and space.purger is None:   # no thread to come back with: all now
                    rest = self._discardable_now(space, rest)
                    results += self._discard(session, space, rest)
                    now, rest = now + rest, []
        except TaskGone as exc:
            gone, results = exc, exc.results
        except InjectionFailed as exc:
            self.log(f"purge of {space.tgid} skipped: {exc}")
            self.mirror.sync_purged(space)   # its trapped spans may have grown
            self._tell_mirror(space)
            return
        self._account(task, space, request.why, now, results)
        if gone is not None:
            self._tell_mirror(space)
            raise gone
        if rest and space.purge is None:
            self._continue_later(space, rest, request.why, since)
        self._tell_mirror(space)

    def _still_held(self, space, runs, discardable):
        """The parts of `runs` (any order, maybe overlapping) that still hold
        pages a purge may take: one scan of their span when `space` shares
        no pages, else the copy-on-write-aware question per range."""
        runs = merge_runs(runs)
        if not runs:
            return []
        if self.sharing.alone(space):
            return intersect(runs, space.memory.resident(runs[0][0], runs[-1][1]))
        return still_discardable(space.ranges, runs, discardable)

    def _discardable_now(self, space, runs):
        """`runs` clipped to what is volatile now, locked memory left out:
        madvise stops with EINVAL at a locked mapping after discarding what
        came before it."""
        runs = clip_to_volatile(space.ranges, runs)
        if (runs and space.may_lock and self.fault != "no-lock-check"
                and space.memory.locked_bytes()):
            runs = subtract(runs, space.memory.locked_intervals())
        return runs

    def _discard(self, session, space, runs):
        """Trap, then discard, `runs`; the madvise results."""
        self.trapping.before_discard(space, runs)
        return session.madvise(runs, mmap.MADV_DONTNEED)

    # --- the SIGBUS trap (what to register and fill: model.trap) ---------------------
    def _all_runs(self, space, discardable=None, clip=True):
        """What a purge of every volatile page of `space` discards: with no
        other traced space to share pages with, one scan of the span of its
        ranges (its cost does not grow with ranges that hold nothing);
        else one question per range to `discardable` (default: the
        copy-on-write-aware one).  clip=False: the scan's runs may hold
        pages between ranges (the caller clips what it takes).  None, and
        no scan, once every volatile page is purged: a purge takes only pages
        not purged yet, so a storm of requests then costs nothing."""
        bounds = space.ranges.bounds()
        if bounds is None or space.ranges.all_purged:
            return []
        if self.sharing.alone(space):
            resident = space.memory.resident(*bounds)
            return clip_to_volatile(space.ranges, resident) if clip else resident
        return purge_runs(space.ranges, discardable or (
            lambda lo, hi: self.sharing.discardable(space, lo, hi)))

    def unpin(self, space, span):
        """Pages of `span` are pinned again: their trap ends (Trapping.unpin)."""
        self.trapping.unpin(space, span)

    def _account(self, task, space, why, plan, results):
        """Record what the madvise results say was discarded."""
        freed, gone = 0, []
        for (start, end), result in zip(plan, results):
            discarded = [(start, end)]
            if result != 0:   # e.g. EINVAL: the program mlocked part of it since
                self.log(f"madvise({start:#x}, {end - start}) in {task.tid}: "
                         f"{os.strerror(-result)}")
                discarded = self._gone_pages(space, start, end)
            for run in discarded:
                freed += space.ranges.set_purged(*run)
            gone += discarded
            space.stats.runs_discarded += bool(discarded)
        self.mirror.add_purged(space, gone)
        space.stats.purged_bytes += freed
        space.stats.anon_rss_after_purge = space.memory.anon_rss()
        if not plan:   # a PREPARE request only started the purger thread: no purge
            return
        space.stats.purges += 1   # one purge = one `purge` event, as the report counts them
        if self.bus.wants(Purge):
            self.bus.emit(Purge(
                pid=space.tgid, tid=task.tid, why=why, runs=[list(run) for run in plan],
                bytes=freed, rss_anon=space.stats.anon_rss_after_purge,
                volatile=space.ranges.volatile_bytes, purged_bytes=space.ranges.purged_bytes,
                usage=self.pressure.readings.last_usage if self.pressure else None))
        self.log(f"purged {freed} bytes in {len(results)} runs from {space.tgid}")

    @staticmethod
    def _gone_pages(space, start, end):
        """After a failed madvise over [start, end), which was all resident:
        the runs it discarded before failing (no longer present)."""
        runs = []
        for i, entry in enumerate(space.memory.pagemap(start, end)):
            if not entry & PM_PRESENT:
                page = start + (i << 12)
                if runs and runs[-1][1] == page:
                    runs[-1] = (runs[-1][0], page + 4096)
                else:
                    runs.append((page, page + 4096))
        return runs

    def _start_purger(self, session, task):
        """Make the thread later purges go through (see linux/stub.py) and
        wait for its first stop: it stays parked there, ready."""
        try:
            child = session.start_purger()
        except InjectionFailed as exc:
            self.log(f"no purger thread in {task.space.tgid}: {exc}")
            return
        if not self.tasks.adopt_purger(task, child):
            stop = self.remote.stops.wait_for(child)   # at once: it is new
            if stop.ended:
                self.tasks.exited(stop)
                return
        purger = self.tasks.get(child)
        purger.starting, purger.parked = False, True
        self.log(f"purger thread {child} started in {task.space.tgid}")

    def parked(self, purger):
        """The purger thread stopped for us (interrupted): keep it there,
        purge if asked to, or let it go if the program is gone."""
        purger.parked = True
        if self.due(purger):
            self.run_at_stop(purger)
        self.retire(purger.space)

    def retire(self, space):
        """The program's own threads are gone: let its purger thread exit
        (exit, not exit_group: the process ends with its last thread's status)."""
        purger = space.purger
        if purger is None or not self.tasks.program_gone(space):
            return
        try:
            if not purger.parked:
                ptrace.interrupt(purger.tid)
                return   # retired at its stop
            regs = ptrace.getregs(purger.tid)
            regs.rip, regs.rax, regs.rdi, regs.orig_rax = space.stub, stub.SYS_EXIT, 0, (1 << 64) - 1
            ptrace.setregs(purger.tid, regs)
            purger.parked = False
            ptrace.cont(purger.tid)
        except TaskGone:
            pass


