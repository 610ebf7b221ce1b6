"""--live: a terminal view of the traced processes, drawn with rich on stderr.

Three layers, so the view is testable without ptrace and cheap for the loop:

* `snapshot(sup)` copies what the view shows out of the supervisor into plain
  data (`Snapshot`): per address space its counters, a `Strip` (its volatile
  and purged intervals, for the address-space strip) and the pressure
  readings.  It runs in the supervisor's loop, so its cost is bounded: one
  /proc read per shown process (RSS), and a strip costs O(ranges) up to
  STRIP_EXACT ranges, else O(SAMPLE_CELLS log n) probes (rebuilt at most
  every SAMPLED_EVERY seconds); strips are cached while a space does not
  change and their rebuilding stops after STRIP_BUDGET seconds per refresh
  (the previous strip is shown meanwhile, marked old).
* `render(snapshot, width)` turns a snapshot into a rich renderable (pure).
* `LiveView` is the supervisor's hook (`due_in()`, `refresh(sup)`,
  `close(sup)`): `refresh` takes a snapshot every REFRESH seconds and hands
  it to a drawing thread, so rendering and a slow or blocked terminal never
  hold up the loop that answers the calls.  On a terminal the thread redraws
  in place (rich.live.Live); otherwise it prints a plain-text frame at most
  every PLAIN_EVERY seconds.
"""
import dataclasses
import os
import re
import sys
import threading
import time
from dataclasses import dataclass

from .model.ranges import PAGE
from .report import human

REFRESH = 0.25        # seconds between snapshots (and redraws on a terminal)
PLAIN_EVERY = 1.0     # seconds between plain-text frames when stderr is no terminal
STRIP_EXACT = 2048    # up to this many ranges (purged: pages) a strip is exact
SAMPLE_CELLS = 256    # resolution of a sampled strip (larger spaces)
PROBE_PAGES = 4       # pages a sampled strip probes at two places per bucket
SAMPLED_EVERY = 1.0   # seconds a sampled strip is kept while its space changes
STRIP_BUDGET = 0.005  # seconds of strip rebuilding per refresh
PLAIN_ROWS = 20       # processes shown in a plain-text frame
CLOSE_WAIT = 2.0      # seconds close() waits for the last frame to be drawn

GAP, VOLATILE, PURGED = 0, 1, 2
CELLS = {GAP: "·", VOLATILE: "█", PURGED: "░"}
ASCII_CELLS = {GAP: ".", VOLATILE: "#", PURGED: "x"}
CELL_STYLES = {GAP: "grey50", VOLATILE: "green", PURGED: "red"}
EDGES = ("▕", "▏")
ASCII_EDGES = ("[", "]")


# --- plain data ----------------------------------------------------------------
@dataclass(frozen=True)
class Strip:
    """What the strip of one address space shows: [lo, hi) from its lowest to
    its highest volatile address, its volatile and purged intervals ((start,
    end) pairs, in address order).  `sampled`: the intervals are buckets of
    SAMPLE_CELLS probes, not exact (a space with very many ranges)."""
    lo: int
    hi: int
    volatile: tuple = ()
    purged: tuple = ()
    sampled: bool = False
    stale: bool = False   # from an earlier refresh (over the rebuild budget)


@dataclass(frozen=True)
class Process:
    """One traced address space (a process; its threads share it)."""
    pid: int
    program: str
    threads: int = 1
    rss: int = 0            # RssAnon bytes (what purges change)
    volatile: int = 0       # bytes volatile now
    purged: int = 0         # bytes purged now (still volatile, data gone)
    purged_total: int = 0   # bytes discarded by purges since it started
    ranges: int = 0
    calls: int = 0
    purges: int = 0
    strip: Strip = None


@dataclass(frozen=True)
class Pressure:
    """The pressure source's last reading.  Usage sources (cgroup, budget):
    bytes against limit/high/low; PSI: `usage` is the stall (us) seen at the
    last check, purging from `threshold_us`; `avg10` (%) and `total_us` are
    the kernel's 'some' line."""
    source: str
    limit: int = 0
    high: int = 0
    low: int = 0
    usage: int = 0
    checks: int = 0
    over_high: int = 0
    enforced: int = 0
    psi: bool = False
    threshold_us: int = 0
    avg10: float = None
    total_us: int = None


@dataclass(frozen=True)
class Snapshot:
    elapsed: float
    argv: tuple = ()
    processes: tuple = ()
    hidden: int = 0            # live processes not shown (too many for the screen)
    hidden_volatile: int = 0
    hidden_purged: int = 0
    exited: int = 0            # processes that are gone
    pressure: Pressure = None
    supervisor_pid: int = 0
    ended: bool = False        # the program is gone: this is the last frame


# --- snapshot (in the supervisor's loop: bounded work) ---------------------------------
def snapshot(sup, rss_of=None, started=None, max_processes=PLAIN_ROWS, cache=None,
             now=time.monotonic):
    """What the view shows, as plain data.

    `sup` needs spaces(), finished, argv, pressure; `rss_of(pid)` gives the
    RSS (default: RssAnon from /proc); `cache` (a dict kept by the caller)
    lets unchanged strips be reused; `started`: monotonic time of the start."""
    if rss_of is None:
        from .linux.procfs import anon_rss_of as rss_of
    t = now()
    spaces = sup.spaces()
    shown = spaces
    if len(spaces) > max_processes:   # the busiest ones, listed by pid
        shown = sorted(spaces, key=lambda sp: (-sp.ranges.volatile_bytes, sp.tgid))[:max_processes]
    shown = sorted(shown, key=lambda sp: sp.tgid)
    shown_ids = {id(sp) for sp in shown}
    hidden = [sp for sp in spaces if id(sp) not in shown_ids]
    strips = _strips(shown, {} if cache is None else cache, t + STRIP_BUDGET, now)
    procs = tuple(Process(
        pid=sp.tgid, program=sp.name, threads=len(sp.tids), rss=rss_of(sp.tgid),
        volatile=sp.ranges.volatile_bytes, purged=sp.ranges.purged_bytes,
        purged_total=sp.stats.purged_bytes, ranges=len(sp.ranges), calls=sp.stats.calls,
        purges=sp.stats.purges, strip=strips.get(id(sp))) for sp in shown)
    return Snapshot(
        elapsed=t - (t if started is None else started), argv=tuple(sup.argv), processes=procs,
        hidden=len(hidden), hidden_volatile=sum(sp.ranges.volatile_bytes for sp in hidden),
        hidden_purged=sum(sp.ranges.purged_bytes for sp in hidden),
        exited=len({row[0] for row in sup.finished} - {sp.tgid for sp in spaces}),
        pressure=_pressure(sup.pressure), supervisor_pid=os.getpid())


def _strips(spaces, cache, deadline, now):
    """id(space) -> Strip (or None: not built yet) for `spaces`; `cache` maps
    id(space) to (space, fingerprint, strip, when built).  A strip is rebuilt
    only if its space changed, oldest first, and only until `deadline` (at
    least one per call); the others show their previous strip, marked stale."""
    out, todo = {}, []
    for sp in spaces:
        vr = sp.ranges
        # Every model change is a call (stats.calls) or a purge (purged_bytes).
        fp = (vr, len(vr), vr.volatile_bytes, vr.purged_bytes, sp.stats.calls)
        entry = cache.get(id(sp))
        if entry is not None and entry[0] is not sp:   # id reused by a new space
            entry = None
        if entry is not None and (entry[1] == fp or entry[2] is not None and entry[2].sampled
                                  and now() - entry[3] < SAMPLED_EVERY):
            out[id(sp)] = entry[2]
        else:
            todo.append((entry[3] if entry else 0.0, sp, fp, entry))
    built = 0
    for _, sp, fp, entry in sorted(todo, key=lambda x: x[0]):
        if built == 0 or now() < deadline:
            strip = strip_of(sp.ranges)
            cache[id(sp)] = (sp, fp, strip, now())
            built += 1
        elif entry is not None and entry[2] is not None:
            strip = dataclasses.replace(entry[2], stale=True)
        else:
            strip = None
        out[id(sp)] = strip
    live = {id(sp) for sp in spaces}
    for key in [k for k in cache if k not in live]:
        del cache[key]
    return out


def strip_of(vr):
    """The Strip of a VolatileRanges (None if it has no ranges): exact up to
    STRIP_EXACT ranges and purged pages, else sampled (`_sample`)."""
    bounds = vr.bounds()
    if bounds is None:
        return None
    lo, hi = bounds
    if len(vr) <= STRIP_EXACT and vr.purged_bytes <= STRIP_EXACT * PAGE:
        return Strip(lo, hi, tuple((r.start, r.end) for r in vr), tuple(vr.purged_intervals()))
    volatile, purged = _sample(vr, lo, hi)
    return Strip(lo, hi, volatile, purged, sampled=True)


def _sample(vr, lo, hi):
    """(volatile buckets, purged buckets) of SAMPLE_CELLS buckets over [lo,
    hi), each probed at PROBE_PAGES pages at its start and its middle: a
    bounded O(SAMPLE_CELLS log n) whatever the number of ranges (a volatile
    hit also covers the buckets its range reaches)."""
    pages = (hi - lo) // PAGE
    n = min(pages, SAMPLE_CELLS)
    edges = [lo + (i * pages // n) * PAGE for i in range(n + 1)]
    volatile, purged, covered = [], [], 0
    for a, b in zip(edges, edges[1:]):
        windows = [(p, min(p + PROBE_PAGES * PAGE, b))
                   for p in (a, a + (b - a) // 2 // PAGE * PAGE)]
        if a < covered:
            volatile.append((a, b))
        else:
            for w in windows:
                found = vr.overlapping(*w)
                if found:
                    covered = found[-1].end
                    volatile.append((a, b))
                    break
        if any(vr.is_purged(*w) for w in windows):
            purged.append((a, b))
    return _merge(volatile), _merge(purged)


def _merge(intervals):
    out = []
    for s, e in intervals:
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return tuple(out)


def _pressure(src):
    if src is None:
        return None
    r = src.readings
    threshold = getattr(src, "threshold_us", None)
    fields = dict(source=r.source, limit=r.limit, high=r.high, low=r.low, usage=r.last_usage,
                  checks=r.checks, over_high=r.over_high, enforced=r.enforced)
    if threshold is None:
        return Pressure(**fields)
    avg10 = total = None
    try:   # the kernel's own summary, one small read
        with open(src.path) as f:
            m = re.search(r"^some avg10=([\d.]+) .*total=(\d+)", f.read(), re.M)
        if m:
            avg10, total = float(m.group(1)), int(m.group(2))
    except (OSError, AttributeError):
        pass
    return Pressure(**fields, psi=True, threshold_us=threshold, avg10=avg10, total_us=total)


# --- render (pure) ------------------------------------------------------------------
def strip_cells(strip, n):
    """The class (GAP, VOLATILE, PURGED) of each of `n` cells over [lo, hi):
    cell i holds the bytes x with (x - lo) * n // (hi - lo) == i; a cell with
    any purged byte is PURGED, else with any volatile byte VOLATILE."""
    cells = [GAP] * n
    span = strip.hi - strip.lo
    if n <= 0 or span <= 0:
        return cells
    for value, intervals in ((VOLATILE, strip.volatile), (PURGED, strip.purged)):
        for s, e in intervals:
            s, e = max(s, strip.lo), min(e, strip.hi)
            if s < e:
                i = (s - strip.lo) * n // span
                j = (e - 1 - strip.lo) * n // span
                cells[i:j + 1] = [value] * (j + 1 - i)
    return cells


def render(snap, width, ascii=False):
    """The view of `snap` for a terminal `width` columns wide (a rich renderable).
    `ascii`: only ASCII characters (a non-UTF-8 stderr)."""
    from rich.console import Group
    from rich.text import Text

    width = max(width, 40)
    parts = [_header(snap, width, ascii)]
    if snap.processes:
        parts.append(_table(snap, width, ascii))
        if snap.hidden:
            parts.append(Text(f"... and {snap.hidden} more process(es): "
                              f"{human(snap.hidden_volatile)} volatile, "
                              f"{human(snap.hidden_purged)} purged", style="dim"))
        parts.append(Text(""))
        with_ranges = [p for p in snap.processes if p.ranges or p.strip]
        if with_ranges:
            parts.extend(_strip_line(p, width, ascii) for p in with_ranges)
            parts.append(_legend(ascii, any(p.strip and p.strip.sampled for p in with_ranges)))
        else:
            parts.append(Text("no volatile ranges", style="dim"))
    else:
        parts.append(Text("all traced processes have exited" if snap.ended
                          else "no traced process yet", style="dim"))
    parts.extend(_pressure_lines(snap.pressure, width, ascii))
    return Group(*parts)


def _header(snap, width, ascii):
    """One line: the program (shortened to fit), the time, the processes and
    how to purge now (dropped first when the line is too narrow)."""
    from rich.text import Text
    dot = " - " if ascii else " · "
    if snap.ended:
        parts = [(f"ended after {snap.elapsed:.1f} s", "bold"),
                 (f"{_count(snap.exited, 'process', 'processes')} traced"
                  + ("; as last seen:" if snap.processes else ""), "")]
    else:
        count = _count(len(snap.processes) + snap.hidden, "process", "processes")
        parts = [(f"{snap.elapsed:.1f} s", ""),
                 (count + (f", {snap.exited} exited" if snap.exited else ""), "")]
    hint = (f"purge now: kill -USR1 {snap.supervisor_pid}", "dim")
    title = "vrange-run --live"
    argv = " ".join(snap.argv) or "?"
    fixed = len(title) + sum(len(dot) + len(t) for t, _ in parts) + len(dot)
    if (not snap.ended and snap.supervisor_pid
            and width - fixed - len(dot) - len(hint[0]) >= min(len(argv), 16)):
        parts.append(hint)
        fixed += len(dot) + len(hint[0])
    room = max(width - fixed, 8)
    if len(argv) > room:
        argv = argv[:room - 1] + ("~" if ascii else "…")
    text = Text(no_wrap=True, overflow=_overflow(ascii))
    text.append(title, style="bold")
    text.append(dot + argv, style="cyan")
    for t, style in parts:
        text.append(dot)
        text.append(t, style=style)
    return text


def _overflow(ascii):
    """How a too long line ends: rich's ellipsis is not ASCII."""
    return "crop" if ascii else "ellipsis"


def _count(n, one, many):
    return f"{n} {one if n == 1 else many}"


def _table(snap, width, ascii):
    """The process table; on a narrow terminal the least useful columns go."""
    from rich import box
    from rich.table import Table
    columns = [  # (header, cell of a Process, drop order: higher goes first)
        ("pid", lambda p: str(p.pid), 0),
        ("program", lambda p: p.program, 0),
        ("thr", lambda p: str(p.threads), 4),
        ("anon RSS", lambda p: human(p.rss), 1),
        ("volatile", lambda p: f"[green]{human(p.volatile)}[/]", 0),
        ("purged", lambda p: f"[red]{human(p.purged)}[/]" if p.purged else human(p.purged), 0),
        ("ever purged", lambda p: human(p.purged_total), 5),
        ("ranges", lambda p: str(p.ranges), 3),
        ("calls", lambda p: str(p.calls), 2),
        ("purges", lambda p: str(p.purges), 2),
    ]
    rows = [[cell(p) for _, cell, _ in columns] for p in snap.processes]

    def need(keep):
        from rich.text import Text
        return sum(max([len(h)] + [Text.from_markup(r[i]).cell_len for r in rows]) + 2
                   for i, (h, _, _) in enumerate(columns) if i in keep)
    keep = set(range(len(columns)))
    for drop in (5, 4, 3, 2, 1):
        if need(keep) <= width:
            break
        keep -= {i for i, c in enumerate(columns) if c[2] == drop}
    # Columns 2 apart: one padding on the right, one (blank) divider.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="bold")
    for i, (name, _, _) in enumerate(columns):
        if i in keep:
            table.add_column(name, justify="left" if name == "program" else "right",
                             no_wrap=True, overflow=_overflow(ascii),
                             max_width=16 if name == "program" else None)
    for row in rows:
        table.add_row(*(cell for i, cell in enumerate(row) if i in keep))
    return table


def _strip_line(p, width, ascii):
    """`  PID ▕cells▏ SPAN @ ADDR`, one line of exactly at most `width` columns."""
    from rich.text import Text
    left, right = ASCII_EDGES if ascii else EDGES
    text = Text(f"{p.pid:>7} ", no_wrap=True, overflow="crop")
    s = p.strip
    if s is None:   # not built yet (see _strips)
        text.append("...", style="dim")
        return text
    suffix = f" {human(s.hi - s.lo):>9}"
    if width >= 80:
        suffix += f" @ {s.lo:#x}"
    if s.sampled:
        suffix += " ~"
    if s.stale:
        suffix += " (old)"
    n = max(width - len(text) - 2 - len(suffix), 8)
    chars = ASCII_CELLS if ascii else CELLS
    text.append(left, style="dim")
    cells = strip_cells(s, n)
    i = 0
    while i < n:   # one styled run per class change
        j = i
        while j < n and cells[j] == cells[i]:
            j += 1
        text.append(chars[cells[i]] * (j - i), style=CELL_STYLES[cells[i]])
        i = j
    text.append(right, style="dim")
    text.append(suffix, style="dim")
    return text


def _legend(ascii, sampled=False):
    from rich.text import Text
    chars = ASCII_CELLS if ascii else CELLS
    text = Text(no_wrap=True, overflow=_overflow(ascii))
    for cls, what in ((VOLATILE, "volatile"), (PURGED, "purged"),
                      (GAP, "not volatile (pinned or unmapped)")):
        text.append(chars[cls], style=CELL_STYLES[cls])
        text.append(f" {what}  ")
    text.append("span: lowest to highest volatile address", style="dim")
    if sampled:
        text.append(" (~ sampled)", style="dim")
    return text


def _duration_us(us, ascii=False):
    if us < 1000:
        return f"{us} us" if ascii else f"{us} µs"
    if us < 1_000_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1e6:.2f} s"


def _shorten(text, n, ascii=False):
    """`text` in at most `n` columns, cut in the middle (a path's end tells most).

    >>> _shorten("/sys/fs/cgroup/memory/a/b/c/vrange-run-42", 24)
    '/sys/fs/cg…vrange-run-42'
    """
    if len(text) <= n:
        return text
    mark = "..." if ascii else "…"
    tail = (n - len(mark)) * 3 // 5
    return text[:n - len(mark) - tail] + mark + text[len(text) - tail:]


def _pressure_lines(pr, width, ascii):
    from rich.text import Text

    def line(*pieces):
        text = Text(no_wrap=True, overflow=_overflow(ascii))
        for piece in pieces:
            text.append(*piece) if isinstance(piece, tuple) else text.append_text(piece)
        return text
    if pr is None:
        return [Text(""), line(("pressure: ", "bold"), ("none (purges only on kill -USR1)", "dim"))]
    title = line(("pressure: ", "bold"), (_shorten(pr.source, width - 10, ascii),))
    if pr.psi:
        stall = line(("stall ",), (_duration_us(pr.usage, ascii),
                                   "red" if pr.usage >= pr.threshold_us else "green"),
                     (f" at the last check (purges from {_duration_us(pr.threshold_us, ascii)})",))
        if pr.avg10 is not None:
            stall.append(f", some avg10 {pr.avg10:.2f}%")
        if pr.total_us is not None:
            stall.append(f", total {_duration_us(pr.total_us, ascii)}")
        counts = line((f"{_count(pr.checks, 'check', 'checks')}, "
                       f"{_count(pr.over_high, 'purge trigger', 'purge triggers')}", "dim"))
        return [Text(""), title, stall, counts]
    low_mark, high_mark = ("l", "H") if ascii else ("┆", "┃")
    usage = line(pressure_bar(pr, max(10, min(50, width - 32)), ascii),
                 (f" {human(pr.usage)} of {human(pr.limit)}",))
    counts = line(("purge from ", "dim"), (high_mark, "bold red"), (f" {human(pr.high)} down to ", "dim"),
                  (low_mark, "bold yellow"),
                  (f" {human(pr.low)}; {_count(pr.checks, 'check', 'checks')}, "
                   f"{pr.over_high} over the high mark", "dim"))
    if pr.enforced:
        counts.append(f", limit enforced {pr.enforced} time(s)", style="dim")
    return [Text(""), title, usage, counts]


def pressure_bar(pr, n, ascii=False):
    """`n` cells of usage against the limit: filled up to the usage (green
    under the low mark, yellow under the high mark, red above it), the low and
    high marks drawn as their own characters."""
    from rich.text import Text
    scale = max(pr.limit, pr.usage, 1)
    filled = min(n, pr.usage * n // scale)
    low_at = min(n - 1, pr.low * n // scale)
    high_at = min(n - 1, pr.high * n // scale)
    colour = "green" if pr.usage < pr.low else "yellow" if pr.usage < pr.high else "red"
    full, empty, low_mark, high_mark = ("#", "-", "l", "H") if ascii else ("█", "─", "┆", "┃")
    text = Text("[" if ascii else "▕", style="dim")
    for i in range(n):
        if i == high_at:
            text.append(high_mark, style="bold red")
        elif i == low_at:
            text.append(low_mark, style="bold yellow")
        elif i < filled:
            text.append(full, style=colour)
        else:
            text.append(empty, style="grey50")
    text.append("]" if ascii else "▏", style="dim")
    return text


# --- the view -------------------------------------------------------------------------
def is_terminal(stream):
    try:
        return stream.isatty() and os.environ.get("TERM", "") not in ("dumb", "")
    except (AttributeError, ValueError, OSError):
        return False


class LiveView:
    """The supervisor's --live hook.  `stream`: where to draw (stderr);
    `interactive`: redraw in place (default: if `stream` is a terminal)."""

    def __init__(self, stream=None, interactive=None):
        from rich.console import Console
        self.stream = stream if stream is not None else sys.stderr
        if self.stream is None:   # no stderr at all: never fall back to stdout
            self.stream = open(os.devnull, "w")
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        if self.interactive:
            self.console = Console(file=self.stream, highlight=False, emoji=False)
        else:
            width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 100
            self.console = Console(file=self.stream, color_system=None, force_terminal=False,
                                   highlight=False, emoji=False, width=width)
        self.ascii = not (self.console.encoding or "").lower().startswith("utf")
        self.started = time.monotonic()
        self._due = self.started + 0.1      # first frame once the program runs
        self._cache = {}
        self._last = None                   # newest snapshot taken
        self._cond = threading.Condition()
        self._pending = None                # newest snapshot not drawn yet
        self._closing = False
        self._thread = None
        self._live = None
        self._failure = None                # why the view stopped, still to be printed
        self._stopped = False               # no more frames (failure or closed)

    # -- the loop's side (main thread) --
    def due_in(self):
        """Seconds until the next refresh is due (<= 0: now)."""
        if self._stopped:   # at once if a failure is still to be reported
            return 0.0 if self._failure else 3600.0
        return self._due - time.monotonic()

    def refresh(self, sup):
        """Take a snapshot (bounded work) and hand it to the drawing thread."""
        self._due = time.monotonic() + REFRESH
        if self._stopped:
            self._report_failure()
            return
        try:
            snap = snapshot(sup, started=self.started, cache=self._cache,
                            max_processes=self._rows())
        except Exception as exc:   # a view bug must not stop the tracing
            self._fail(exc, "snapshot")
            return
        self._last = snap
        with self._cond:
            self._pending = snap
            self._cond.notify()
        if self._thread is None:
            # Started here, not in __init__: by now the supervisor has blocked
            # the signals its signalfd reads, and the thread inherits that mask.
            self._thread = threading.Thread(target=self._draw_loop, name="vrange-live",
                                            daemon=True)
            self._thread.start()

    def close(self, sup):
        """Draw the last frame (marked ended) and give the terminal back.
        Never raises."""
        try:
            final = self._last
            if final is None and sup.finished:   # it ran, but ended before the first frame
                final = snapshot(sup, started=self.started, cache=self._cache)
            if final is not None:
                # Every process has exited now (an exec'd one was counted
                # once per program it ran in sup.finished: count pids).
                final = dataclasses.replace(final, ended=True,
                                            elapsed=time.monotonic() - self.started,
                                            exited=len({row[0] for row in sup.finished}))
        except Exception:
            final = None
        with self._cond:
            self._closing = True
            if final is not None and not self._stopped:
                self._pending = final
            self._cond.notify()
        if self._thread is None:
            self._draw_loop()     # nothing drawn yet: draw the final frame here
        else:
            self._thread.join(CLOSE_WAIT)
        self._report_failure()

    def _rows(self):
        if not self.interactive:
            return PLAIN_ROWS
        try:
            height = self.console.size.height
        except Exception:
            height = 24
        return max(1, min(50, (height - 10) // 2))

    def _fail(self, exc, where):
        """Stop the view (not the tracing) after a bug of ours; the message
        and traceback are printed from the loop's thread once the terminal
        is given back."""
        import traceback
        self._failure = (f"vrange-run: --live: the view stopped ({where}: "
                         f"{type(exc).__name__}: {exc}); the program runs on\n"
                         + "".join(traceback.format_exception(type(exc), exc,
                                                              exc.__traceback__)))
        self._stopped = True     # after _failure: due_in() then asks for a refresh to report
        with self._cond:
            self._closing = True
            self._pending = None
            self._cond.notify()
        if where == "snapshot":
            if self._thread is not None:
                self._thread.join(CLOSE_WAIT)
            self._report_failure()

    def _report_failure(self):
        failure, self._failure = self._failure, None
        if failure:
            try:
                sys.stderr.write(failure)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    # -- the drawing thread --
    def _draw_loop(self):
        failure = None
        try:
            while True:
                with self._cond:
                    while not self._closing:
                        if self._pending is not None:
                            wait = self._next_frame - time.monotonic()
                            if wait <= 0:
                                break
                            self._cond.wait(wait)
                        else:
                            self._cond.wait()
                    snap, self._pending = self._pending, None
                    closing = self._closing
                if snap is not None:
                    self._draw(snap)
                if closing:
                    break
        except (OSError, ValueError):   # stderr closed or gone: just stop drawing
            pass
        except Exception as exc:
            failure = exc
        finally:
            self._stop_live()
            self._stopped = True
        if failure is not None:    # reported by the loop's thread (refresh or close)
            self._fail(failure, "drawing")

    _next_frame = 0.0

    def _draw(self, snap):
        if self.interactive:
            try:   # the terminal's size now; not $COLUMNS, which may be stale
                self.console.size = os.get_terminal_size(self.stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass
        view = render(snap, self.console.width, self.ascii)
        if self.interactive:
            if self._live is None:
                from rich.live import Live
                # No auto-refresh thread: frames come from the loop.  Writes of
                # our own to sys.stderr (-v) are printed above the view.
                self._live = Live(view, console=self.console, auto_refresh=False,
                                  transient=False, redirect_stdout=False,
                                  redirect_stderr=True, vertical_overflow="ellipsis")
                self._live.start()
            self._live.update(view, refresh=True)
        else:
            self.console.print(view)
            self.console.print()
            self._next_frame = time.monotonic() + PLAIN_EVERY

    def _stop_live(self):
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()     # shows the cursor again; restores sys.stderr
            except Exception:
                pass
