"""vrange-report: plot a `vrange-run --trace FILE` log (docs/trace.md).

    vrange-report trace.jsonl -o run.png      # or .svg, or .html

Two halves.  `load` and `timeline` turn the events into per-process series
of (t, value) points and need nothing but the standard library, so they
can be tested (and reused, e.g. by a notebook) without matplotlib.
`figure`, `render` and `html_page` draw those series with matplotlib's Agg
backend, imported only when a picture is asked for.

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
import argparse
import html
import io
import json
import os
import shlex
import sys
from dataclasses import dataclass, field

from . import trace
from .report import human

MiB = 1 << 20
FORMATS = ("png", "svg", "html")
WHY_COLOURS = {"pressure": "tab:purple", "signal": "tab:green"}
LABELLED_PURGES = 6      # a row with more purges than this gets no text per purge line
LABELLED_EVENTS = 8      # same for groups of fork/exec/exit notes


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
            "first": p.first, "end": p.end, "exit": _exit_text(p.how, p.value)})
    return rows


def _exit_text(how, value):
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


# --- drawing (matplotlib) --------------------------------------------------


def _mib(series):
    return [t for t, _ in series], [v / MiB for _, v in series]


def _step(ax, series, until, **kw):
    """Draw a step series holding its last value until `until`."""
    if not series:
        return None
    xs, ys = _mib(series)
    if until is not None and until > xs[-1]:
        xs, ys = xs + [until], ys + [ys[-1]]
    line, = ax.step(xs, ys, where="post", **kw)
    ax.fill_between(xs, ys, step="post", color=kw.get("color"), alpha=0.12, linewidth=0)
    return line


def _nearby(notes, within):
    """[(t, text)] sorted by t, grouped so that each group spans < `within`.

    >>> _nearby([(0, "a"), (1, "b"), (5, "c")], 2)
    [[(0, 'a'), (1, 'b')], [(5, 'c')]]
    """
    groups = []
    for note in notes:
        if groups and note[0] - groups[-1][0][0] < within:
            groups[-1].append(note)
        else:
            groups.append([note])
    return groups


def _process_row(ax, p, run):
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    end = p.end if p.end is not None else run.t_end
    # outside the process's life: shaded
    if p.first > 0:
        ax.axvspan(0, p.first, color="0.92", linewidth=0, zorder=0)
    if end < run.t_end:
        ax.axvspan(end, run.t_end, color="0.92", linewidth=0, zorder=0)
    handles = []
    if p.rss:
        xs, ys = _mib(p.rss)
        # measured only at samples (100 ms) and purges: dots, joined by a dotted line
        line, = ax.plot(xs, ys, color="tab:blue", linewidth=1.2, linestyle=":",
                        marker="o" if len(xs) < 300 else None, markersize=4,
                        label="RSS, anonymous (sampled)", gid=f"rss-{p.pid}")
        handles.append(line)
    line = _step(ax, p.volatile, end, color="tab:orange", linewidth=1.6,
                 label="volatile", gid=f"volatile-{p.pid}")
    if line:
        handles.append(line)
    line = _step(ax, p.purged, end, color="tab:red", linewidth=1.6,
                 label="purged (still volatile)", gid=f"purged-{p.pid}")
    if line:
        handles.append(line)

    top = blended_transform_factory(ax.transData, ax.transAxes)
    by_why = {}
    for t, why, nbytes in p.purges:
        by_why.setdefault(why, []).append((t, nbytes))
    for why, items in by_why.items():
        colour = WHY_COLOURS.get(why, "tab:brown")
        many = len(p.purges) > 30
        ax.vlines([t for t, _ in items], 0, 1, transform=top, colors=colour,
                  linestyles="dashed", linewidth=0.6 if many else 1, alpha=0.4 if many else 0.7,
                  zorder=1,
                  gid=f"purges-{why}-{p.pid}")
        handles.append(Line2D([], [], color=colour, linestyle="dashed",
                              label=f"purge: {why} (x{len(items)})"))
    if len(p.purges) <= LABELLED_PURGES:
        for t, why, nbytes in p.purges:
            ax.annotate(f"purge ({why})\n{human(nbytes)}", xy=(t, 0.5), xycoords=top,
                        xytext=(3, 0), textcoords="offset points", fontsize=7,
                        color=WHY_COLOURS.get(why, "tab:brown"), va="center")
    if p.sigbus:
        ax.plot([t for t, _, _ in p.sigbus], [0.04] * len(p.sigbus), transform=top,
                         linestyle="none", marker="X", markersize=7, color="black",
                         gid=f"sigbus-{p.pid}", clip_on=False, zorder=5)
        handles.append(Line2D([], [], linestyle="none", marker="X", color="black",
                              label=f"SIGBUS (x{len(p.sigbus)})"))

    # where the process came from, what it ran and made, how it ended
    notes = []
    if p.born:
        notes.append((p.first, f"{p.born} of {p.parent}"))
    notes += [(t, f"exec {name}") for t, name in p.programs]
    notes += [(t, f"{kind} -> {child}") for t, child, kind in p.children]
    if p.end is not None:
        notes.append((p.end, _exit_text(p.how, p.value) or "gone"))
    notes.sort(key=lambda n: n[0])
    if notes:
        ax.plot([t for t, _ in notes], [1.0] * len(notes), transform=top, linestyle="none",
                marker="v", markersize=6, color="0.35", clip_on=False, zorder=5,
                gid=f"lifecycle-{p.pid}")
        handles.append(Line2D([], [], linestyle="none", marker="v", color="0.35",
                              label="fork / exec / exit"))
        groups = _nearby(notes, 0.1 * run.t_end)
        if len(groups) <= LABELLED_EVENTS:
            for group in groups:
                t = group[0][0]
                texts = [text for _, text in group]
                if len(texts) > 5:
                    texts = texts[:4] + [f"... {len(texts) - 4} more"]
                right = t > 0.75 * run.t_end      # near the right edge: text to the left
                ax.annotate("\n".join(texts), xy=(t, 1.0), xycoords=top,
                            xytext=(-4 if right else 4, -4), textcoords="offset points",
                            fontsize=7, color="0.25", va="top",
                            ha="right" if right else "left")

    origin = f", {p.born} of pid {p.parent}" if p.born else ""
    ax.set_title(f"pid {p.pid}: {p.ran}{origin}",
                 loc="left", fontsize=9)
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ymax = ax.get_ylim()[1]
    ax.set_ylim(0, ymax * 1.25 if ymax > 0 else 1)   # room for the notes at the top
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)


def _pressure_row(ax, pr, run):
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    scale = 1 if pr.psi else MiB
    xs = [t for t, _ in pr.usage]
    ys = [v / scale for _, v in pr.usage]
    if xs and run.t_end > xs[-1]:
        xs, ys = xs + [run.t_end], ys + [ys[-1]]
    label = ("memory stall (us per poll, PSI)" if pr.psi else
             "usage (summed RSS)" if pr.source.startswith("RSS budget") else
             "usage (cgroup memory)")
    handles = []
    line, = ax.step(xs, ys, where="post", color="tab:blue", linewidth=1.4, label=label,
                    gid="pressure-usage")
    if len(pr.usage) < 300:     # the readings themselves (polled: none in between)
        ax.plot(xs[:len(pr.usage)], ys[:len(pr.usage)], linestyle="none", marker=".",
                markersize=4, color="tab:blue")
    handles.append(line)
    styles = {"limit": ("black", "solid", "limit"),
              "high": ("tab:red", "dashed", "high mark (purging starts)"),
              "low": ("tab:green", "dashed", "low mark (purged down to)")}
    for name, (colour, style, text) in styles.items():
        series = getattr(pr, name)
        if any(v for _, v in series):
            sx = [t for t, _ in series] + [run.t_end]
            sy = [v / scale for _, v in series] + [series[-1][1] / scale]
            line, = ax.step(sx, sy, where="post", color=colour, linestyle=style,
                            linewidth=1.1, label=text)
            handles.append(line)
    if pr.need:
        top = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot([t for t, _ in pr.need], [0.96] * len(pr.need), transform=top,
                linestyle="none", marker="v", markersize=5, color="tab:purple",
                gid="pressure-need")
        handles.append(Line2D([], [], linestyle="none", marker="v", color="tab:purple",
                              label=f"reading asked for a purge (x{len(pr.need)})"))
    ax.set_title(f"memory pressure: {pr.source}", loc="left", fontsize=9)
    ax.set_ylabel("stall us / poll" if pr.psi else "MiB")
    top = max([v for _, v in pr.usage + pr.limit + pr.high] + [0]) / scale
    ax.set_ylim(0, max(top * 1.12, 1))
    if pr.psi:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)


def figure(run, most=8):
    """A matplotlib Figure: one row per process (at most `most`), then the
    pressure readings, on one time axis in seconds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    procs = shown(run, most)
    rows = len(procs) + (run.pressure is not None)
    rows = max(rows, 1)
    # constrained_layout=True: understood by every matplotlib since 3.5 (install_requires)
    fig = Figure(figsize=(11, 1.3 + 2.4 * rows), constrained_layout=True)
    FigureCanvasAgg(fig)   # Agg without pyplot: no window, no global backend switch
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax, p in zip(axes, procs):
        _process_row(ax, p, run)
    if run.pressure is not None:
        _pressure_row(axes[len(procs)], run.pressure, run)
    if not procs and run.pressure is None:
        axes[0].text(0.5, 0.5, "no process or pressure events in this trace",
                     transform=axes[0].transAxes, ha="center", va="center")
    axes[-1].set_xlabel("time since vrange-run started (s)")
    axes[-1].set_xlim(0, max(run.t_end, 1e-3) * 1.01)
    fig.suptitle(run.title, fontsize=12, fontweight="bold")
    fig.supxlabel(_subtitle(run, len(procs)), fontsize=8, color="0.3")
    return fig


def _subtitle(run, drawn):
    parts = []
    s = run.start
    if s:
        parts.append(f"ABI {s.get('abi')}, trap {s.get('trap')}")
        if s.get("limit"):
            parts.append(f"limit {human(s['limit'])}")
    parts.append(f"pressure: {run.pressure.source if run.pressure else 'none read'}")
    parts.append(_exit_text(run.how, run.value) or "no end event (trace cut short?)")
    parts.append(f"{run.events} events")
    hidden = len(run.processes) - drawn
    if hidden:
        parts.append(f"{hidden} more process(es) not drawn (see --max-processes)")
    return " | ".join(parts)


def render(run, out, fmt, most=8):
    """Write the plot of `run` to path `out` as png, svg or html."""
    fig = figure(run, most)
    if fmt == "html":
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        text = html_page(run, buf.getvalue(), most)
        with open(out, "w") as f:
            f.write(text)
    elif fmt == "svg":
        fig.savefig(out, format="svg", metadata={"Date": None})
    else:
        fig.savefig(out, format=fmt, dpi=110)


def html_page(run, svg, most=8):
    """A self-contained page: the SVG inlined and a table of per-process totals."""
    svg = svg[svg.index("<svg"):]      # drop the XML declaration and DOCTYPE
    head = ("pid", "program", "parent", "calls", "errors", "made volatile", "peak volatile",
            "purges", "purged", "answered purged", "SIGBUS", "peak RSS", "end")
    rows = []
    for r in totals(run):
        cells = (r["pid"], r["program"], "" if r["parent"] is None else r["parent"],
                 r["calls"], r["errors"], human(r["marked_bytes"]), human(r["peak_volatile"]),
                 r["purges"], human(r["purged_bytes"]), r["purged_answers"], r["sigbus"],
                 "" if r["peak_rss"] is None else human(r["peak_rss"]), r["exit"])
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                    + "</tr>")
    title = html.escape(run.title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vrange-report: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; }}
table {{ border-collapse: collapse; font-size: 90%; }}
th, td {{ border: 1px solid #bbb; padding: 2px 8px; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; }}
th {{ background: #eee; }}
svg {{ max-width: 100%; height: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{html.escape(_subtitle(run, len(shown(run, most))))}</p>
<h2>Per-process totals</h2>
<table id="totals">
<tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>
{chr(10).join(rows)}
</table>
<p>made volatile: bytes marked volatile, summed over calls; purged: bytes discarded by
purges; answered purged: NONVOLATILE calls that answered "purged".</p>
<h2>Timeline</h2>
{svg}
</body>
</html>
"""


# --- the command -----------------------------------------------------------

DESCRIPTION = """\
Plot a vrange-run --trace FILE (docs/trace.md): one row per process, on one
time axis in seconds, showing its anonymous RSS, its volatile bytes and the
bytes purged from them (MiB), each purge (a dashed line, coloured and
labelled by what asked for it: memory pressure or SIGUSR1), each SIGBUS
delivery (X), and its fork/exec/exit (triangles). A last row shows the
pressure readings against the high/low marks and the limit (for PSI: memory
stall microseconds per poll)."""

EPILOG = """\
The output format comes from OUT's extension: .png, .svg, or .html (a
self-contained page with the SVG inlined and a table of per-process totals).
Exit status: 0 on success, 1 if FILE is not a readable trace or OUT cannot be
written, 2 for a usage error.

example:
  vrange-run --trace run.jsonl --memory-limit 64M ./my-cache
  vrange-report run.jsonl -o run.html
"""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="vrange-report", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="a trace written by vrange-run --trace FILE")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write the plot: .png, .svg or .html "
                             "(default: FILE with .png)")
    parser.add_argument("--max-processes", metavar="N", type=_positive, default=8,
                        help="draw at most N process rows: those that made vrange calls, "
                             "were purged or got SIGBUS first, then the longest-lived "
                             "(default: 8)")
    opts = parser.parse_args(argv)
    if opts.output is None:
        opts.output = os.path.splitext(opts.file)[0] + ".png"
    ext = os.path.splitext(opts.output)[1].lower().lstrip(".")
    if ext not in FORMATS:
        parser.error(f"-o {opts.output}: unknown output type "
                     f"{'.' + ext if ext else '(no extension)'}; use .png, .svg or .html")
    opts.format = ext
    return opts


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return n


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        events = load(opts.file)
        try:
            run = timeline(events)
        except TraceError as exc:
            raise TraceError(f"{opts.file}: {exc}") from None
    except TraceError as exc:
        print(f"vrange-report: {exc}", file=sys.stderr)
        return 1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("vrange-report: needs matplotlib (python3 -m pip install 'matplotlib>=3.5')",
              file=sys.stderr)
        return 1
    try:
        render(run, opts.output, opts.format, opts.max_processes)
    except OSError as exc:
        print(f"vrange-report: {opts.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
