"""Memory cgroups, v2 and v1: find, create, read usage, set limits, events.

Both versions answer the same questions (usage, limits, "is a task paused at
the limit"), so the pressure engine does not care which one it has.  v2 is
what current distributions run; on machines where only v1 has the memory
controller (like ours) v1 is used.  Every path is passed in, so tests can
point a `Cgroup` at a directory of plain files.

Without root, v2 still serves where our own group is delegated to us (a
systemd user session: `systemd-run --user --scope -p Delegate=yes ...`):
cgroup v2 lets only a group without processes of its own hand the memory
controller to its children, so the processes of our group first move into
a leaf child of it, and back when the program's group goes (`delegated`,
`Cgroup.make`, `Cgroup.remove`).
"""
import os
import time

from . import cgroup_watchdog

UNLIMITED = 1 << 62   # what "no limit" reads as (v1: PAGE_COUNTER_MAX pages; v2: "max")


def _mounts(path="/proc/mounts"):
    with open(path) as mounts:
        for line in mounts:
            _, mnt, fstype, opts = line.split()[:4]
            yield mnt, fstype, opts.split(",")


def v2_root(mounts="/proc/mounts"):
    """Mount point of cgroup2 if it has the memory controller, else None."""
    for mnt, fstype, _ in _mounts(mounts):
        if fstype == "cgroup2":
            try:
                with open(os.path.join(mnt, "cgroup.controllers")) as ctl:
                    if "memory" in ctl.read().split():
                        return mnt
            except OSError:
                pass
    return None


def v1_root(mounts="/proc/mounts"):
    """Mount point of the cgroup v1 memory controller, else None."""
    for mnt, fstype, opts in _mounts(mounts):
        if fstype == "cgroup" and "memory" in opts:
            return mnt
    return None


def own_path(version, pid="self"):
    """This process's cgroup path (relative to the hierarchy root)."""
    with open(f"/proc/{pid}/cgroup") as cg:
        for line in cg:
            num, controllers, path = line.rstrip("\n").split(":", 2)
            if version == 2 and num == "0":
                return path
            if version == 1 and "memory" in controllers.split(","):
                return path
    return "/"


def _words(path, name):
    """The words of the file `name` of the group at `path` ([] if unreadable)."""
    try:
        with open(os.path.join(path, name)) as f:
            return f.read().split()
    except OSError:
        return []


def delegated(path):
    """True if the cgroup v2 group `path` is ours to divide: it has the
    memory controller (its parent lists memory in cgroup.subtree_control,
    so it has memory.* files) and we may write its directory, its
    cgroup.procs and its cgroup.subtree_control.  (As root these are
    always writable: then it says whether the group has the controller.)"""
    return ("memory" in _words(path, "cgroup.controllers")
            and os.path.exists(os.path.join(path, "memory.max"))
            and all(os.access(os.path.join(path, name), os.W_OK)
                    for name in ("", "cgroup.procs", "cgroup.subtree_control")))


def v2_child(own, name, pid=None):
    """Where the program's group `name` goes in the cgroup v2 group `own`
    (ours): a `Cgroup` not made yet, or None if its children cannot have
    the memory controller.  If `own` hands memory to its children already,
    the group is made there; if `own` is delegated to us and holds no
    process but us (`pid`, default ours: systemd-run --user --scope
    vrange-run ...), its processes first move into the leaf
    `NAME-supervisor` (see `Cgroup.make`); a group we share with others
    (a login shell's) is left alone."""
    if "memory" in _words(own, "cgroup.subtree_control"):
        return Cgroup(os.path.join(own, name), 2)
    if delegated(own) and _words(own, "cgroup.procs") == [str(pid or os.getpid())]:
        return Cgroup(os.path.join(own, name), 2, leaf=os.path.join(own, f"{name}-supervisor"))
    return None


def _parse_bytes(text):
    text = text.strip()
    return UNLIMITED if text == "max" else min(int(text), UNLIMITED)


class Cgroup:
    """One memory cgroup directory of either version.  `leaf` (v2): the
    child of its parent that the parent's processes move into while this
    group exists (None: they stay)."""

    def __init__(self, path, version, leaf=None):
        self.path = path
        self.version = version
        self.leaf = leaf
        self._usage_fd = None

    def __repr__(self):
        return f"Cgroup({self.path!r}, v{self.version})"

    def file(self, name):
        return os.path.join(self.path, name)

    def read(self, name):
        with open(self.file(name)) as f:
            return f.read()

    def write(self, name, value):
        with open(self.file(name), "w") as f:
            f.write(str(value))

    # --- readings ------------------------------------------------------------
    def usage(self):
        """Bytes charged now (v2 memory.current, v1 memory.usage_in_bytes)."""
        if self._usage_fd is None:
            name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
            self._usage_fd = os.open(self.file(name), os.O_RDONLY | os.O_CLOEXEC)
        return int(os.pread(self._usage_fd, 64, 0))

    def high_events(self):
        """v2: how often a task went over memory.high (memory.events "high"),
        0 where there is no such count (v1, or the file is missing)."""
        try:
            for line in self.read("memory.events").splitlines():
                key, _, value = line.partition(" ")
                if key == "high":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def limits(self):
        """(soft, hard): v2 (memory.high, memory.max); v1 (its soft limit,
        memory.limit_in_bytes).  UNLIMITED where none is set."""
        if self.version == 2:
            return _parse_bytes(self.read("memory.high")), _parse_bytes(self.read("memory.max"))
        return (_parse_bytes(self.read("memory.soft_limit_in_bytes")),
                _parse_bytes(self.read("memory.limit_in_bytes")))

    def under_oom(self):
        """True if tasks are paused at the hard limit (v1 with the OOM killer off)."""
        if self.version == 2:
            return False   # v2 has no paused state: memory.high throttles instead
        return "under_oom 1" in self.read("memory.oom_control")

    # --- settings ------------------------------------------------------------
    def hold_at(self, soft, hard):
        """Tasks pause at `soft`; past `hard` the kernel must not kill yet.
        v2: memory.high = soft (a task over it is throttled: it waits in
        the kernel), memory.max = hard.
        v1: memory.limit_in_bytes = hard with the OOM killer off, so a task
        at the limit pauses instead of dying."""
        if self.version == 2:
            self.write("memory.max", hard)
            self.write("memory.high", soft)
        else:
            self.write("memory.limit_in_bytes", hard)
            self.write("memory.oom_control", 1)

    def enforce(self, limit):
        """Nothing volatile is left: the kernel enforces `limit` for real
        (v1: OOM killer on; EBUSY, usage above `limit`, leaves the OOM killer
        to act at the old limit).  The rules the watchdog restores, too."""
        cgroup_watchdog.restore(self.path, self.version, limit)

    def raise_hard(self, hard):
        """Let tasks paused at the hard limit go on (v1), e.g. to stop them."""
        self.write("memory.max" if self.version == 2 else "memory.limit_in_bytes", hard)

    def event_fds(self, threshold):
        """v1 only: eventfds woken when usage crosses `threshold`, when a task
        pauses at the limit (OOM) and at the first reclaim (pressure_level
        "low").  [] on v2 (it is polled)."""
        if self.version == 2:
            return []
        fds = []
        usage = os.open(self.file("memory.usage_in_bytes"), os.O_RDONLY | os.O_CLOEXEC)
        oom = os.open(self.file("memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        level = os.open(self.file("memory.pressure_level"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            for target, arg in ((usage, f" {threshold}"), (oom, ""), (level, " low")):
                efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                self.write("cgroup.event_control", f"{efd} {target}{arg}")
                fds.append(efd)
        finally:
            for fd in (usage, oom, level):
                os.close(fd)
        return fds

    def close(self):
        if self._usage_fd is not None:
            os.close(self._usage_fd)
            self._usage_fd = None

    # --- life cycle --------------------------------------------------------------
    @classmethod
    def candidates(cls, name):
        """Where a new child `name` of our own memory cgroup would go, v2
        first: `Cgroup`s whose directories are not made yet (see `make`)."""
        found = []
        root = v2_root()
        if root:
            group = v2_child(os.path.join(root, own_path(2).lstrip("/")), name)
            if group:
                found.append(group)
        root = v1_root()
        if root:
            found.append(cls(os.path.join(root, own_path(1).lstrip("/"), name), 1))
        return found

    def make(self):
        """mkdir the group; False if we may not (or the hierarchy refuses).
        With a `leaf`, the parent's processes (vrange-run and its
        watchdog) move into it first and the parent hands the memory
        controller to its children (undone if that fails)."""
        try:
            if self.leaf:
                self._vacate_parent()
            os.mkdir(self.path)
            return True
        except OSError:
            if self.leaf:
                self._refill_parent()
            return False

    def _vacate_parent(self):
        parent = os.path.dirname(self.path)
        os.mkdir(self.leaf)
        for pid in _read_lines(os.path.join(parent, "cgroup.procs")):
            try:
                _write(os.path.join(self.leaf, "cgroup.procs"), pid)
            except ProcessLookupError:
                pass   # gone meanwhile
        _write(os.path.join(parent, "cgroup.subtree_control"), "+memory")

    def _refill_parent(self):
        """Undo `_vacate_parent` as far as it got: the processes go back
        to the parent and the leaf goes; best effort (the leaf may stay,
        harmless, if a process cannot move)."""
        parent = os.path.dirname(self.path)
        try:
            _write(os.path.join(parent, "cgroup.subtree_control"), "-memory")
        except OSError:
            pass
        try:
            for pid in _read_lines(os.path.join(self.leaf, "cgroup.procs")):
                try:
                    _write(os.path.join(parent, "cgroup.procs"), pid)
                except ProcessLookupError:
                    pass
            os.rmdir(self.leaf)
        except OSError:
            pass

    @classmethod
    def create(cls, name):
        """A new child of our own memory cgroup (v2 preferred); None if neither
        hierarchy has the memory controller or we may not create one."""
        for group in cls.candidates(name):
            if group.make():
                return group
        return None

    def remove(self, timeout=2.0):
        """rmdir once its tasks are gone (they may take a moment to leave);
        then the processes of a `leaf` go back to the parent."""
        self.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        if self.leaf:
            self._refill_parent()
        return True


def _read_lines(path):
    with open(path) as f:
        return f.read().split()


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))
