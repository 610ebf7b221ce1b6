"""What the supervisor saw and did, as typed events: the `--trace` schema.

Components emit; the trace writer, `--live` and `--stats` subscribe.  Each
class is one kind of trace line: `KIND` is its "ev" and its fields, in
order, are the line's fields (docs/trace.md documents each).  `t` is the
time.monotonic() of the event; left None it is stamped when written.
Addresses and sizes are plain ints (bytes).

Emitting is cheap when nobody listens: hot paths ask `bus.wants(Call)`
before building the event.

>>> bus = EventBus(); seen = []
>>> bus.subscribe(seen.append, Exec)
>>> bus.wants(Exec), bus.wants(Call)
(True, False)
>>> bus.emit(Exec(pid=7, program="sh")); bus.emit(Lock(pid=7, tid=7))
>>> [type(e).KIND for e in seen]
['exec']
"""
from typing import Any, List, NamedTuple, Optional, Tuple

VERSION = 1          # of the schema in docs/trace.md, carried by Start
SAMPLE_EVERY = 0.1   # seconds between Sample events (RSS, volatile, purged per process)


class Start(NamedTuple):
    version: int         # VERSION
    argv: List[str]
    pid: int
    abi: str
    nr: int
    trap: str
    native_loop: bool
    pressure: Optional[str]
    limit: Optional[int]
    high: Optional[int]
    low: Optional[int]
    t: Optional[float] = None
    KIND = "start"


class Exec(NamedTuple):
    pid: int
    program: str
    t: Optional[float] = None
    KIND = "exec"


class Fork(NamedTuple):
    """A new process with its own copy of the parent's space."""
    parent: int
    pid: int
    tid: int
    vfork: bool
    ranges: int
    volatile: int
    purged_bytes: int
    t: Optional[float] = None
    KIND = "fork"


class Clone(NamedTuple):
    """A new task sharing its creator's space (thread, vfork child, CLONE_VM)."""
    parent: int
    pid: int
    tid: int
    vfork: bool
    ranges: int
    volatile: int
    purged_bytes: int
    t: Optional[float] = None
    KIND = "clone"


class Call(NamedTuple):
    """One answered vrange call (hot: build it only if `bus.wants(Call)`)."""
    pid: int
    tid: int
    mode: Optional[str]
    start: int
    len: int
    ret: int
    errno: int
    purged: bool
    path: str            # "native" (the C loop), "inproc" (the program's library) or "python"
    volatile: int        # of the process after the call
    purged_bytes: int
    t: Optional[float] = None
    KIND = "call"


class Lock(NamedTuple):
    pid: int
    tid: int
    t: Optional[float] = None
    KIND = "lock"


class Pressure(NamedTuple):
    source: str
    usage: int
    high: int
    low: int
    limit: int
    need: int
    t: Optional[float] = None
    KIND = "pressure"


class Purge(NamedTuple):
    pid: int
    tid: int
    why: str
    runs: List[Tuple[int, int]]
    bytes: int
    rss_anon: int
    volatile: int
    purged_bytes: int
    usage: Optional[int]
    t: Optional[float] = None
    KIND = "purge"


class Sigbus(NamedTuple):
    pid: int
    tid: int
    addr: int
    range: Optional[Tuple[int, int]]
    purged: bool
    t: Optional[float] = None
    KIND = "sigbus"


class Violation(NamedTuple):
    pid: int
    tid: int
    addr: int
    ip: int
    range: Tuple[int, int]
    marked_at: Optional[float]
    purged: bool
    action: str
    t: Optional[float] = None
    KIND = "violation"


class Sample(NamedTuple):
    pid: int
    rss: int
    volatile: int
    purged_bytes: int
    ranges: int
    t: Optional[float] = None
    KIND = "sample"


class Exit(NamedTuple):
    tid: int
    how: str
    value: int
    t: Optional[float] = None
    KIND = "exit"


class SpaceEnd(NamedTuple):
    pid: int
    program: str
    stats: Any           # model.space.Stats (the trace writes stats.as_dict())
    t: Optional[float] = None
    KIND = "space_end"


class End(NamedTuple):
    how: Optional[str]
    value: Optional[int]
    t: Optional[float] = None
    KIND = "end"


KINDS = (Start, Exec, Fork, Clone, Call, Lock, Pressure, Purge, Sigbus, Violation, Sample,
         Exit, SpaceEnd, End)


class EventBus:
    """Subscribers by event type.  Subscribers run in the emitter's thread:
    Call events of the native loop may come from its log worker, which never
    runs while the supervisor's loop does anything else."""

    def __init__(self):
        self._subscribers = {}   # event type -> [callable]

    def subscribe(self, fn, *types):
        """Call `fn(event)` for each event of `types` (all kinds if none)."""
        for kind in types or KINDS:
            self._subscribers.setdefault(kind, []).append(fn)

    def wants(self, kind):
        """True if anyone listens to `kind`: O(1), for hot paths."""
        return kind in self._subscribers

    def emit(self, event):
        for fn in self._subscribers.get(type(event), ()):
            fn(event)
