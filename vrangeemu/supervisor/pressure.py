"""Pressure sources: when to purge, and how many bytes.

Each source answers `need()`: bytes to free now (0 when all is well), and
`timeout()`: seconds until it wants to be asked again; `fds` are eventfds
(or PSI trigger fds) that wake the loop at once.  The supervisor turns a need
into victims (model.purge.choose_victims) and purges them.  A source can
also ask to be read before a vrange call is answered (`at_call`,
`call_budget`): the RSS budget, which no kernel limit backs, uses the
program's own calls as checkpoints.
"""
import os
import re

from ..linux import cgroup_watchdog
from ..linux.cgroup import UNLIMITED, Cgroup

MiB = 1 << 20
IDLE_POLL = 0.1     # far from the watermark: cheap
MAX_RELIEFS = 3     # times paused tasks get room before the kernel decides
BUSY_POLL = 0.01    # within reach of it: react within ~10 ms


def watermarks(limit):
    """(high, low) for a byte limit: purge from high down to low (as
    kswapd's watermarks: background purging keeps tasks off the limit).

    >>> [round(v / 2**20, 1) for v in watermarks(64 << 20)]
    [57.6, 49.6]
    >>> [v >> 10 for v in watermarks(1 << 20)]    # KiB: small limits keep room
    [768, 512]
    """
    high = limit - max(limit // 10, min(2 * MiB, limit // 4))
    return high, max(high - max(limit // 8, min(2 * MiB, limit // 4)), 0)


def parse_size(text):
    """'64M', '1g', '4096' -> bytes.

    >>> parse_size("64M"), parse_size("1g"), parse_size("512k"), parse_size("4096")
    (67108864, 1073741824, 524288, 4096)
    """
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 64M, 1G)")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


class Readings:
    """What a source saw, for --stats: checks, times over the high mark,
    the largest reading, and how often the real limit was enforced."""

    def __init__(self, source, limit, high, low):
        self.source, self.limit, self.high, self.low = source, limit, high, low
        self.checks = self.over_high = self.max_usage = self.enforced = 0
        self.last_usage = 0
        self.group_peak = None   # an owned cgroup's peak usage, read when it goes

    def saw(self, usage, over):
        self.checks += 1
        self.last_usage = usage
        self.over_high += over
        self.max_usage = max(self.max_usage, usage)

    def as_dict(self):
        return dict(vars(self))


class _Source:
    """What the loop asks of every pressure source besides need() and
    timeout(): by default nothing is held, so there is nothing to give back."""
    fds = ()
    prepares = False   # start purger threads early (a limit tasks pause at)

    def exhausted(self):
        """Nothing volatile is left to free."""

    def nothing_to_purge(self):
        """Over the mark with nothing volatile left."""
        self.exhausted()

    def still_paused(self):
        """A purge was asked for: tasks may still be paused at a limit."""

    def at_call(self, tgid, rss):
        """Before a vrange call of process `tgid` is answered: True if the
        source must be read first (`rss()`: that process's resident bytes now)."""
        return False

    def call_budget(self):
        """(high, {tgid: resident bytes at the last reading}): a vrange call
        waits for a reading once its process's RSS and the others' reach
        `high` (0: calls need not wait now); None if calls are not checked."""
        return None

    def close(self):
        pass


class _UsageSource(_Source):
    """Bytes in use against a limit's watermarks: purge from the high mark
    down to the low one; poll fast only within reach of the high mark."""

    def __init__(self, name, limit):
        self.name = name
        self.limit = limit
        self.high, self.low = watermarks(limit)
        self.readings = Readings(name, limit, self.high, self.low)
        self.fds = []
        self._usage = 0

    def over(self, usage):
        """Record a reading; bytes to free (0 below the high mark)."""
        self._usage = usage
        self.readings.saw(usage, usage >= self.high)
        return usage - self.low if usage >= self.high else 0

    def timeout(self):
        return BUSY_POLL if self._usage >= self.high // 2 else IDLE_POLL


class CgroupSource(_UsageSource):
    """A memory cgroup's usage against watermarks (v2 or v1).

    If `limit` is ours to enforce (--memory-limit), the cgroup is held at
    it with the OOM killer off (v1; v2 memory.high at it, memory.max just
    above, and a task throttled at memory.high, counted in memory.events,
    asks for a purge at once) while volatile memory remains, as direct reclaim would: a
    task that reaches it waits until a purge (through the program's purger
    thread, which a paused task does not hold up) makes room.  The kernel
    enforces the limit for real once nothing is left to purge (`exhausted`).  An owned group has a `watchdog`
    (linux/cgroup_watchdog.py) that gives it the real limit back and removes
    it if vrange-run dies."""

    def __init__(self, cgroup, limit, owned=False, log=print, warn=print, watchdog=None):
        super().__init__(f"cgroup v{cgroup.version} {cgroup.path}", limit)
        self.cgroup = cgroup
        self.warn = warn
        self.hard = limit if cgroup.version == 1 else limit + max(limit // 16, 2 * MiB)
        self.owned = owned
        self.watchdog = watchdog
        self.log = log
        self.reliefs = 0        # v1: times the hard limit was raised to let paused tasks go
        self.enforced = False
        self.prepares = owned and cgroup.version == 1
        self._high_events = 0
        if owned:
            cgroup.hold_at(self.limit, self.hard)
            self.fds = cgroup.event_fds(self.high)
            self._high_events = cgroup.high_events()

    def need(self):
        usage = self.cgroup.usage()
        need = self.over(usage)
        if self.owned and self.cgroup.version == 2 and not self.enforced:
            events = self.cgroup.high_events()
            if events != self._high_events:   # tasks wait at SIZE: purge now
                self._high_events = events
                need = max(need, usage - self.low)
        if not need:
            if self.reliefs:
                self.cgroup.raise_hard(self.hard)
                self.reliefs = 0
            if self.enforced:   # room again: purging, not killing, comes first
                self.cgroup.hold_at(self.limit, self.hard)
                self.enforced = False
            return 0
        return need

    def nothing_to_purge(self):
        """Over the high mark with nothing volatile left.  v1 (held at SIZE):
        the kernel decides only once a task is stuck at the limit, as its
        OOM killer would; meanwhile the program may mark memory volatile
        again.  Elsewhere the limit is enforced now."""
        if self.owned and self.cgroup.version == 1 and not self.cgroup.under_oom():
            return
        self.exhausted()

    def still_paused(self):
        """After a purge was asked for: tasks still paused at the limit (no
        purger thread could reach their memory, and a paused task sleeps
        killable, so it cannot be stopped for one) get room a few times,
        taken back after; if they keep outrunning us, the kernel decides:
        nobody may stay paused for ever."""
        if not (self.owned and not self.enforced and self.cgroup.under_oom()):
            return
        if self.reliefs < MAX_RELIEFS:
            self.reliefs += 1
            self.cgroup.raise_hard(self.hard + self.reliefs * max(self.hard // 8, 4 * MiB))
            self.log("tasks paused at the limit: limit raised for a moment to purge")
        else:
            self.exhausted()

    def peak(self):
        """The group's peak usage in bytes (v1 memory.max_usage_in_bytes,
        v2 memory.peak), or None where the kernel has no such file."""
        try:
            return int(self.cgroup.read("memory.max_usage_in_bytes" if self.cgroup.version == 1
                                        else "memory.peak"))
        except (OSError, ValueError):
            return None

    def exhausted(self):
        """Nothing volatile is left to free: let the kernel enforce the limit."""
        if self.owned and not self.enforced:
            self.enforced = True
            self.readings.enforced += 1
            self.warn(f"nothing volatile left to purge: the {self.limit >> 20} MiB limit is "
                      "now enforced by the kernel")
            self.cgroup.enforce(self.limit)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.cgroup.close()
        if not self.owned:
            return
        self.readings.group_peak = self.peak()
        if self.cgroup.remove():
            if self.watchdog:
                self.watchdog.done()
            return
        # Processes outlived the program (or are slow to leave): the kernel
        # enforces the limit on them, and the watchdog removes the group once
        # they are gone.
        try:
            self.cgroup.enforce(self.limit)
        except OSError:
            pass
        if self.watchdog:
            self.watchdog.release()
            self.warn(f"{self.cgroup.path} still has processes: the {self.limit >> 20} MiB "
                      "limit is enforced on them and the group goes once they are gone")
        else:
            self.warn(f"could not remove {self.cgroup.path}")


class BudgetSource(_UsageSource):
    """Summed RSS of the traced processes against a budget (no cgroup).

    Best effort: no kernel limit stands behind it.  The sum is read every
    10-100 ms (`timeout`) and at the program's own vrange calls: once the
    caller's RSS now and the others' as last seen reach the high mark, the
    call waits until the sum is read and purged down to the low mark, as
    direct reclaim makes an allocation wait.  So a program that marks what
    it allocated volatile stays under SIZE; one that allocates without
    calling vrange can outrun the readings.  COW-shared pages count once per
    process, as RSS does.

    `rss()` gives {tgid: resident bytes} of the traced processes now."""

    def __init__(self, limit, rss, log=print):
        super().__init__(f"RSS budget {limit >> 20} MiB", limit)
        self.rss = rss
        self._last = {}         # tgid -> resident bytes as last seen
        self._stuck = False     # the last reading found nothing volatile to purge

    def usage(self):
        self._last = self.rss()
        return sum(self._last.values())

    def need(self):
        self._stuck = False
        return self.over(self.usage())

    def nothing_to_purge(self):
        """Over the high mark with nothing volatile left: calls go on
        unchecked (checking them would only slow them down) until a reading
        finds something to purge or usage below the high mark."""
        self._stuck = True

    def at_call(self, tgid, rss):
        """True if `tgid`'s RSS now and the others' as last seen reach the
        high mark."""
        if self._stuck:
            return False
        self._last[tgid] = rss()
        return sum(self._last.values()) >= self.high

    def call_budget(self):
        return 0 if self._stuck else self.high, dict(self._last)


class PsiSource(_Source):
    """Memory stall time (PSI `some` total) growing fast: purge a slice.

    PSI says that tasks wait for memory, not how much memory: each time the
    stall grows by more than `threshold_us` between two polls (1 ms: the
    kernel patches gave volatile pages up first, at the first reclaim), a
    slice of the volatile memory (a quarter, at least 16 MiB) goes.  Polls every
    100 ms while nothing stalls, every 50 ms once stalls grow.  The
    total is polled rather than armed as a PSI trigger: without
    CAP_SYS_RESOURCE a trigger's window must be a multiple of 2 s, far
    slower than the ~100 ms this engine aims for."""

    def __init__(self, path, volatile_bytes, threshold_us=1_000, log=print):
        self.path = path
        self.volatile_bytes = volatile_bytes
        self.threshold_us = threshold_us
        self.name = f"PSI {path}"
        self.fds = []
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._last = self._total()
        self._grown = 0
        self.readings = Readings(self.name, 0, threshold_us, 0)   # in stall us per poll

    def _total(self):
        text = os.pread(self._fd, 4096, 0).decode()
        return int(re.search(r"^some .*total=(\d+)", text, re.M).group(1))

    def need(self):
        total = self._total()
        grown, self._last = total - self._last, total
        self._grown = grown
        self.readings.saw(grown, grown >= self.threshold_us)   # usage: stall us per poll
        if grown < self.threshold_us:
            return 0
        return max(self.volatile_bytes() // 4, 16 * MiB)

    def timeout(self):
        return BUSY_POLL * 5 if self._grown else IDLE_POLL

    def close(self):
        os.close(self._fd)


def own_cgroup_source(log):
    """The cgroup we run in, if it has a memory limit (v2 first), else None."""
    from ..linux import cgroup as cg
    for version, root in ((2, cg.v2_root()), (1, cg.v1_root())):
        if not root:
            continue
        group = Cgroup(os.path.join(root, cg.own_path(version).lstrip("/")), version)
        try:
            soft, hard = group.limits()
        except OSError:
            continue
        limit = min(soft, hard)
        if limit < UNLIMITED:
            return CgroupSource(group, limit, owned=False, log=log)
    return None


def psi_path():
    """Our cgroup v2 memory.pressure (stalls of this cgroup only) if there is
    one, else the system's /proc/pressure/memory, else None."""
    from ..linux import cgroup as cg
    for mnt, fstype, _ in cg._mounts():
        if fstype == "cgroup2":
            path = os.path.join(mnt, cg.own_path(2).lstrip("/"), "memory.pressure")
            if os.path.exists(path):
                return path
    return "/proc/pressure/memory" if os.path.exists("/proc/pressure/memory") else None



class SetupProblem(Exception):
    """The pressure options cannot work here (message says why and what to do)."""


def _owned_cgroup(limit, log, warn):
    """A new cgroup for the program, guarded by its watchdog, as
    (CgroupSource, its cgroup.procs path); None if none can be made.

    The watchdog starts before the directory is made, so from the first
    instant a dying vrange-run leaves nothing behind: no group held with the
    OOM killer off, no directory."""
    for group in Cgroup.candidates(f"vrange-run-{os.getpid()}"):
        try:
            watchdog, why = cgroup_watchdog.start(group.path, group.version, limit), None
        except OSError as exc:
            watchdog, why = None, exc
        if group.make():
            if why:
                warn(f"no watchdog for the memory cgroup ({why}): if vrange-run is killed, "
                     f"{group.path} keeps the OOM killer off and stays behind")
            return (CgroupSource(group, limit, owned=True, log=log, warn=warn, watchdog=watchdog),
                    group.file("cgroup.procs"))
        if watchdog:
            watchdog.done()
    return None


def budget_warning(limit, fallback):
    """The one line said at the start when --memory-limit is an RSS budget."""
    size = f"{limit >> 20}M" if limit % MiB == 0 else str(limit)
    why = "no memory cgroup can be made here" if fallback else "--pressure budget"
    return (f"{why}: --memory-limit {size} is a best-effort budget on the traced processes' "
            "summed RSS (checked at their vrange calls and every 10-100 ms: a program that "
            "allocates without calling vrange can go past it).  For a real limit, run as root "
            "or in a delegated cgroup v2 subtree: systemd-run --user --scope -p Delegate=yes "
            f"vrange-run --memory-limit {size} ... (or -p MemoryMax={size} and no "
            "--memory-limit)")


def choose_source(kind, limit, tasks, log, warn):
    """The pressure source for `--pressure KIND [--memory-limit LIMIT]`.

    Returns (source or None, cgroup.procs path for the program or None).
    `tasks` (the TaskTable) gives the traced processes' rss() and
    volatile_bytes(); `log`
    takes details (-v), `warn` what the user must always hear."""
    if limit is not None:
        if kind in ("auto", "cgroup"):
            owned = _owned_cgroup(limit, log, warn)
            if owned:
                return owned
            if kind == "cgroup":
                raise SetupProblem("cannot create a memory cgroup here (no memory controller, "
                                   "or no permission): use --pressure budget")
        if kind in ("auto", "budget"):
            warn(budget_warning(limit, kind == "auto"))
            return BudgetSource(limit, tasks.rss, log=log), None
        raise SetupProblem(f"--memory-limit needs --pressure cgroup or budget, not {kind}")
    if kind == "budget":
        raise SetupProblem("--pressure budget needs --memory-limit SIZE")
    if kind in ("auto", "cgroup"):
        source = own_cgroup_source(log)
        if source or kind == "cgroup":
            if not source:
                raise SetupProblem("vrange-run's cgroup has no memory limit: give "
                                   "--memory-limit SIZE, or --pressure psi")
            return source, None
    if kind in ("auto", "psi"):
        path = psi_path()
        if path:
            return PsiSource(path, tasks.volatile_bytes, log=log), None
        if kind == "psi":
            raise SetupProblem("no /proc/pressure/memory (kernel without CONFIG_PSI, or "
                               "psi=0 on its command line)")
    return None, None
