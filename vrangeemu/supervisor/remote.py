"""Remote syscalls: the only place that runs code inside a traced task.

After rr's AutoRemoteSyscalls and proot's chained syscalls: a session saves
a stopped task's registers, signal mask and siginfo, blocks every signal
(those that arrive meanwhile stay pending in the kernel, siginfo and order
intact), runs syscalls, then restores registers, mask and siginfo.

Syscalls run at the `syscall` of a stub page mapped into the program
(linux/stub.py), stopped at entry and exit with PTRACE_SYSCALL: no trap flag,
and if the supervisor dies at any instant the thread finishes the call and
restores itself from the stub's save area.  The stub is made with one
single-stepped mmap at a `syscall` the program has (vDSO or libc), checked
before use.  Every wait is bounded.  Death is reported one way: TaskGone
(the task table has already recorded an exit when it is raised here; an
exec by another thread is left queued for the loop).  InjectionFailed: no
syscall could be run (the program unmapped or remapped the instruction);
the task is restored and goes on.
"""
import ctypes
import mmap
import signal

from ..linux import ptrace, stub
from ..linux.errors import TaskGone
from ..linux.process import tgkill
from ..linux.syscalls import SYS_MADVISE, SYS_MMAP

U64 = (1 << 64) - 1
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
ALL_SIGNALS = U64          # the kernel never blocks SIGKILL and SIGSTOP
MAX_STOPS = 16             # stops per injected syscall before giving up
FAULTS = frozenset((signal.SIGSEGV, signal.SIGBUS, signal.SIGILL))


class InjectionFailed(Exception):
    """No syscall could be run in the task (it was restored and goes on)."""


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

    def __init__(self, remote, task):
        self._remote = remote
        self.task = task
        self.held = []   # unblockable signals (SIGSTOP) that arrived meanwhile
        self._blocked = False
        self._left_signal_path = False   # a syscall stop was reached: see _restore
        # A batch ends in a seccomp stop, inside its last call: resumed with
        # PTRACE_SYSCALL, the thread first stops at that call's exit.
        self._exit_due = False

    def __enter__(self):
        tid = self.task.tid
        self._saved = ptrace.getregs(tid)
        self._still_ours()
        # At a signal-delivery stop, resuming delivers the signal with the
        # siginfo of the stop the task is in then: keep the original's.
        self._siginfo = ptrace.getsiginfo(tid)
        self._mask = ptrace.getsigmask(tid)
        try:
            try:
                self._stub = self._remote.stub_of(self, self.task)
                # Written first: from here on a thread left alone finds its way back.
                self.task.space.memory.write(self._stub + stub.SAVE,
                                             stub.save_area(self._saved, self._mask))
            except OSError:
                # No page to be had (the program is at its memory limit):
                # single-step at a `syscall` of its own instead.
                self._stub = None
                self._insn = self._remote.syscall_insn(self)
        except _Died as exc:   # __exit__ is not called when __enter__ fails
            self._remote.tasks.exited(exc.stop)
            raise TaskGone(tid, "died during a remote syscall") from None
        except TaskGone:
            raise
        except BaseException:
            self._still_ours()
            self._restore()
            raise
        return self

    @property
    def has_stub(self):
        return self._stub is not None

    def run(self, calls):
        """Run [(nr, (a0, a1, ...)), ...] one by one; each result (negative
        errno on failure), in order."""
        results = []
        for nr, args in calls:
            if self._stub is None:
                results.append(self.step_at(self._insn, nr, args, results))
                continue
            self._load(self._stub, nr, args)
            results.append(self._through_syscall(results))
        return results

    def madvise(self, runs, advice):
        """madvise(start, end - start, advice) for each of `runs`; each
        result, in order.  With the stub, in batches of stub.BATCH_MAX run
        by the stub's loop (two stops a batch, not two a call); else one by
        one."""
        def one_by_one(runs):
            return self.run([(SYS_MADVISE, (s, e - s, advice)) for s, e in runs])
        if self._stub is None:
            return one_by_one(runs)
        results = []
        while len(results) < len(runs):
            batch = runs[len(results):len(results) + stub.BATCH_MAX]
            try:
                self.task.space.memory.write(self._stub + stub.RUNS, stub.pairs(batch))
            except OSError:   # no page to be had for it (at a memory limit)
                results += one_by_one(batch)
                continue
            done, failed = self._batch(len(batch), advice, results)
            results += [0] * done
            if done < len(batch):
                results.append(failed)
        return results

    def _batch(self, count, advice, results):
        """Run the stub's loop over `count` pairs; (pairs done, the failing
        call's result)."""
        tid = self.task.tid
        self._exit_due = False   # resumed with PTRACE_CONT: no exit stop comes
        self._load(self._stub + stub.BATCH_ENTRY, 0, (),
                   rbx=self._stub + stub.RUNS, r12=count, r13=advice, r14=0)
        for _ in range(MAX_STOPS):
            ptrace.cont(tid)
            stop = self._wait(results)
            self._left_signal_path = True
            if stop.kind == "event" and stop.value == ptrace.EVENT_SECCOMP:
                after = ptrace.getregs(tid)
                if after.orig_rax == stub.DONE_NR:
                    self._exit_due = True
                    return after.r14, ctypes.c_int64(after.r15).value
            elif stop.kind == "signal":
                if stop.value in FAULTS:
                    raise InjectionFailed(f"the syscall stub of {tid} failed: signal {stop.value}")
                self.held.append(stop.value)
        raise InjectionFailed(f"thread {tid} did not finish its batch")

    def _still_ours(self):
        """Raise TaskGone if the tid no longer names the thread we stopped:
        another thread's exec took it over (its exec stop is waiting; writing
        registers now would corrupt the new image) or it died."""
        try:
            stop = self._remote.stops.wait_nohang(self.task.tid)
        except ChildProcessError:
            raise TaskGone(self.task.tid, "no longer traced") from None
        if stop is not None:
            self._remote.stops.put_back(stop)
            raise TaskGone(self.task.tid, f"{stop.kind} during a remote syscall")

    def _load(self, at, nr, args, **more):
        self._still_ours()
        regs = type(self._saved).from_buffer_copy(self._saved)
        regs.rip = at
        regs.rax = nr
        regs.orig_rax = U64   # no syscall restart on the way back to user mode
        for name, value in [*zip(ARG_REGS, args), *more.items()]:
            setattr(regs, name, value & U64)
        ptrace.setregs(self.task.tid, regs)
        if not self._blocked:   # once the registers lead away from the program's code
            ptrace.setsigmask(self.task.tid, ALL_SIGNALS)
            self._blocked = True

    def _through_syscall(self, results, clones=None):
        """From registers loaded at the stub's `syscall` to its exit stop; the
        result.  With `clones`, the tids a clone made are added there."""
        tid, entered = self.task.tid, False
        for _ in range(MAX_STOPS):
            ptrace.syscall(tid)
            stop = self._wait(results, clones is not None)
            self._left_signal_path = True
            if stop.kind == "event":   # the clone's: its child's tid
                clones.append(ptrace.eventmsg(tid))
            elif stop.kind == "syscall" and self._exit_due:
                self._exit_due = False
            elif stop.kind == "syscall":
                if entered:
                    return ctypes.c_int64(ptrace.getregs(tid).rax).value
                entered = True
            elif stop.kind == "signal":
                if stop.value in FAULTS and ptrace.getregs(tid).rip == self._stub:
                    raise InjectionFailed(f"the syscall stub of {tid} is gone")
                self.held.append(stop.value)
        raise InjectionFailed(f"thread {tid} did not run its injected syscall")

    def start_purger(self):
        """clone() a purger thread from the stub (stub.CLONE_ENTRY); its tid.
        It parks in pause() with every signal blocked (it inherits the
        session's mask)."""
        if self._stub is None:
            raise InjectionFailed("no stub page")
        children = []
        self._load(self._stub + stub.CLONE_ENTRY, stub.SYS_CLONE,
                   (stub.CLONE_THREAD_FLAGS, 0, 0, 0, 0))
        result = self._through_syscall([], children)
        if result < 0 or not children:
            raise InjectionFailed(f"clone of a purger thread in {self.task.tid}: errno {-result}")
        return children[0]

    def step_at(self, insn, nr, args, results=()):
        """Run one syscall by single-stepping over the `syscall` at `insn`:
        to map the stub, or where no stub page can be had (a trap flag is
        set only then)."""
        self._load(insn, nr, args)
        tid = self.task.tid
        for _ in range(MAX_STOPS):
            ptrace.singlestep(tid)
            stop = self._wait(list(results))
            if stop.kind != "signal":
                continue   # a late PTRACE_INTERRUPT trap: step again
            after = ptrace.getregs(tid)
            if stop.value == signal.SIGTRAP and after.rip == insn + 2:
                return ctypes.c_int64(after.rax).value
            if stop.value in FAULTS and after.rip == insn:
                raise InjectionFailed(f"no syscall instruction at {insn:#x} in {tid}")
            if stop.value != signal.SIGTRAP:
                self.held.append(stop.value)
        raise InjectionFailed(f"thread {tid} did not run its injected syscall")

    def _wait(self, results, clone_ok=False):
        stop = self._remote.stops.wait_for(self.task.tid)
        if stop.ended:
            raise _Died(stop, results)
        if clone_ok and stop.kind == "event" and stop.value == ptrace.EVENT_CLONE:
            return stop
        if stop.kind == "event" and stop.value != ptrace.EVENT_SECCOMP:
            # an exec by another thread took this tid over
            self._remote.stops.put_back(stop)
            raise TaskGone(self.task.tid, "exec during a remote syscall", results)
        return stop

    def _restore(self):
        tid = self.task.tid
        regs = self._saved
        if self._left_signal_path:
            # Resumed from a syscall stop, the kernel would not restart a call
            # the thread was interrupted in: do what it would have done.
            regs = type(regs).from_buffer_copy(regs)
            regs.rax, regs.rip = stub.restarted(self._saved)
            regs.orig_rax = U64
        ptrace.setsigmask(tid, self._mask)
        ptrace.setregs(tid, regs)
        ptrace.setsiginfo(tid, self._siginfo)

    def __exit__(self, kind, exc, tb):
        if kind is _Died:
            self._remote.tasks.exited(exc.stop)
            raise TaskGone(self.task.tid, "died during a remote syscall", exc.results) from None
        if kind is TaskGone:
            return False
        self._still_ours()
        self._restore()
        self._remote.redeliver(self.task, self.held)
        return False


class RemoteSyscalls:
    """Remote syscalls into tasks of `tasks` (a TaskTable); `stops` is the
    loop's StopQueue (other tasks' statuses wait there meanwhile)."""

    def __init__(self, tasks, stops):
        self.tasks = tasks
        self.stops = stops

    def session(self, task):
        """`with remote.session(task) as s: s.run([...])`."""
        return Session(self, task)

    def run(self, task, calls):
        """One session that runs `calls`; their results."""
        with self.session(task) as s:
            return s.run(calls)

    def syscall_insn(self, session):
        """A `syscall` instruction of the program's own (vDSO, libc, or the
        one the stopped thread was in)."""
        task = session.task
        insn = task.space.memory.syscall_insn(task.tid) or syscall_insn_for(session._saved)
        if insn is None:
            raise InjectionFailed(f"no syscall instruction found in {task.space.tgid}")
        return insn

    def stub_of(self, session, task):
        """The address of the stub in `task`'s space, mapped now if it is
        missing (first use, or the program unmapped or replaced it)."""
        space = task.space
        if space.stub and stub.intact(space.memory.read(space.stub, len(stub.CODE))):
            return space.stub
        insn = self.syscall_insn(session)
        addr = session.step_at(insn, SYS_MMAP, (0, stub.SIZE, mmap.PROT_READ | mmap.PROT_EXEC,
                                                 mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0))
        if addr < 0:
            raise InjectionFailed(f"cannot map the syscall stub in {space.tgid}: errno {-addr}")
        space.memory.write(addr, stub.CODE)
        space.stub = addr
        return addr

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
