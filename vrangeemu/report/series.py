"""A trace's events as per-process series: what vrange-report draws.

`load` and `timeline` turn the events into per-process series of (t, value)
points and need nothing but the standard library, so they can be tested
(and reused, e.g. by a notebook) without matplotlib.

A step series holds each value until its next point: volatile and purged
bytes change only at the events that report them (call, purge, sample).
Two points are implied rather than reported: an exec starts a process at 0
volatile and 0 purged bytes (the new image has no ranges), and a fork child
starts with its parent's last values if it inherited ranges (a fork event
gives only how many ranges, and a child inherits all of them), else at 0.

>>> run = timeline([
...     {"t": 0.0, "ev": "start", "argv": ["prog"], "pid": 7},
...     {"t": 0.1, "ev": "exec", "pid": 7, "program": "prog"},
...     {"t": 0.2, "ev": "call", "pid": 7, "tid": 7, "mode": "volatile", "start": 0,
...      "len": 8192, "ret": 8192, "errno": 0, "purged": False, "path": "native",
...      "volatile": 8192, "purged_bytes": 0},
...     {"t": 0.3, "ev": "purge", "pid": 7, "tid": 7, "why": "signal", "runs": [[0, 8192]],
...      "bytes": 8192, "rss_anon": 40960, "volatile": 8192, "purged_bytes": 8192, "usage": 0}])
>>> p = run.processes[7]
>>> p.volatile, p.purged, p.rss
([(0.1, 0), (0.2, 8192), (0.3, 8192)], [(0.1, 0), (0.2, 0), (0.3, 8192)], [(0.3, 40960)])
"""
import json
import os
import shlex
from dataclasses import dataclass, field

from ..observe import trace
from ..observe.stats import human


class TraceError(Exception):
    """The file is not a usable trace; the message is one line for the user."""


@dataclass
class Process:
    """One address space (a thread group), as the trace saw it."""
    pid: int
    first: float                       # t of its first event (fork, exec, ...)
    parent: int | None = None
    born: str = ""                     # "fork", "vfork" or "" (the traced program, or unknown)
    programs: list = field(default_factory=list)    # [(t, name)] of each exec
    inherited: str = ""                # a fork child's program before any exec
    end: float | None = None           # t of its last space_end
    how: str | None = None             # its leader's exit: "exited" / "killed"
    value: int | None = None
    rss: list = field(default_factory=list)         # [(t, bytes)] RssAnon
    volatile: list = field(default_factory=list)    # [(t, bytes)] step series
    purged: list = field(default_factory=list)      # [(t, bytes)] step series
    purges: list = field(default_factory=list)      # [(t, why, bytes)]
    sigbus: list = field(default_factory=list)      # [(t, addr, purged)]
    children: list = field(default_factory=list)    # [(t, pid, "fork"|"vfork")]
    calls: int = 0
    errors: int = 0
    purged_answers: int = 0            # NONVOLATILE calls that answered "purged"
    marked_bytes: int = 0              # bytes made volatile, summed over calls

    @property
    def name(self):
        return self.programs[-1][1] if self.programs else self.inherited or "?"

    @property
    def ran(self):
        """What it ran, in order: "sh -> sleep"."""
        names = ([self.inherited] if self.inherited else []) + [n for _, n in self.programs]
        return " -> ".join(names) or "?"

    @property
    def active(self):
        """Did anything vrange-related happen to it?"""
        return bool(self.calls or self.purges or self.sigbus
                    or any(v for _, v in self.volatile))


@dataclass
class Pressure:
    """The pressure source's readings (one source for the whole run)."""
    source: str
    psi: bool                                        # usage is stall us per poll, not bytes
    usage: list = field(default_factory=list)        # [(t, value)]
    high: list = field(default_factory=list)         # [(t, value)] as read (they may move)
    low: list = field(default_factory=list)
    limit: list = field(default_factory=list)
    need: list = field(default_factory=list)         # [(t, bytes)] readings that asked for a purge


@dataclass
class Run:
    argv: list
    start: dict                       # the start event ({} if the trace has none)
    processes: dict                   # pid -> Process, in order of first appearance
    pressure: Pressure | None
    t_end: float                      # the end event's t, else the last event's
    how: str | None = None            # the program's own end (the end event)
    value: int | None = None
    events: int = 0

    @property
    def title(self):
        return shlex.join(str(a) for a in self.argv) if self.argv else "(no start event)"


def load(path):
    """The events of trace file `path`; TraceError (one line) if it is not one."""
    try:
        events = trace.read(path)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: not a vrange-run --trace file (a line is not JSON: "
                         f"{exc.msg})") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a vrange-run --trace file (not text)") from None
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    if not events:
        size = os.path.getsize(path)
        raise TraceError(f"{path}: empty file" if size == 0 else
                         f"{path}: no events (not a vrange-run --trace file?)")
    for i, e in enumerate(events, 1):
        if not (isinstance(e, dict) and isinstance(e.get("ev"), str)
                and isinstance(e.get("t"), (int, float)) and not isinstance(e.get("t"), bool)):
            raise TraceError(f"{path}: event {i} is not a trace event (an object with "
                             f"\"t\" and \"ev\"): not a vrange-run --trace file?")
    return events


def timeline(events):
    """Per-process series and the pressure readings of a trace's events.

    Raises TraceError if an event lacks a field docs/trace.md gives it."""
    b = _Builder()
    for n, e in enumerate(events, 1):
        try:
            b.add(e)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = (f"lacks the field {exc}" if isinstance(exc, KeyError) else
                    f"has a bad field ({exc})")
            raise TraceError(f"event {n} ({e.get('ev')}) {what} (see docs/trace.md)") from None
    end = b.end
    t_end = end["t"] if end else max(e["t"] for e in events)
    return Run(argv=list(b.start.get("argv") or []), start=b.start, processes=b.procs,
               pressure=b.pressure, t_end=t_end, how=end and end["how"],
               value=end and end["value"], events=len(events))


class _Builder:
    def __init__(self):
        self.procs = {}
        self.vfork_tids = {}   # tid of a vfork/CLONE_VM child -> parent pid: a process at exec
        self.start = {}
        self.pressure = None
        self.end = None

    def proc(self, pid, t):
        p = self.procs.get(pid)
        if p is None:
            p = self.procs[pid] = Process(int(pid), t)
            if pid in self.vfork_tids:
                p.parent, p.born = self.vfork_tids.pop(pid), "vfork"
        return p

    def add(self, e):
        t, ev = e["t"], e["ev"]
        if ev == "start":
            self.start = e
        elif ev == "exec":
            p = self.proc(e["pid"], t)
            p.programs.append((t, str(e["program"])))
            p.volatile.append((t, 0))        # a new image has no volatile ranges
            p.purged.append((t, 0))
        elif ev == "fork":
            parent = self.proc(e["parent"], t)
            p = self.proc(e["pid"], t)
            p.parent, p.born = e["parent"], "fork"
            if parent.name != "?":
                p.inherited = parent.name
            if e["ranges"] == 0:
                p.volatile.append((t, 0))
                p.purged.append((t, 0))
            elif parent.volatile:            # a copy of all the parent's ranges
                p.volatile.append((t, parent.volatile[-1][1]))
                p.purged.append((t, parent.purged[-1][1]))
            parent.children.append((t, e["pid"], "fork"))
        elif ev == "clone":
            if e["vfork"]:                   # becomes a process of its own when it execs
                self.vfork_tids[e["tid"]] = e["parent"]
                self.proc(e["parent"], t).children.append((t, e["tid"], "vfork"))
        elif ev == "call":
            p = self.proc(e["pid"], t)
            p.calls += 1
            p.errors += e["ret"] < 0
            p.purged_answers += bool(e["purged"])
            if e["mode"] == "volatile" and e["ret"] >= 0:
                p.marked_bytes += e["len"]
            p.volatile.append((t, e["volatile"]))
            p.purged.append((t, e["purged_bytes"]))
        elif ev == "purge":
            p = self.proc(e["pid"], t)
            p.purges.append((t, str(e["why"]), e["bytes"]))
            p.rss.append((t, e["rss_anon"]))
            p.volatile.append((t, e["volatile"]))
            p.purged.append((t, e["purged_bytes"]))
        elif ev == "sample":
            p = self.proc(e["pid"], t)
            p.rss.append((t, e["rss"]))
            p.volatile.append((t, e["volatile"]))
            p.purged.append((t, e["purged_bytes"]))
        elif ev == "sigbus":
            self.proc(e["pid"], t).sigbus.append((t, e["addr"], bool(e["purged"])))
        elif ev == "lock":
            self.proc(e["pid"], t)
        elif ev == "exit":
            p = self.procs.get(e["tid"])     # a leader's exit is its process's
            if p is not None:
                p.how, p.value = e["how"], e["value"]
        elif ev == "space_end":
            p = self.proc(e["pid"], t)
            p.end = t
            if not p.programs and not p.inherited and e.get("program"):
                p.inherited = str(e["program"])
        elif ev == "pressure":
            if self.pressure is None:
                source = str(e["source"])
                self.pressure = Pressure(source, source.startswith("PSI"))
            pr = self.pressure
            pr.usage.append((t, e["usage"]))
            for name in ("high", "low", "limit"):
                getattr(pr, name).append((t, e[name] or 0))
            if e["need"]:
                pr.need.append((t, e["need"]))
        elif ev == "end":
            self.end = e
        # other kinds (a newer vrange-run): ignored


def totals(run):
    """One row per process: what the HTML table (and a reader) wants to know."""
    rows = []
    for p in run.processes.values():
        rows.append({
            "pid": p.pid, "program": p.ran,
            "parent": p.parent, "calls": p.calls, "errors": p.errors,
            "marked_bytes": p.marked_bytes,
            "peak_volatile": max((v for _, v in p.volatile), default=0),
            "purges": len(p.purges), "purged_bytes": sum(b for _, _, b in p.purges),
            "purged_answers": p.purged_answers, "sigbus": len(p.sigbus),
            "peak_rss": max((v for _, v in p.rss), default=None),
            "first": p.first, "end": p.end, "exit": exit_text(p.how, p.value)})
    return rows


def exit_text(how, value):
    """How a process (or the run) ended, for a reader; "" if unknown."""
    if how == "exited":
        return f"exit {value}"
    if how == "killed":
        return f"killed by signal {value}"
    return ""


def shown(run, most):
    """The processes to draw (at most `most`), in order of appearance:
    those where vrange things happened first, then the longest-lived."""
    procs = list(run.processes.values())
    if len(procs) <= most:
        return procs
    def dull(p):   # no vrange activity, then short-lived
        return (not p.active, -((p.end if p.end is not None else run.t_end) - p.first))
    keep = {p.pid for p in sorted(procs, key=dull)[:most]}
    return [p for p in procs if p.pid in keep]


def subtitle(run, drawn):
    """One line on how the run went, under the figure and the page's title."""
    parts = []
    s = run.start
    if s:
        parts.append(f"ABI {s.get('abi')}, trap {s.get('trap')}")
        if s.get("limit"):
            parts.append(f"limit {human(s['limit'])}")
    parts.append(f"pressure: {run.pressure.source if run.pressure else 'none read'}")
    parts.append(exit_text(run.how, run.value) or "no end event (trace cut short?)")
    parts.append(f"{run.events} events")
    hidden = len(run.processes) - drawn
    if hidden:
        parts.append(f"{hidden} more process(es) not drawn (see --max-processes)")
    return " | ".join(parts)
