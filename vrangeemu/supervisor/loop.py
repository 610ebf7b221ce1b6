"""The supervisor: one loop over trapped calls, ptrace stops and signals.

Shape (after proot's tracer): `run()` polls the listener fd and a signalfd;
a readable listener means a vrange call to answer (`_on_call`), SIGCHLD
means ptrace stops to drain (`_on_stop` dispatches by stop kind), other
signals are forwarded or ask for a purge.  The parts are composed here:

  tasks    TaskTable       the one owner of tasks and spaces (tasks.py)
  native   NativeCalls     the C loop and its mirror of the model (native_calls.py)
           Following       the ptrace stops the C loop followed (follow.py)
  remote   RemoteSyscalls  the only place that runs syscalls in the program (remote.py)
  purger   Purger          purge requests and the discard (purger.py, sharing.py)
  checker  Checker         --purge-policy and --check-access (checks.py)
  watch    PressureWatch   the pressure source (watch.py, pressure.py)
  bus      EventBus        what happened, for --trace, --live, --stats (observe/)

A task that vanishes mid-handler raises TaskGone; the dispatcher drops the
handler there (its exit status is recorded, or still to come).
"""
import errno
import itertools
import os
import select
import signal
import sys
import time
import traceback

from ..linux import inproc, ptrace, stub
from ..linux.errors import TaskGone
from ..linux.notify import Listener
from ..linux.process import SignalFd, write_i32
from ..linux.spawn import Interrupted, SetupError, start
from ..model.policy import PurgePolicy
from ..observe.events import SAMPLE_EVERY, VERSION, Call, EventBus, Sample, Sigbus, Start
from .calls import Answer, serve, write_after_repin
from .checks import Checker
from .detach import abandon
from .follow import Following
from .native_calls import NativeCalls
from .purger import Purger
from .remote import RemoteSyscalls
from .sharing import Sharing
from .tasks import TaskTable
from .watch import PressureWatch

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
ERESTARTSYS, ERESTARTNOINTR = 512, 513   # the kernel's internal restart codes
SI_KERNEL = 0x80   # si_code of signals the tty sends to the whole process group
PAGE = 4096


class InvariantError(AssertionError):
    """VRANGEEMU_CHECK=1 found the supervisor's state inconsistent."""


class RunState:
    """What the views read (observe.RunState): argv, live spaces, pressure."""

    def __init__(self, argv, tasks, supervisor):
        self.argv = argv
        self._tasks = tasks
        self._sup = supervisor

    def spaces(self):
        return [space.model for space in self._tasks.spaces()]

    @property
    def pressure(self):
        return self._sup.watch.source if self._sup.watch else None


class Supervisor:
    def __init__(self, argv, profile, trap="notify", log=None, purged_access="sigbus",
                 fork_volatility="inherit", policy=None, check_access="off", bus=None,
                 inproc=True):
        self.argv = argv
        self.inproc = inproc   # preload the in-process library (notify mode)
        self.profile = profile
        self.trap = trap
        self.log = log or (lambda msg: None)
        self.bus = bus or EventBus()
        # Test hook: simulate a supervisor bug at a purge (tests/e2e).
        fault = os.environ.get("VRANGEEMU_TEST_FAULT", "")
        self.checking = os.environ.get("VRANGEEMU_CHECK") == "1"
        self.native = NativeCalls(self.bus, self._space_of)
        self.native.log = self.log
        self.tasks = TaskTable(self.bus, self.native, itertools.count(1).__next__, self.log,
                               fork_inherit=fork_volatility == "inherit")
        self.stops = ptrace.StopQueue()
        self.native.followed = Following(self.tasks, self.stops, self.native, fault)
        self.remote = RemoteSyscalls(self.tasks, self.stops)
        self.purger = Purger(self.tasks, self.remote, Sharing(self.tasks, self.log),
                             self.native, self.bus, self.log, purged_access, fault)
        self.checker = Checker(policy or PurgePolicy("pressure"), check_access, self.tasks,
                               self.remote, self.purger, self.bus)
        self.watch = None          # PressureWatch, set by use_pressure()
        self.cgroup_procs = None   # cgroup.procs the program joins before exec
        self.listener = None
        self.sigfd = None
        self.live = None           # a view with due_in() and refresh(), set before run()
        self.invariant_failed = False
        self.state = RunState(argv, self.tasks, self)
        self._sample_due = 0.0

    def use_pressure(self, source, cgroup_procs=None):
        """Purge under `source`'s pressure (pressure.py); the program joins
        the cgroup whose cgroup.procs file is given."""
        self.cgroup_procs = cgroup_procs
        if source is not None:
            self.watch = PressureWatch(source, self.purger, self.bus, checkpoints=self.native)
            self.purger.pressure = source

    # --- start ---------------------------------------------------------------
    def spawn(self):
        """Start the program seized and filtered (see linux/spawn.py)."""
        native = os.environ.get("VRANGEEMU_FASTPATH", "1") != "0"
        library = inproc.library_path() if self.inproc and native else None
        if self.inproc and native and library is None:
            self.log("in-process path off: vrangeemu._inproc is not built")
        env = inproc.environment(self.profile.nr, library) if library else None
        started = start(self.argv, self.profile.nr, self.trap, self.log, self.cgroup_procs, env)
        self.trap = started.trap
        self.tasks.first(started.pid)
        if started.listener >= 0:
            self.listener = Listener(started.listener)
            self.tasks.locks_trapped = True   # the filter reports mlock & co
            if native:
                self.native.start(started.listener, self.profile, self.sigfd.fd,
                                  inproc=env is not None)
                if self.native.inproc:
                    self.native.inproc.purger = self.purger

    # --- the loop -------------------------------------------------------------
    def run(self):
        """Serve until every traced task is gone; returns the program's exit Stop.

        Raises SetupError if the program could not be started (Interrupted if
        a signal to pass on to it came first: it is not started).  On an internal
        error it prints the traceback, stops tracing and waits for the program
        (whose vrange calls then fail with ENOSYS), never leaving it stopped."""
        try:
            try:
                self.sigfd = SignalFd([signal.SIGCHLD, signal.SIGUSR1, *FORWARDED])
            except OSError as exc:
                raise SetupError(str(exc)) from None
            # vrange-run holds these from its start (cli.HELD_SIGNALS): one
            # already pending was meant for a program that does not exist yet.
            pending = sorted(signal.sigpending() & set(FORWARDED))
            if pending:
                raise Interrupted(pending[0])
            self.spawn()
            self._emit_start()
            return self._loop()
        except SetupError:
            raise
        except Exception as exc:   # our bug: let the program finish untraced
            traceback.print_exc()
            self.invariant_failed = isinstance(exc, InvariantError)
            print("vrange-run: internal error; the program goes on without vrange "
                  "(its calls now fail with ENOSYS)", file=sys.stderr)
            return self.abandon()
        finally:
            self.native.close()
            if self.listener:
                self.listener.close()
            if self.sigfd:
                self.sigfd.close()
            self.tasks.close()
            if self.watch:
                self.watch.close()

    def _loop(self):
        """The one loop: signals (and ptrace stops) first, then calls."""
        sigfd = self.sigfd.fd
        poller = select.poll()
        events = self.watch.fds if self.watch else []
        for fd in [sigfd, *events]:
            poller.register(fd, select.POLLIN)
        if self.listener and not self.native.active:
            poller.register(self.listener.fd, select.POLLIN)
        self._drain_stops()
        while self.tasks:
            timeout = self._timeout_ms()
            call = None
            if self.native.active:
                if self.stops.deferred:   # reaped by a session: C would not see them
                    self._drain_stops()
                ready, call = self.native.serve([sigfd, *events], timeout)
                if self.stops.deferred:   # handed back by C, which follows the routine ones
                    self._drain_stops()
            else:
                ready = dict(poller.poll(timeout))
            # Signals first: a purge asked for (SIGUSR1) before a call is
            # served before that call.
            if sigfd in ready:
                # A received call holds its thread until answered: a purge
                # asks another thread to stop if it can.
                with self.purger.busy_with(call[1] if call else 0):
                    self._on_signals()
                    if call and self.purger.waits_for(call[1]):
                        self._make_again(call)
                        call = None
                    self._await_purges()
            if self.listener and self.listener.fd in ready:
                if ready[self.listener.fd] & select.POLLIN:
                    call = self.listener.recv()
                else:   # POLLHUP: no process holds the filter any more
                    poller.unregister(self.listener.fd)
            if call:
                self._on_call(call)
            if self.watch:
                self.watch.after_poll(ready)
            self.purger.continue_later()   # calls waiting now were served first
            self._sample()
            if self.live and self.live.due_in() <= 0:
                self.native.drain_all()   # the view shows what the libraries answered
                self.live.refresh()
            if self.checking:
                self._check()
        return self.tasks.main_status

    def _timeout_ms(self):
        """Until the pressure source or a view wants the loop back; -1: never."""
        if self.purger.under_way:
            return 0   # serve what waits, then the next slice
        due = []
        if self.watch:
            due.append(self.watch.due_in())
        if self.bus.wants(Sample):
            due.append(self._sample_due - time.monotonic())
        if self.live:
            due.append(self.live.due_in())
        return max(0, int(min(due) * 1000) + 1) if due else -1

    def _sample(self):
        """Every SAMPLE_EVERY seconds, a Sample of each live space (if wanted)."""
        now = time.monotonic()
        if now < self._sample_due or not self.bus.wants(Sample):
            return
        self._sample_due = now + SAMPLE_EVERY
        self.native.drain_all()
        for space in self.tasks.spaces():
            self.bus.emit(Sample(pid=space.tgid, rss=space.memory.anon_rss(),
                                 volatile=space.ranges.volatile_bytes,
                                 purged_bytes=space.ranges.purged_bytes,
                                 ranges=len(space.ranges)))

    def _on_signals(self):
        """Called when the signalfd is readable: SIGCHLD, SIGUSR1, forwarded ones."""
        self._take_signals()
        self._drain_stops()

    def _take_signals(self):
        """Act on the pending signals (a purge request, forwarding); the
        ptrace stops their SIGCHLD announces are left to _drain_stops."""
        for signo, code, _ in self.sigfd.read():
            if signo == signal.SIGUSR1:
                self.log("SIGUSR1: purging every volatile range")
                self.purger.purge_all()
            elif signo in FORWARDED and code != SI_KERNEL:
                # A tty signal already reached the whole foreground group.
                if self.tasks.main_pid in self.tasks:
                    os.kill(self.tasks.main_pid, signo)

    def _make_again(self, call):
        """The purge waits for the thread of the received `call` (no other
        can stop): answer it -ERESTARTNOINTR.  It was interrupted before, so
        on its way out it stops (the purge runs there), and then the kernel
        makes the call again, as after a signal."""
        self.listener.send(call[0], 0, ERESTARTNOINTR)

    def _await_purges(self, held=0):
        """Run the requested purges before serving any further call, so a purge
        asked for before a call is done before it; waits at most PURGE_WAIT.
        A purge waiting for thread `held` is not awaited: that thread is
        held in a call we received, and stops only once it is answered
        (WAIT_KILLABLE_RECV), before it runs on."""
        while True:
            now = time.monotonic()
            due = self.purger.deadlines(now, held)
            if not due:
                return
            if select.select([self.sigfd.fd], [], [], max(due) - now)[0]:
                self._on_signals()

    def _drain_stops(self):
        while True:
            stop = self.stops.poll()
            if stop is None:
                return
            try:
                self._on_stop(stop)
            except TaskGone:
                pass   # its exit is recorded, or its status is still to come

    # --- trapped calls -------------------------------------------------------------
    def _on_call(self, call):
        """Answer one received vrange call (id, tid, nr, args) in Python."""
        notif_id, tid, nr, args = call
        space = self._space_of(tid)
        if nr != self.profile.nr:   # mlock & co (see locks_trapped): note it, let it run
            if space is not None:
                self.native.note_lock(space, tid)
            self.listener.send(notif_id, 0, 0, continue_=True)
            return
        if space is None:   # not a task we know: refuse rather than guess
            self.listener.send(notif_id, 0, errno.ENOSYS)
            return
        if not space.memory.bound:   # its first call: the caller holds the space's mm
            try:
                space.memory.bind(tid)
            except OSError as exc:   # the caller is exiting (or exec'd)
                self.log(f"call from {tid} not served: {exc}")
                self.listener.send(notif_id, 0, errno.ENOMEM)
                return
            self.native.set_maps(space)
        if inproc.is_hello(args):   # the in-process library's first call
            attached = self.native.attach(space, args[0], args[1])
            self.listener.send(notif_id, 0, 0 if attached else errno.ENOSYS)
            return
        self.native.drain(space)   # what the library answered comes first
        if inproc.is_barrier(args):   # the purge it asked for is done (signals first)
            self.listener.send(notif_id, 0, 0)
            return
        with self.purger.busy_with(tid):   # another thread stops for a purge if one can
            at_mark = self.watch is not None and self.watch.at_call(space)
        if at_mark:
            # Over the RSS budget's mark: the purge lands before the answer
            # (or, through this very thread, before it runs on).
            self._await_purges(held=tid)
            if not self.listener.valid(notif_id):
                return   # interrupted to purge: the kernel restarts the call

        def write_purged(addr, value):
            # The tid could be reused once the caller is gone: check first.
            if not self.listener.valid(notif_id):
                return errno.ESRCH
            return write_i32(tid, addr, value)
        answer = self._serve(space, tid, args, write_purged)
        sent = self.listener.send(notif_id, answer.value, answer.error)
        if sent and answer.commit:
            answer.commit()
            if space.ranges:   # the native loop leaves its forks and exec to us now
                self.native.unfollow(space)
            self._emit_call(space, tid, answer)
        self._tell_native_repinned(space, answer, sent)

    def _serve(self, space, tid, args, write_purged):
        """The answer to one call; a re-pin's trap has ended when it returns
        (`unpinned`)."""
        try:
            answer = serve(space, self.profile, args, write_purged,
                           lambda start, end: self.purger.settle(space, start, end))
        except OSError as exc:
            # /proc vanished under us: the caller is exiting (or exec'd).
            self.log(f"call from {tid} not served: {exc}")
            return Answer(0, errno.ENOMEM, None)
        if not answer.repinned:
            return answer
        self.purger.unpin(space, answer.repinned)
        return write_after_repin(answer, space, write_purged)._replace(unpinned=answer.repinned)

    def _tell_native_repinned(self, space, answer, committed):
        """The native loop learns what a re-pin ended: nothing purged or
        trapped is left in its span (a delta); if the call failed after its
        trap ended, the whole state is pushed again."""
        if answer.unpinned is None:
            return
        if committed and not answer.error:
            self.native.cut_purged(space, *answer.unpinned)
        else:
            self.native.sync_purged(space)

    def _on_seccomp_stop(self, task):
        """ptrace trap mode: the task is stopped at its vrange call; the real
        syscall is always skipped (before the first exec it fails ENOSYS).
        Returns the signal to resume it with."""
        # Signals first, as in the loop: this call is served inside
        # _drain_stops, and a SIGUSR1 the program sent before making it is
        # pending now (kill() returns once it is) but may not have been read.
        self._take_signals()
        if self.watch and task.space is not None:
            self.watch.at_call(task.space)   # over the RSS budget's mark: purge first
        if self.purger.due_before_call(task):
            return self.purger.run_before_call(task, self.profile.nr)
        regs = ptrace.getregs(task.tid)
        args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9]
        if task.space is None:
            answer = Answer(0, errno.ENOSYS, None)
        else:
            answer = self._serve(task.space, task.tid, args,
                                 lambda addr, value: write_i32(task.tid, addr, value))
        regs.orig_rax = (1 << 64) - 1   # skip the real syscall; rax is the result
        regs.rax = (answer.value if not answer.error else -answer.error) & ((1 << 64) - 1)
        ptrace.setregs(task.tid, regs)
        if not answer.commit:
            return 0
        answer.commit()
        self._tell_native_repinned(task.space, answer, True)
        self._emit_call(task.space, task.tid, answer)
        return self.checker.after_call(task, answer)

    def _emit_call(self, space, tid, answer):
        if self.bus.wants(Call):
            call = answer.call
            self.bus.emit(Call(pid=space.tgid, tid=tid, mode=call.mode, start=call.start,
                               len=call.length, ret=-1 if answer.error else answer.value,
                               errno=answer.error, purged=answer.repinned_purged is not None,
                               path="python", volatile=space.ranges.volatile_bytes,
                               purged_bytes=space.ranges.purged_bytes))

    def _space_of(self, tid):
        task = self.tasks.get(tid)
        if task is None:
            self._drain_stops()    # its creator's event may be queued
            task = self.tasks.get(tid)
        return task.space if task else None

    # --- ptrace stops ----------------------------------------------------------
    def _on_stop(self, stop):
        """Dispatch one wait status; every path resumes the task or forgets it."""
        if stop.ended:
            self.tasks.exited(stop)
            return
        if not self.tasks.claim(stop.tid):
            return   # resumed once its creator's event names it
        task = self.tasks.get(stop.tid)
        group_stopped = stop.kind == "group-stop"
        if group_stopped != task.group_stopped:   # the native loop leaves it to us
            self.native.group_stop(task.tid, group_stopped)
        task.group_stopped = group_stopped
        if task.purger and (task.starting or stop.kind == "trap-stop"):
            task.starting = False
            self.native.started(task.tid)
            self.purger.parked(task)   # it waits in this stop
            return
        if stop.kind == "signal" and stop.value == signal.SIGBUS and self.bus.wants(Sigbus):
            self._emit_sigbus(task)
        if task.starting:
            task.starting = False
            self.native.started(task.tid)
        elif stop.kind == "event":
            self._on_event(task, stop.value)
            self._interrupt_again(task)
            return
        elif stop.kind == "signal" and stop.value == signal.SIGSEGV and self.checker.on_fault(task):
            self._interrupt_again(task)
            return   # an access to a range protected by --check-access: handled
        elif self.purger.due(task) and stop.kind == "trap-stop":
            # The interrupt's own stop.  Not a group-stop (injecting there would
            # take the task out of its job-control stop: the purge waits for
            # SIGCONT), nor a signal-delivery stop: the signal must be
            # delivered from its own stop to keep its siginfo (the task is
            # interrupted again after it).
            self.purger.run_at_stop(task)
        if stop.kind == "signal" and self.listener:
            self._restart_interrupted_call(task)
        ptrace.resume(stop)
        if stop.kind == "signal":
            self._interrupt_again(task)

    def _interrupt_again(self, task):
        """Any ptrace stop clears a pending PTRACE_INTERRUPT (the kernel's
        ptrace_stop: "any trap clears pending STOP trap"), so after an event
        or signal-delivery stop of a task a purge waits for, the interrupt
        is asked for again.  Without this the purge waited out its deadline
        and a call was answered before it (or, taken along, answered
        -ERESTARTNOINTR with no stop to come: the program got errno 513)."""
        if self.purger.due(task):
            try:
                ptrace.interrupt(task.tid)
            except TaskGone:
                pass   # its exit is recorded, or still to come

    def _restart_interrupted_call(self, task):
        """A signal that comes before the supervisor takes up a vrange call
        ends the call's wait with -ERESTARTSYS: without SA_RESTART the
        program would get EINTR, which a kernel vrange (it never sleeps)
        never returns.  At the signal-delivery stop, before the kernel looks
        at the code, make it -ERESTARTNOINTR: the call is made again once
        the handler returns, as if the signal had come just before it."""
        regs = ptrace.getregs(task.tid)
        if regs.orig_rax == self.profile.nr and regs.rax == (-ERESTARTSYS) & ((1 << 64) - 1):
            regs.rax = (-ERESTARTNOINTR) & ((1 << 64) - 1)
            ptrace.setregs(task.tid, regs)

    def _on_event(self, task, event):
        """fork/vfork/clone: adopt the new task; exec: new address space;
        seccomp (ptrace trap mode): answer the call."""
        if event in (ptrace.EVENT_FORK, ptrace.EVENT_VFORK, ptrace.EVENT_CLONE):
            child = ptrace.eventmsg(task.tid)
            if self.tasks.adopt(task, child, event):
                ptrace.cont(child)
        elif event == ptrace.EVENT_EXEC:
            self.tasks.exec(task, ptrace.eventmsg(task.tid))
        elif event == ptrace.EVENT_SECCOMP:
            regs = ptrace.getregs(task.tid)
            if regs.orig_rax == stub.DONE_NR:   # the stub's number, made by the program
                regs.orig_rax, regs.rax = (1 << 64) - 1, -errno.ENOSYS & ((1 << 64) - 1)
                ptrace.setregs(task.tid, regs)
                ptrace.cont(task.tid)
                return
            ptrace.cont(task.tid, self._on_seccomp_stop(task))
            return
        ptrace.cont(task.tid)

    def _emit_sigbus(self, task):
        """A SIGBUS about to be delivered: a purged page touched while volatile?"""
        try:
            addr = ptrace.siginfo_addr(task.tid)
        except (TaskGone, OSError):
            return
        space, page = task.space, addr & ~(PAGE - 1)
        hit = space.ranges.overlapping(page, page + PAGE) if space else []
        self.bus.emit(Sigbus(pid=space.tgid if space else task.tid, tid=task.tid, addr=addr,
                             range=[hit[0].start, hit[0].end] if hit else None,
                             purged=bool(hit) and space.ranges.is_purged(page, page + PAGE)))

    def _emit_start(self):
        source = self.watch.source if self.watch else None
        readings = source.readings if source else None
        self.bus.emit(Start(version=VERSION, argv=self.argv, pid=self.tasks.main_pid, abi=self.profile.name,
                            nr=self.profile.nr, trap=self.trap, native_loop=self.native.active,
                            pressure=source.name if source else None,
                            limit=getattr(readings, "limit", None),
                            high=getattr(readings, "high", None),
                            low=getattr(readings, "low", None)))

    # --- invariants ------------------------------------------------------------------
    def _check(self):
        """The supervisor's invariants (VRANGEEMU_CHECK=1, after every loop
        turn): tasks against spaces and pending purges (TaskTable._check), the
        native loop's mirror against the model, each space's ranges and the
        spans its SIGBUS trap holds."""
        try:
            self.tasks._check()
            spaces = self.tasks.spaces()
            self.native._check(spaces)
            for space in spaces:
                space.ranges._check()
                space.trapped._check(space.ranges)
                space.saved_prot._check()
        except AssertionError as exc:
            raise InvariantError(f"supervisor invariant broken: {exc}") from exc

    def abandon(self):
        """After an internal error: stop tracing and wait for the program."""
        self.native.release()
        if self.listener:
            self.listener.close()
        return abandon(self.tasks, self.stops)


def log_to_stderr(msg):
    print(f"vrange-run: {msg}", file=sys.stderr, flush=True)
