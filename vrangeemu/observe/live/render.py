"""--live's picture of a Snapshot: rich renderables, pure functions of it.

On a terminal the view redraws them in place; elsewhere a Console without
colours prints them as plain-text frames.  `ascii` swaps every non-ASCII
character for an ASCII one (a non-UTF-8 stderr).
"""
from ..stats import human

GAP, VOLATILE, PURGED = 0, 1, 2
CELLS = {GAP: "·", VOLATILE: "█", PURGED: "░"}
ASCII_CELLS = {GAP: ".", VOLATILE: "#", PURGED: "x"}
CELL_STYLES = {GAP: "grey50", VOLATILE: "green", PURGED: "red"}
EDGES = ("▕", "▏")
ASCII_EDGES = ("[", "]")


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
        if snap.hidden and snap.ended:
            parts.append(Text(f"... and {snap.hidden} more process(es)", style="dim"))
        elif snap.hidden:
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
                  + ("; counts at exit, memory as last seen:" if snap.processes else ""), "")]
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
    if s is None:   # not built yet (see snapshot._strips)
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
