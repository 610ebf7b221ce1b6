"""The task table: the one owner of traced tasks and their address spaces.

Only this module creates and frees a `Task` or a `TracedSpace`; everything
else looks them up.  A space lives while some task uses it and is
registered here, not rebuilt from the tasks on each look-up.
"""
from dataclasses import dataclass

from ..linux import procfs, ptrace
from ..linux.procfs import ProcessMemory
from ..linux.process import same_mm
from ..model.ranges import VolatileRanges
from ..model.space import AddressSpace
from ..model.protections import SavedProtections
from ..model.trap import TrappedSpans
from ..observe.events import Clone, Exec, Exit, Fork, SpaceEnd


@dataclass(slots=True, eq=False)
class Task:
    """One traced thread.  `starting`: created, initial stop not yet handled;
    `group_stopped`: held in a job-control stop with PTRACE_LISTEN;
    `vfork_parent`: tid of the parent blocked until this vfork child execs or
    exits (0 if none); `in_vfork`: this task waits for its vfork child, so it
    cannot stop for a purge; `purger`: the thread vrange-run made in the
    program to purge through (remote.Session.start_purger); `parked`: that
    thread waits in a ptrace stop, ready for the next purge."""
    tid: int
    space: object            # TracedSpace, None before the first exec
    starting: bool = True
    group_stopped: bool = False
    vfork_parent: int = 0
    in_vfork: bool = False
    purger: bool = False
    parked: bool = False
    named: bool = False      # the purger thread has its name (stub.NAME_TEXT)


class TracedSpace:
    """One traced address space: the pure model and its runtime handles.

    `memory`: the /proc view (linux.procfs.ProcessMemory); `trap`: the
    linux.uffd.SigbusTrap raising SIGBUS on purged pages, None until made,
    NO_TRAP where it cannot be (purged pages then read as zeros); `trapped`:
    the model.trap.TrappedSpans registered on it; `trap_warned`: a trap
    failure was logged (once per space); `may_lock`:
    False while the program is known never to have locked memory here (the
    filter traps mlock & co), so VOLATILE skips the lock check; `slot`: its
    slot in the native loop's mirror (-1: none); `purge`: the pending
    purge.PurgeRequest or None; `stub`: address of the remote-syscall stub
    page mapped into the program (0: none yet); `purger`: the Task of its
    purger thread, or None; `saved_prot`: the protections --check-access
    took (model.protections).  The model's fields read through."""
    __slots__ = ("model", "memory", "may_lock", "trap", "trapped", "trap_warned", "slot",
                 "purge", "stub", "purger", "saved_prot")

    def __init__(self, model, memory, may_lock=True, stub=0):
        self.model, self.memory, self.may_lock = model, memory, may_lock
        self.trap, self.trapped, self.trap_warned = None, TrappedSpans(), False
        self.slot, self.purge, self.stub, self.purger = -1, None, stub, None
        self.saved_prot = SavedProtections()

    tgid = property(lambda self: self.model.tgid)
    name = property(lambda self: self.model.name)
    ranges = property(lambda self: self.model.ranges)
    stats = property(lambda self: self.model.stats)
    tids = property(lambda self: self.model.tids)

    @property
    def purge_under_way(self):
        """A purge of this space goes on in slices (purger.PurgeRequest.later)."""
        return self.purge is not None and self.purge.later

    def __repr__(self):
        return f"TracedSpace({self.tgid}, {self.name!r}, tids={sorted(self.tids)})"


NO_TRAP = "unavailable"


class TaskTable:
    """Traced tasks by tid and the spaces they use.

    `mirror` is the native loop (native_calls.NativeCalls, inactive in ptrace
    mode); `clock` the one LRU clock of all spaces; `fork_inherit`: a fork
    child inherits its parent's volatile ranges; `locks_trapped`: the filter
    reports mlock & co, so a new space starts with may_lock False.
    `on_space_end(space)` callbacks run when a space loses its last task."""

    def __init__(self, bus, mirror, clock, log, fork_inherit=True, locks_trapped=False):
        self.bus, self.mirror, self.clock, self.log = bus, mirror, clock, log
        self.fork_inherit, self.locks_trapped = fork_inherit, locks_trapped
        self.on_space_end = []
        self.on_task_left = []   # callbacks(space) when a task leaves a space that lives on
        self.tasks = {}          # tid -> Task
        self._spaces = {}        # id(TracedSpace) -> TracedSpace, in creation order
        self.unclaimed = set()   # tids whose initial stop came before their creator's event
        self.finished = []       # (tgid, name, Stats) of spaces that are gone
        self.main_pid = None
        self.main_status = None  # ptrace.Stop of the program's own exit

    # --- look-ups ----------------------------------------------------------------
    def get(self, tid):
        return self.tasks.get(tid)

    def __contains__(self, tid):
        return tid in self.tasks

    def __bool__(self):
        return bool(self.tasks)

    def all(self):
        return list(self.tasks.values())

    def spaces(self):
        """The live traced spaces (TracedSpace), oldest first."""
        return list(self._spaces.values())

    def rss(self):
        """{tgid: resident bytes now} of the traced processes (statm)."""
        return {space.tgid: space.memory.rss() for space in self._spaces.values()}

    def volatile_bytes(self):
        return sum(space.ranges.volatile_bytes for space in self._spaces.values())

    # --- creation ------------------------------------------------------------------
    def first(self, pid):
        """The program itself, seized before its first exec (no space yet)."""
        self.main_pid = pid
        self.tasks[pid] = Task(pid, None, starting=False)

    def adopt(self, parent, tid, event, shares_mm=None, followed=False):
        """A new task (fork/vfork/clone event of `parent`): same space if it
        shares the mm (threads, vfork, CLONE_VM), else a copy of the parent's
        (fork inherits volatility).  Returns True if its initial stop was
        already seen: the caller resumes it.  `followed`: the native loop
        followed the event (gave kcmp's answer as `shares_mm`); the new
        space's /proc files are opened at its first call
        (ProcessMemory.bind), as the child may have run on since."""
        if shares_mm is None:
            shares_mm = same_mm(parent.tid, tid)
        if shares_mm is None:   # no kcmp: a vfork child or a thread shares it
            shares_mm = event == ptrace.EVENT_VFORK or procfs.tgid_of(tid) == parent.space.tgid
        space = parent.space
        if not shares_mm:
            self.mirror.drain(space)   # the in-process log, before the copy
            model = space.model.fork(tid, inherit=self.fork_inherit)
            space = self._register(model, ProcessMemory(tid, bound=not followed),
                                   stub=space.stub)   # the stub is mapped in both
            space.saved_prot = parent.space.saved_prot.copy()   # PROT_NONE in both too
            self.log(f"fork: {parent.tid} -> {tid}, {len(space.ranges)} ranges inherited")
        kind = Fork if space is not parent.space else Clone
        self.bus.emit(kind(parent=parent.space.tgid, pid=space.tgid, tid=tid,
                           vfork=event == ptrace.EVENT_VFORK, ranges=len(space.ranges),
                           volatile=space.ranges.volatile_bytes,
                           purged_bytes=space.ranges.purged_bytes))
        task = Task(tid, None)
        self._join(task, space)
        self.tasks[tid] = task
        if event == ptrace.EVENT_VFORK:
            task.vfork_parent = parent.tid
            parent.in_vfork = True
        if tid in self.unclaimed:
            self.unclaimed.discard(tid)
            task.starting = False
            return True
        return False

    def adopt_purger(self, parent, tid):
        """The purger thread `parent` just cloned into its space (no Clone
        event: it is vrange-run's, not the program's).  True if its initial
        stop was already seen."""
        task = Task(tid, None, purger=True)
        self._join(task, parent.space)
        self.tasks[tid] = task
        if tid in self.unclaimed:
            self.unclaimed.discard(tid)
            task.starting = False
            return True
        return False

    def program_gone(self, space):
        """True if only the purger thread of `space` is left running: every
        other task is gone or a zombie (a leader after pthread_exit is
        reported only once all threads have ended)."""
        return all(procfs.task_state(tid) in ("Z", "X", "") for tid in space.tids)

    def exec(self, task, former_tid, name=None, followed=False):
        """`task` runs a new image: it leaves its old space (which a vfork
        parent may still use) for a fresh one with no volatile ranges.
        `former_tid`: the thread that called exec, if not the leader.  The
        native loop, which followed the event, gives the program's `name`;
        the new space's /proc files are opened at its first call then."""
        if former_tid != task.tid and former_tid in self.tasks:
            self.forget(former_tid)
        self._vfork_done(task)
        if task.space is not None:
            self._leave(task)
        if name is None:
            name = procfs.comm_of(task.tid)
        space = self._register(AddressSpace(task.tid, name, VolatileRanges(self.clock)),
                               ProcessMemory(task.tid, bound=not followed))
        self._join(task, space)
        self.log(f"exec: {task.tid} is now {name}")
        self.bus.emit(Exec(pid=task.tid, program=name))

    def _register(self, model, memory, stub=0):
        space = TracedSpace(model, memory, may_lock=not self.locks_trapped, stub=stub)
        self._spaces[id(space)] = space
        self.mirror.add(space)
        return space

    def _join(self, task, space):
        if task.purger:   # ours, not the program's: not among its tids
            space.purger = task
        else:
            space.tids.add(task.tid)
        task.space = space
        self.mirror.bind(task.tid, space)

    # --- freeing -------------------------------------------------------------------
    def exited(self, stop):
        """A task is gone (`stop` is its exit status): drop it, and its space
        with its last task."""
        if stop.tid == self.main_pid:
            self.main_status = stop
        if stop.tid in self.tasks:
            self.bus.emit(Exit(tid=stop.tid, how=stop.kind, value=stop.value))
        self.unclaimed.discard(stop.tid)
        self.forget(stop.tid)

    def forget(self, tid):
        """Stop knowing `tid` (gone, or no longer traced)."""
        task = self.tasks.pop(tid, None)
        if task is None:
            return
        self._vfork_done(task)
        if task.space is not None:
            request = task.space.purge
            if request is not None and request.tid == tid:   # it will not run: ask anew
                task.space.purge = None
            self._leave(task)

    def claim(self, tid):
        """An initial stop of `tid`: False if its creator's event has not
        named it yet (it waits in `unclaimed` until `adopt`)."""
        task = self.tasks.get(tid)
        if task is None:
            self.unclaimed.add(tid)
            return False
        return True

    def close(self):
        for tid in list(self.tasks):
            self.forget(tid)

    def _vfork_done(self, child):
        parent = self.tasks.get(child.vfork_parent)
        if parent is not None:
            parent.in_vfork = False
        child.vfork_parent = 0

    def _leave(self, task):
        space = task.space
        task.space = None
        self.mirror.unbind(task.tid)
        if task.purger:
            space.purger = None
            return
        space.tids.discard(task.tid)
        if space.tids:
            for callback in self.on_task_left:
                callback(space)
            return
        del self._spaces[id(space)]
        if space.purger is not None:   # dying with the process: its exit comes later
            space.purger.space, space.purger = None, None
        for callback in self.on_space_end:
            callback(space)
        self.mirror.drop(space)
        space.memory.close()
        if space.trap not in (None, NO_TRAP):
            space.trap.close()
        self.finished.append((space.tgid, space.name, space.stats))
        self.bus.emit(SpaceEnd(pid=space.tgid, program=space.name, stats=space.stats))

    # --- invariants ------------------------------------------------------------------
    def _check(self):
        """Tasks and spaces agree: each task's space is registered and lists
        it; each registered space has tasks, all of them using it."""
        for tid, task in self.tasks.items():
            assert task.tid == tid, (tid, task.tid)
            assert tid not in self.unclaimed, tid
            if task.space is not None:
                assert id(task.space) in self._spaces, (tid, task.space)
                if task.purger:
                    assert task.space.purger is task and tid not in task.space.tids, task
                else:
                    assert tid in task.space.tids, (tid, task.space)
        for space in self._spaces.values():
            assert space.tids, space
            for tid in space.tids:
                assert tid in self.tasks and self.tasks[tid].space is space, (tid, space)
            request = space.purge
            if request is not None and request.tid:
                assert request.tid in space.tids or (
                    space.purger is not None and request.tid == space.purger.tid), (request, space)
            if space.purger is not None:
                assert space.purger.purger and self.tasks.get(space.purger.tid) is space.purger
                assert space.purger.space is space, space
