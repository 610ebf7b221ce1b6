"""--live: the pure render of known snapshots, snapshots of a fake RunState,
a real run with stderr captured (plain frames) and one on a real terminal
(tmux)."""
import io
import math
import os
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from rich.console import Console

from conftest import ROOT, VRANGE_RUN, vrange_run
from helpers import help_options, spawned
from vrangeemu.observe.events import End, EventBus, SpaceEnd
from vrangeemu.observe.live import render as live_render, snapshot as live_snapshot, view as live
from vrangeemu.observe.live.render import render
from vrangeemu.observe.live.snapshot import (Pressure, Process, Snapshot, Strip, final, snapshot,
                                             strip_of)
from vrangeemu.model.ranges import PAGE, VolatileRanges
from vrangeemu.model.space import AddressSpace, Stats
from vrangeemu.supervisor.pressure import Readings

KiB, MiB = 1 << 10, 1 << 20
BASE = 0x7F12_3450_0000


def text_of(snap, width=100, ascii=False):
    file = io.TextIOWrapper(io.BytesIO(), encoding="ascii") if ascii else io.StringIO()
    console = Console(record=True, width=width, file=file)
    console.print(render(snap, width, ascii))
    return console.export_text()


def strip_row(text, pid, edges=("▕", "▏")):
    """The cells of the strip line of `pid`."""
    (line,) = [l for l in text.splitlines() if l.lstrip().startswith(f"{pid} {edges[0]}")]
    return line[line.index(edges[0]) + 1:line.index(edges[1])]


def expected_columns(lo, hi, intervals, n):
    """Columns of an n-cell strip over [lo, hi) holding a byte of `intervals`:
    cell c spans [lo + ceil(c*span/n), lo + ceil((c+1)*span/n))."""
    span = hi - lo
    cols = set()
    for c in range(n):
        a, b = lo + math.ceil(c * span / n), lo + math.ceil((c + 1) * span / n)
        if any(s < b and e > a for s, e in intervals):
            cols.add(c)
    return cols


# A 1000-page span (not a multiple of any strip width): purged runs of 1
# page (inside a range), 37 and 100 pages (at the ends of ranges), a gap.
STRIP = Strip(BASE, BASE + 1000 * PAGE,
              volatile=((BASE, BASE + 400 * PAGE), (BASE + 600 * PAGE, BASE + 1000 * PAGE)),
              purged=((BASE + 203 * PAGE, BASE + 204 * PAGE), (BASE + 363 * PAGE, BASE + 400 * PAGE),
                      (BASE + 900 * PAGE, BASE + 1000 * PAGE)))
SNAP = Snapshot(
    elapsed=2.5, argv=("./cache-server", "--port", "80"), exited=1, supervisor_pid=4000,
    processes=(
        Process(4242, "cache-server", threads=3, rss=12 * MiB + 512 * KiB, volatile=800 * 4 * KiB,
                purged=138 * 4 * KiB, purged_total=3 * MiB, ranges=2, calls=1234, purges=5,
                strip=STRIP),
        Process(4250, "helper", threads=1, rss=3 * MiB, strip=None)),
    pressure=Pressure("cgroup v2 /sys/fs/cgroup/vrange-run-4000", limit=64 * MiB,
                      high=57 * MiB, low=49 * MiB, usage=52 * MiB, checks=120, over_high=3))


def test_render_shows_processes_sizes_and_purged_cells_where_the_snapshot_has_them():
    text = text_of(SNAP)
    for want in ("4242", "cache-server", "4250", "helper", "12.5 MiB", "3.1 MiB", "552.0 KiB",
                 "3.0 MiB", "1234", "./cache-server --p", "kill -USR1 4000",
                 "52.0 MiB of 64.0 MiB", "57.0 MiB", "49.0 MiB"):
        assert want in text, (want, text)
    row = next(l for l in text.splitlines() if l.startswith("4242"))
    assert re.search(r"4242\s+cache-server\s+3\s+12.5 MiB\s+3.1 MiB\s+552.0 KiB\s+3.0 MiB"
                     r"\s+2\s+1234\s+5$", row), row
    cells = strip_row(text, 4242)
    n = len(cells)
    assert n > 50 and all(len(l) <= 100 for l in text.splitlines())
    purged = expected_columns(STRIP.lo, STRIP.hi, STRIP.purged, n)
    volatile = expected_columns(STRIP.lo, STRIP.hi, STRIP.volatile, n) - purged
    assert {c for c, ch in enumerate(cells) if ch == "░"} == purged
    assert {c for c, ch in enumerate(cells) if ch == "█"} == volatile
    assert {c for c, ch in enumerate(cells) if ch == "·"} == set(range(n)) - purged - volatile
    assert 0 < len(purged) < 20 and cells[0] == "█" and cells[-1] == "░"   # 1 page: a cell
    assert "3.9 MiB @ 0x7f1234500000" in text        # the span (1000 pages) and its start
    assert "░ purged" in text and "█ volatile" in text and "· not volatile" in text
    assert "4250 ▕" not in text         # no strip for a process without ranges


@pytest.mark.parametrize("width", [40, 60, 80, 132])
def test_render_fits_any_width_and_ascii(width):
    text = text_of(SNAP, width, ascii=True)
    assert all(len(l) <= width for l in text.splitlines()), text
    assert text.isascii()
    cells = strip_row(text, 4242, ("[", "]"))
    assert cells[0] == "#" and cells[-1] == "x" and "." in cells
    assert "4242" in text and "cache-server"[:8] in text


def test_a_long_pressure_source_keeps_its_end():
    src = "cgroup v1 /sys/fs/cgroup/memory/process_api/0123456789abcdef0123456789/vrange-run-4000"
    snap = Snapshot(1.0, argv=("x",), pressure=Pressure(src, 64 * MiB, 57 * MiB, 49 * MiB))
    text = text_of(snap, 60)
    assert "pressure: cgroup v1 /sys" in text and "/vrange-run-4000" in text


def test_render_psi_no_pressure_empty_and_ended():
    psi = Pressure("PSI /proc/pressure/memory", psi=True, threshold_us=1000, usage=2500,
                   avg10=1.25, total_us=4_200_000, checks=9, over_high=2)
    text = text_of(Snapshot(1.0, argv=("x",), processes=SNAP.processes, pressure=psi))
    assert "stall 2.5 ms at the last check (purges from 1.0 ms)" in text
    assert "avg10 1.25%" in text and "total 4.20 s" in text and "2 purge triggers" in text
    text = text_of(Snapshot(0.1, argv=("x",)))
    assert "no traced process yet" in text and "pressure: none" in text
    text = text_of(Snapshot(3.0, argv=("x",), processes=SNAP.processes, exited=2, ended=True))
    assert "ended after 3.0 s" in text
    assert "2 processes traced; counts at exit, memory as last seen" in text
    assert "purge now" not in text


def fake_state(spaces, pressure=None):
    """A RunState: `spaces` is read at each call (the caller may change it)."""
    return SimpleNamespace(spaces=lambda: list(spaces), argv=["prog", "arg"], pressure=pressure)


def make_space(pid, marks, purges=(), name="prog"):
    vr = VolatileRanges()
    for s, e in marks:
        vr.mark(BASE + s * PAGE, BASE + e * PAGE)
    for s, e in purges:
        vr.set_purged(BASE + s * PAGE, BASE + e * PAGE)
    space = AddressSpace(pid, name, vr, tids={pid, pid + 1})
    space.stats.calls, space.stats.purges, space.stats.purged_bytes = 7, 1, 99 * PAGE
    return space


def test_snapshot_copies_counters_strips_and_pressure():
    a = make_space(300, [(0, 10), (20, 30)], [(2, 5)])
    b = make_space(200, [], name="other")
    src = SimpleNamespace(readings=Readings("RSS budget 64 MiB", 64 * MiB, 57 * MiB, 49 * MiB))
    src.readings.saw(10 * MiB, False)
    # Gone: pid 1 (two images: it exec'd), and pid 300's image before its exec.
    gone = [1, 1, 300]    # the pids of their SpaceEnd events
    snap = snapshot(fake_state([a, b], src), gone,
                    rss_of=lambda pid: pid * KiB, started=time.monotonic() - 2)
    assert [p.pid for p in snap.processes] == [200, 300]      # by pid
    p = snap.processes[1]
    assert (p.program, p.threads, p.rss, p.volatile, p.purged, p.purged_total, p.ranges,
            p.calls, p.purges) == ("prog", 2, 300 * KiB, 20 * PAGE, 3 * PAGE, 99 * PAGE, 2, 7, 1)
    assert p.strip == Strip(BASE, BASE + 30 * PAGE,
                            ((BASE, BASE + 10 * PAGE), (BASE + 20 * PAGE, BASE + 30 * PAGE)),
                            ((BASE + 2 * PAGE, BASE + 5 * PAGE),))
    assert snap.processes[0].strip is None and snap.exited == 1 and snap.argv == ("prog", "arg")
    assert snap.pressure.usage == 10 * MiB and snap.pressure.checks == 1 and not snap.pressure.psi
    assert 1.5 < snap.elapsed < 10


def test_snapshot_shows_the_busiest_processes_when_there_are_too_many():
    spaces = [make_space(100 + i, [(0, i + 1)]) for i in range(6)]
    snap = snapshot(fake_state(spaces), rss_of=lambda pid: 0, max_processes=2)
    assert [p.pid for p in snap.processes] == [104, 105]
    assert snap.hidden == 4 and snap.hidden_volatile == (1 + 2 + 3 + 4) * PAGE
    assert "and 4 more process(es)" in text_of(snap)


def test_strips_are_cached_until_the_space_changes():
    space = make_space(1, [(0, 4)])
    cache, state = {}, fake_state([space])
    first = snapshot(state, rss_of=lambda pid: 0, cache=cache).processes[0].strip
    assert snapshot(state, rss_of=lambda pid: 0, cache=cache).processes[0].strip is first
    space.ranges.mark(BASE + 10 * PAGE, BASE + 12 * PAGE)
    space.stats.calls += 1
    again = snapshot(state, rss_of=lambda pid: 0, cache=cache).processes[0].strip
    assert again.hi == BASE + 12 * PAGE
    snapshot(fake_state([]), rss_of=lambda pid: 0, cache=cache)
    assert cache == {}


def test_a_huge_space_gets_a_sampled_strip_at_bounded_cost(monkeypatch):
    n = 3 * live_snapshot.STRIP_EXACT
    vr = VolatileRanges()
    for i in range(n):            # every other page volatile; the upper half purged
        vr.mark(BASE + 2 * i * PAGE, BASE + (2 * i + 1) * PAGE)
    for i in range(n // 2, n):
        vr.set_purged(BASE + 2 * i * PAGE, BASE + (2 * i + 1) * PAGE)
    queries = []
    for name in ("overlapping", "is_purged", "purged_intervals"):
        real = getattr(vr, name)
        monkeypatch.setattr(vr, name, lambda *a, _r=real, _n=name: queries.append(_n) or _r(*a))
    monkeypatch.setattr(type(vr), "__iter__", lambda self: pytest.fail("iterated all ranges"))
    strip = strip_of(vr)
    assert strip.sampled and len(queries) <= 4 * live_snapshot.SAMPLE_CELLS
    cells = live_render.strip_cells(strip, 100)
    assert cells[:45] == [live_render.VOLATILE] * 45 and cells[55:] == [live_render.PURGED] * 45


def test_plain_view_prints_a_frame_at_most_once_a_second():
    out, bus = io.StringIO(), EventBus()
    space = make_space(4242, [(0, 8)], [(0, 2)])
    spaces = [space]
    view = live.LiveView(out, fake_state(spaces), bus, interactive=False)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.3:
        if view.due_in() <= 0:
            view.refresh()
        time.sleep(0.01)
    assert view.due_in() <= live.REFRESH
    spaces.clear()
    bus.emit(SpaceEnd(4242, "prog", space.stats))
    bus.emit(End("exited", 0))        # draws the last frame
    assert "ended after" in out.getvalue()
    view.close()                      # already drawn: nothing more
    text = out.getvalue()
    headers = [l for l in text.splitlines() if l.startswith("vrange-run --live")]
    frames, last = headers[:-1], headers[-1]
    assert 2 <= len(frames) <= 3, text      # ~0.1 s, ~1.1 s, ~2.1 s (9 snapshots taken)
    times = [float(re.search(r" · ([\d.]+) s · ", h).group(1)) for h in frames]
    assert all(b - a >= 1 - live.REFRESH for a, b in zip(times, times[1:])), times
    assert "ended after" in last and "1 process traced" in last and "\x1b" not in text
    assert text.count("4242 ▕") == len(headers) and "8.0 KiB" in text


def test_a_run_that_ends_before_the_first_frame_still_gets_a_last_frame():
    out, bus = io.StringIO(), EventBus()
    view = live.LiveView(out, fake_state([]), bus, interactive=False)
    space = make_space(4242, [(0, 8)])
    bus.emit(SpaceEnd(4242, "sh", space.stats))
    bus.emit(SpaceEnd(4242, "prog", space.stats))    # it exec'd: still one process
    view.close()                      # no End event (a setup error): close draws it
    text = out.getvalue()
    assert text.count("vrange-run --live") == 1 and "ended after" in text
    assert "1 process traced" in text
    # A row per program it ran, as --stats lists them, with its counts.
    assert re.search(r"^4242\s+sh\s.*\s7\s+1$", text, re.M), text
    assert re.search(r"^4242\s+prog\s.*\s7\s+1$", text, re.M), text


def test_the_last_frame_has_the_counts_at_exit_not_the_last_snapshots():
    space = make_space(300, [(0, 10)])
    last = snapshot(fake_state([space]), rss_of=lambda pid: 5 * KiB)
    at_exit = Stats(calls=664, purges=9, purged_bytes=40 * PAGE)
    snap = final(last, [(300, "prog", at_exit), (301, "child", Stats(calls=2))], elapsed=4.0,
                 exited=2)
    assert snap.ended and snap.exited == 2 and snap.elapsed == 4.0
    p, child = snap.processes
    assert (p.calls, p.purges, p.purged_total) == (664, 9, 40 * PAGE)
    assert (p.rss, p.volatile, p.strip) == (5 * KiB, 10 * PAGE, last.processes[0].strip)
    assert (child.pid, child.program, child.calls, child.rss, child.strip) == \
        (301, "child", 2, 0, None)          # ended between two snapshots: never seen
    # Too many to show: the busiest ones stay, in their order.
    many = final(last, [(i, "p", Stats(calls=i % 7)) for i in range(10)], 1.0, 10,
                 max_processes=3)
    assert [p.pid for p in many.processes] == [4, 5, 6] and many.hidden == 7
    assert "... and 7 more process(es)\n" in text_of(many)


def test_a_view_bug_stops_the_view_not_the_program(capsys, monkeypatch):
    broken = SimpleNamespace(spaces=lambda: 1 / 0, argv=["x"], pressure=None)
    view = live.LiveView(io.StringIO(), broken, EventBus(), interactive=False)
    view.refresh()                # must not raise
    assert "the view stopped (snapshot: ZeroDivisionError" in capsys.readouterr().err
    assert view.due_in() > 60
    view.close()
    # A bug while drawing (in the drawing thread): reported by the next refresh.
    monkeypatch.setattr(live, "render", lambda *args: {}["boom"])
    view = live.LiveView(io.StringIO(), fake_state([]), EventBus(), interactive=False)
    view.refresh()
    deadline = time.monotonic() + 5
    while view.due_in() > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    view.refresh()
    assert "the view stopped (drawing: KeyError" in capsys.readouterr().err
    assert view.due_in() > 60
    view.close()
    assert capsys.readouterr().err == ""


# --- real runs -------------------------------------------------------------------------
def live_env():
    return {**os.environ, "COLUMNS": "100", "PYTHONIOENCODING": "utf-8"}


def row_of(frame):
    """(volatile, purged) of the vrange_script row of a frame, and its strip."""
    m = re.search(r"^\s*(\d+)\s+vrange_script\S*\s+1\s+[\d.]+ \w+\s+([\d.]+ \w+)\s+([\d.]+ \w+)",
                  frame, re.M)
    if not m:
        return None
    strip = re.search(rf"^\s*{m.group(1)} ▕(.*)▏", frame, re.M)
    return m.group(2), m.group(3), strip.group(1) if strip else ""


def test_plain_frames_of_a_real_run_show_volatile_then_purged_bytes(build):
    exe = build("vrange_script")
    steps = ["map A 64 anon\nfill A 1\nvol A 0 32 0\n",    # ARG given: vol does not wait for input
             "purge\nvol A 40 8 0\n"]
    with spawned([*VRANGE_RUN, "--live", exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, encoding="utf-8", env=live_env(), cwd=ROOT) as proc:
        for step in steps:
            proc.send(step)
            proc.stdout.until(lambda line: line.startswith("ret="),    # the call is done
                              what="the call's ret= line")
            time.sleep(1.6)          # at least one frame of this state
        out = list(proc.stdout.seen)
        rest, err = proc.finish(timeout=60)
        assert proc.proc.returncode == 0, err
    # The program's stdout is its own: the same as without --live.
    plain = vrange_run(exe, input="".join(steps), cwd=ROOT)
    assert "".join(out) + rest == plain.stdout
    assert "\x1b" not in err                          # no cursor tricks on a pipe
    frames = re.split(r"^(?=vrange-run --live)", err, flags=re.M)[1:]
    assert frames and all(f.startswith("vrange-run --live · ") for f in frames), err
    rows = [row_of(f) for f in frames]
    assert ("128.0 KiB", "0 B") in [r[:2] for r in rows if r], err
    before = next(r for r in rows if r and r[:2] == ("128.0 KiB", "0 B"))
    assert set(before[2]) == {"█"}
    after = [r for r in rows if r and r[:2] == ("160.0 KiB", "128.0 KiB")]
    assert after, err
    assert re.fullmatch(r"░+·+█+", after[-1][2]), after[-1][2]   # purged 0-32, gap, 40-48
    assert "ended after" in frames[-1] and "1 process traced" in frames[-1]
    elapsed = float(re.search(r"ended after ([\d.]+) s", frames[-1]).group(1))
    assert len(frames) <= elapsed + 2                  # at most one a second, and the last


def test_live_with_a_user_mistake_is_the_usual_one_line():
    proc = vrange_run("--live", "no-such-program-xyz", env=live_env())
    assert proc.returncode == 127
    assert proc.stderr == "vrange-run: no-such-program-xyz: command not found\n"


def test_help_describes_live():
    live = help_options(vrange_run("--help").stdout).get("--live")
    assert live, "--help lists no --live"
    assert "PSI" in live                                  # the pressure it shows
    assert "terminal" in live and "second" in live        # off a terminal: a frame a second


class Tmux:
    """A private tmux server (its own socket) with one pane."""

    def __init__(self):
        self.socket = f"vrange-live-test-{os.getpid()}"

    def __call__(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout

    def pane(self):
        return self("capture-pane", "-p")

    def flag(self, name):
        return self("display-message", "-p", f"#{{{name}}}").strip()

    def wait_for(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pane = self.pane()
            if predicate(pane):
                return pane
            time.sleep(0.1)
        pytest.fail(f"timed out; the pane shows:\n{self.pane()}")

    def kill(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        path = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}",
                            self.socket)
        if os.path.exists(path):   # the server may leave its socket behind
            os.unlink(path)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_live_on_a_real_terminal_redraws_in_place_and_gives_the_terminal_back(build, tmp_path):
    exe = build("vrange_script")
    out, done = tmp_path / "stdout.txt", tmp_path / "done"
    script = tmp_path / "run.sh"
    script.write_text(
        "#!/bin/sh\n"
        "(printf 'map A 64 anon\\nfill A 1\\nvol A 0 32 0\\n'; sleep 3; "
        " printf 'purge\\nvol A 40 8 0\\n'; sleep 3) | "
        # A stale $COLUMNS (readline exports one under pytest): the real size wins.
        f"COLUMNS=80 LINES=24 '{sys.executable}' -m vrangeemu --live '{exe}' > '{out}'\n"
        f"echo \"exit=$?\" > '{done}'\n"
        "sleep 120\n")
    script.chmod(0o755)
    tmux = Tmux()
    try:
        tmux("new-session", "-d", "-x", "110", "-y", "30", "-c", str(ROOT),
             f"PYTHONPATH='{ROOT}' '{script}'")

        def state(vol, purged):
            return lambda pane: (r := row_of(pane)) is not None and r[:2] == (vol, purged)
        pane = tmux.wait_for(state("128.0 KiB", "0 B"))
        assert tmux.flag("cursor_flag") == "0"          # rich hides the cursor while drawing
        assert tmux.flag("alternate_on") == "0"         # inline, not a full-screen takeover
        assert pane.count("vrange-run --live") == 1     # redrawn in place, not scrolled
        assert set(row_of(pane)[2]) == {"█"} and "pressure:" in pane
        assert 80 < max(map(len, pane.splitlines())) <= 110    # the pane's width, not $COLUMNS
        pane = tmux.wait_for(state("160.0 KiB", "128.0 KiB"))
        assert re.fullmatch(r"░+·+█+", row_of(pane)[2])
        assert pane.count("vrange-run --live") == 1
        pane = tmux.wait_for(lambda pane: done.exists() and "ended after" in pane)
        assert done.read_text().strip() == "exit=0"
        assert tmux.flag("cursor_flag") == "1"          # the cursor is back
        assert pane.count("vrange-run --live") == 1 and "\x1b" not in pane
        assert out.read_text() == ("mapped A\nret=131072 errno=0 purged=0\npurged\n"  # untouched
                                   "ret=32768 errno=0 purged=0\n")
    finally:
        tmux.kill()
