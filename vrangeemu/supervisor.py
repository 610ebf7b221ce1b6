"""The supervisor: one loop over trapped calls, ptrace stops and signals.

Shape (after proot's tracer): `run()` polls the listener fd and a signalfd;
a readable listener means a vrange call to answer (`_on_call`), SIGCHLD
means ptrace stops to drain (`_on_stop` dispatches by stop kind), other
signals are forwarded or trigger a purge.  Tasks are created and freed only
in the stop handlers.  Each handler says what it is called for.
"""
import errno
import itertools
import os
import select
import signal
import sys
import time
import traceback

from . import calls, fastloop, spawn
from ._native import ffi, lib
from .linux import procfs, ptrace
from .linux.notify import Listener
from .linux.procfs import ProcessMemory
from .model.ranges import VolatileRanges
from .model.space import AddressSpace
from .checking import Checking
from .fastloop import NativeCalls
from .tracing import Tracing
from .model.policy import PurgePolicy
from .purging import Purging
from .spawn import SetupError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SI_KERNEL = 0x80   # si_code of signals the tty sends to the whole process group


class Task:
    """One traced thread.  `starting`: created, initial stop not yet handled;
    `purge_by`: 0, or the time until which calls wait for its requested purge;
    `group_stopped`: held in a job-control stop with PTRACE_LISTEN;
    `vfork_parent`: tid of the parent blocked until this vfork child execs or
    exits (0 if none); `in_vfork`: this task waits for its vfork child, so it
    cannot stop for a purge."""
    __slots__ = ("tid", "space", "starting", "purge_by", "group_stopped",
                 "vfork_parent", "in_vfork")

    def __init__(self, tid, space, starting=True):
        self.tid = tid
        self.space = space
        self.starting = starting
        self.purge_by = 0.0
        self.group_stopped = False
        self.vfork_parent = 0
        self.in_vfork = False


class Supervisor(Purging, Checking, NativeCalls, Tracing):
    def __init__(self, argv, profile, trap="notify", log=None, purged_access="sigbus",
                 fork_volatility="inherit", policy=None, check_access="off"):
        self.argv = argv
        self.policy = policy or PurgePolicy("pressure")
        self.check_access = check_access   # "off", "report" or "abort" (checking.py)
        self._checking_init()
        self.fork_volatility = fork_volatility   # "inherit" (v10) or "clear"
        self._pfn_warned = False
        self.purged_access = purged_access   # "sigbus" (as the patches) or "zero"
        self.profile = profile
        self.trap = trap
        self.log = log or (lambda msg: None)
        self.tasks = {}          # tid -> Task
        self.unclaimed = set()   # tids whose initial stop came before their creator's event
        self.finished = []       # (tgid, name, Stats) of address spaces that are gone
        self.main_pid = None
        self.main_status = None  # ptrace.Stop of the program's own exit
        self.listener = None
        self.fast = None         # the native loop (fastloop.FastLoop) in notify mode
        self.trace = None        # trace.Trace (--trace), set before run()
        self.live = None         # live.LiveView (--live): due_in(), refresh(sup), close(sup)
        self.clock = itertools.count(1).__next__   # one LRU across all spaces
        self.deferred = []       # (tid, status) reaped during an injection, not yet handled
        self.pressure = None     # a pressure source (see pressure.py), set before run()
        self.cgroup_procs = None  # cgroup.procs the program joins before exec
        self._pressure_due = 0.0
        # Test hook: simulate a supervisor bug at a purge (tests/e2e).
        self.fault = os.environ.get("VRANGEEMU_TEST_FAULT", "")

    # --- start ---------------------------------------------------------------
    def spawn(self):
        """Start the program seized and filtered (see spawn.py)."""
        started = spawn.start(self.argv, self.profile.nr, self.trap, self.log, self.cgroup_procs)
        self.trap = started.trap
        self.main_pid = started.pid
        self.tasks[started.pid] = Task(started.pid, None, starting=False)
        if started.listener >= 0:
            self.listener = Listener(started.listener)
            if os.environ.get("VRANGEEMU_FASTPATH", "1") != "0":
                self.fast = fastloop.FastLoop(started.listener, self.profile)

    # --- the loop -------------------------------------------------------------
    def run(self):
        """Serve until every traced task is gone; returns the program's exit Stop.

        Raises SetupError if the program could not be started.  On an internal
        error it prints the traceback, stops tracing and waits for the program
        (whose vrange calls then fail with ENOSYS), never leaving it stopped."""
        sigs = ffi.new("int[]", [signal.SIGCHLD, signal.SIGUSR1, *FORWARDED])
        sigfd = -1
        try:
            sigfd = lib.vr_signalfd(sigs, len(sigs))
            if sigfd < 0:
                raise SetupError(f"signalfd: {os.strerror(-sigfd)}")
            self.spawn()
            self._trace_start()
            return self._loop(sigfd)
        except SetupError:
            raise
        except Exception:   # our bug: let the program finish untraced
            traceback.print_exc()
            print("vrange-run: internal error; the program goes on without vrange "
                  "(its calls now fail with ENOSYS)", file=sys.stderr)
            return self.abandon()
        finally:
            if self.fast:
                self.fast.close()
            if self.listener:
                self.listener.close()
            if sigfd >= 0:
                os.close(sigfd)
            for task in list(self.tasks.values()):
                self._forget(task.tid)
            if self.pressure:
                self.pressure.close()

    def _loop(self, sigfd):
        """The one loop: signals (and ptrace stops) first, then calls."""
        poller = select.poll()
        events = self.pressure.fds if self.pressure else []
        for fd in [sigfd, *events]:
            poller.register(fd, select.POLLIN)
        if self.listener and not self.fast:
            poller.register(self.listener.fd, select.POLLIN)
        self._drain_stops()
        while self.tasks:
            timeout = self._timeout_ms()
            call = None
            if self.fast:
                ready, call = self._serve_fast([sigfd, *events], timeout)
            else:
                ready = dict(poller.poll(timeout))
            # Signals first: a purge asked for (SIGUSR1) before a call is
            # served before that call.
            if sigfd in ready:
                self._on_signals(sigfd)
                self._await_purges(sigfd)
            if self.listener and self.listener.fd in ready:
                if ready[self.listener.fd] & select.POLLIN:
                    call = self.listener.recv()
                else:   # POLLHUP: no process holds the filter any more
                    poller.unregister(self.listener.fd)
            if call:
                self._on_call(call)
            fired = [fd for fd in events if fd in ready]
            for fd in fired:
                os.read(fd, 8)    # eventfd: clear it
            if self.pressure and (fired or time.monotonic() >= self._pressure_due):
                self._check_pressure()
            if self.trace and self.trace.sample_due_in() <= 0:
                self.trace.sample(self.spaces(), procfs.anon_rss_of)
            if self.live and self.live.due_in() <= 0:
                self.live.refresh(self)
        return self.main_status

    def _timeout_ms(self):
        """Until the pressure source or the trace wants the loop back; -1: never."""
        due = []
        if self.pressure:
            due.append(self._pressure_due - time.monotonic())
        if self.trace:
            due.append(self.trace.sample_due_in())
        if self.live:
            due.append(self.live.due_in())
        return max(0, int(min(due) * 1000) + 1) if due else -1

    def _on_signals(self, sigfd):
        """Called when the signalfd is readable: SIGCHLD, SIGUSR1, forwarded ones."""
        info = ffi.new("struct vr_siginfo *")
        while lib.vr_signalfd_read(sigfd, info) > 0:
            if info.signo == signal.SIGUSR1:
                self.log("SIGUSR1: purging every volatile range")
                self.purge_all()
            elif info.signo in FORWARDED and info.code != SI_KERNEL:
                # A tty signal already reached the whole foreground group.
                if self.main_pid in self.tasks:
                    os.kill(self.main_pid, info.signo)
        self._drain_stops()

    def _drain_stops(self):
        while True:
            if self.deferred:
                tid, status = self.deferred.pop(0)
            else:
                try:
                    tid, status = os.waitpid(-1, os.WNOHANG | ptrace.WALL)
                except ChildProcessError:
                    return
                if tid == 0:
                    return
            try:
                self._on_stop(ptrace.decode(tid, status))
            except ptrace.PtraceError as exc:
                if not ptrace.gone(exc):
                    raise
                # killed meanwhile: its exit status is still to come

    # --- trapped calls -------------------------------------------------------------
    def _on_call(self, call):
        """Answer one received vrange call (id, tid, nr, args) in Python."""
        if call is None:
            return
        notif_id, tid, nr, args = call
        space = self._space_of(tid)
        if nr != self.profile.nr:   # mlock & co (see locks_trapped): note it, let it run
            if space is not None:
                self._note_lock(space, tid)
            self.listener.send(notif_id, 0, 0, continue_=True)
            return
        if space is None:   # not a task we know: refuse rather than guess
            self.listener.send(notif_id, 0, errno.ENOSYS)
            return
        def write_purged(addr, value):
            # The tid could be reused once the caller is gone: check first.
            if not self.listener.valid(notif_id):
                return errno.ESRCH
            return -lib.vr_write_i32(tid, addr, value)
        answer = self._serve(space, tid, args, write_purged)
        self._unpin_purged(space, answer)
        if self.listener.send(notif_id, answer.value, answer.error) and answer.commit:
            answer.commit()
            if answer.repinned_purged:
                self._mirror(space)
            self._trace_call(space, tid, args, answer)

    def _serve(self, space, tid, args, write_purged):
        try:
            return calls.serve(space, self.profile, args, write_purged)
        except OSError as exc:
            # /proc vanished under us: the caller is exiting (or exec'd).
            self.log(f"call from {tid} not served: {exc}")
            return calls.Answer(0, errno.ENOMEM, None)

    def _on_seccomp_stop(self, task):
        """ptrace trap mode: the task is stopped at its vrange call; the real
        syscall is always skipped (before the first exec it fails ENOSYS).
        Returns the signal to resume it with, None if it died."""
        if task.purge_by and task.space is not None:
            return self._purge_before_call(task)
        regs = ptrace.getregs(task.tid)
        args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9]
        if task.space is None:
            answer = calls.Answer(0, errno.ENOSYS, None)
        else:
            answer = self._serve(task.space, task.tid, args,
                                 lambda addr, value: -lib.vr_write_i32(task.tid, addr, value))
            self._unpin_purged(task.space, answer)
        regs.orig_rax = (1 << 64) - 1   # skip the real syscall; rax is the result
        regs.rax = (answer.value if not answer.error else -answer.error) & ((1 << 64) - 1)
        ptrace.setregs(task.tid, regs)
        if answer.commit:
            answer.commit()
            self._trace_call(task.space, task.tid, args, answer)
            if task.space is not None:
                return self._after_call(task, args, answer)
        return 0

    def _space_of(self, tid):
        task = self.tasks.get(tid)
        if task is None:
            self._drain_stops()    # its creator's event may be queued
            task = self.tasks.get(tid)
        return task.space if task else None

    # --- ptrace stops ----------------------------------------------------------
    def _on_stop(self, stop):
        """Dispatch one wait status; every path resumes the task or forgets it."""
        if stop.kind in ("exited", "killed"):
            self._on_exit(stop)
            return
        task = self.tasks.get(stop.tid)
        if task is None:
            self.unclaimed.add(stop.tid)   # resumed once its creator's event names it
            return
        task.group_stopped = stop.kind == "group-stop"
        if stop.kind == "signal" and stop.value == signal.SIGBUS and self.trace:
            self._trace_sigbus(task)
        if task.starting:
            task.starting = False
            self._resume(task, stop)
        elif stop.kind == "event":
            self._on_event(task, stop.value)
        elif stop.kind == "signal" and stop.value == signal.SIGSEGV and self._on_fault(task):
            pass   # an access to a range protected by --check-access: handled
        elif not task.purge_by or task.group_stopped or self._purge_in(task):
            # At a group-stop the purge waits for SIGCONT: injecting there
            # would take the task out of its job-control stop.
            self._resume(task, stop)

    def _resume(self, task, stop):
        if stop.kind == "group-stop":
            ptrace.listen(task.tid)    # keep job control: stay stopped until SIGCONT
        elif stop.kind == "signal":
            ptrace.cont(task.tid, stop.value)
        else:
            ptrace.cont(task.tid)

    def _on_event(self, task, event):
        """fork/vfork/clone: adopt the new task; exec: new address space;
        seccomp (ptrace trap mode): answer the call."""
        if event in (ptrace.EVENT_FORK, ptrace.EVENT_VFORK, ptrace.EVENT_CLONE):
            self._adopt(task, ptrace.eventmsg(task.tid), event)
        elif event == ptrace.EVENT_EXEC:
            self._on_exec(task, ptrace.eventmsg(task.tid))
        elif event == ptrace.EVENT_SECCOMP:
            resume = self._on_seccomp_stop(task)
            if resume is not None:   # None: it died meanwhile
                ptrace.cont(task.tid, resume)
            return
        ptrace.cont(task.tid)

    def _adopt(self, parent, tid, event):
        """A new task: same address space if it shares the mm (threads, vfork,
        CLONE_VM), else a copy of the parent's (fork inherits volatility)."""
        order = lib.vr_kcmp_vm(parent.tid, tid)
        shares_mm = order == 0
        if order < 0:   # no kcmp (CONFIG_KCMP=n): a vfork child or a thread shares it
            shares_mm = event == ptrace.EVENT_VFORK or procfs.tgid_of(tid) == parent.space.tgid
        space = parent.space
        if not shares_mm:
            space = parent.space.fork(tid, ProcessMemory(tid),
                                      inherit=self.fork_volatility == "inherit")
            space.may_lock = not self.locks_trapped   # locks are not inherited
            self._mirror_new(space)
            self.log(f"fork: {parent.tid} -> {tid}, {len(space.ranges)} ranges inherited")
        if self.trace:
            self.trace.event("fork" if space is not parent.space else "clone",
                             parent=parent.space.tgid, pid=space.tgid, tid=tid,
                             vfork=event == ptrace.EVENT_VFORK, ranges=len(space.ranges),
                             volatile=space.ranges.volatile_bytes,
                             purged_bytes=space.ranges.purged_bytes)
        space.tids.add(tid)
        if self.fast:
            self.fast.bind(tid, space)
        task = Task(tid, space)
        self.tasks[tid] = task
        if event == ptrace.EVENT_VFORK:
            task.vfork_parent = parent.tid
            parent.in_vfork = True
        if tid in self.unclaimed:
            self.unclaimed.discard(tid)
            task.starting = False
            ptrace.cont(tid)

    def _on_exec(self, task, former_tid):
        """The task runs a new image: it leaves its old space (which a vfork
        parent may still use) for a fresh one with no volatile ranges."""
        if former_tid != task.tid and former_tid in self.tasks:
            self._forget(former_tid)
        self._vfork_done(task)
        if task.space is not None:
            self._leave(task)
        name = procfs.comm_of(task.tid)
        task.space = AddressSpace(task.tid, name, ProcessMemory(task.tid),
                                  VolatileRanges(self.clock), tids={task.tid},
                                  may_lock=not self.locks_trapped)
        self._mirror_new(task.space)
        if self.fast:
            self.fast.bind(task.tid, task.space)
        self.log(f"exec: {task.tid} is now {name}")
        if self.trace:
            self.trace.event("exec", pid=task.tid, program=name)

    def _on_exit(self, stop):
        """A task is gone: drop it, and its space with its last task."""
        if stop.tid == self.main_pid:
            self.main_status = stop
        if self.trace and stop.tid in self.tasks:
            self.trace.event("exit", tid=stop.tid, how=stop.kind, value=stop.value)
        self.unclaimed.discard(stop.tid)
        self._forget(stop.tid)

    def _forget(self, tid):
        task = self.tasks.pop(tid, None)
        if task is None:
            return
        self._vfork_done(task)
        if task.space is not None:
            if task.purge_by:     # its purge will not run: let another be asked
                task.space.pending_purge = None
            self._leave(task)

    def _vfork_done(self, child):
        parent = self.tasks.get(child.vfork_parent)
        if parent is not None:
            parent.in_vfork = False
        child.vfork_parent = 0

    def _leave(self, task):
        space = task.space
        space.tids.discard(task.tid)
        task.space = None
        if self.fast:
            self.fast.unbind(task.tid)
        if not space.tids:
            self.policy.forget(id(space))
            if self.fast:
                self.fast.drop(space)
            space.memory.close()
            if space.trap_fd >= 0:
                os.close(space.trap_fd)
            self.finished.append((space.tgid, space.name, space.stats))
            if self.trace:
                self.trace.event("space_end", pid=space.tgid, program=space.name,
                                 stats=space.stats.as_dict())

    def abandon(self):
        """After an internal error: stop tracing, let the program run on, and
        wait for it.  Its vrange calls then fail with ENOSYS."""
        if self.listener:
            self.listener.close()
        for tid in list(self.tasks):
            try:
                ptrace.detach(tid)          # works if it is in a ptrace stop
                continue
            except ptrace.PtraceError:
                pass
            try:
                ptrace.interrupt(tid)
            except ptrace.PtraceError:
                continue
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    got, status = os.waitpid(tid, ptrace.WALL | os.WNOHANG)
                except ChildProcessError:
                    break
                if not got:
                    time.sleep(0.001)
                    continue
                stop = ptrace.decode(tid, status)
                if stop.kind in ("exited", "killed"):
                    self._on_exit(stop)
                else:
                    ptrace.detach(tid, stop.value if stop.kind == "signal" else 0)
                break
        if self.main_status is None and self.main_pid:
            try:
                _, status = os.waitpid(self.main_pid, 0)
                self.main_status = ptrace.decode(self.main_pid, status)
            except ChildProcessError:
                pass
        return self.main_status


def log_to_stderr(msg):
    print(f"vrange-run: {msg}", file=sys.stderr, flush=True)
