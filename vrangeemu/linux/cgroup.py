"""Memory cgroups, v2 and v1: find, create, read usage, set limits, events.

Both versions answer the same questions (usage, limits, "is a task paused at
the limit"), so the pressure engine does not care which one it has.  v2 is
what current distributions run; on machines where only v1 has the memory
controller (like ours) v1 is used.  Every path is passed in, so tests can
point a `Cgroup` at a directory of plain files.
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


def _parse_bytes(text):
    text = text.strip()
    return UNLIMITED if text == "max" else min(int(text), UNLIMITED)


class Cgroup:
    """One memory cgroup directory of either version."""

    def __init__(self, path, version):
        self.path = path
        self.version = version
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
        """Purging keeps usage under `soft`; past `hard` the kernel must not
        kill yet.  v2: memory.high = soft (throttle), memory.max = hard.
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
        for version, root in ((2, v2_root()), (1, v1_root())):
            if root:
                found.append(cls(os.path.join(root, own_path(version).lstrip("/"), name),
                                 version))
        return found

    def make(self):
        """mkdir the group; False if we may not (or the hierarchy refuses)."""
        try:
            os.mkdir(self.path)
            return True
        except OSError:
            return False

    @classmethod
    def create(cls, name):
        """A new child of our own memory cgroup (v2 preferred); None if neither
        hierarchy has the memory controller or we may not create one."""
        for group in cls.candidates(name):
            if group.make():
                return group
        return None

    def remove(self, timeout=2.0):
        """rmdir once its tasks are gone (they may take a moment to leave)."""
        self.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
