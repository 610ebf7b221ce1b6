"""vrange-report: series extracted from real traces, the pictures, the CLI."""
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, vrange_run
from helpers import help_options, help_sections
from vrangeemu.observe import trace
from vrangeemu.report import series
from vrangeemu.report.figure import figure

PAGE = 4096
REPORT = [sys.executable, "-m", "vrangeemu.report"]
SCRIPT = "map A 64 anon\nfill A 1\nvol A 0 32\npurge\nnonvol A 0 64\n"


def report(*args):
    return subprocess.run([*REPORT, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def of(events, ev):
    return [e for e in events if e["ev"] == ev]


@pytest.fixture(scope="module")
def script_trace(build, tmp_path_factory):
    """A real traced run: 32 of 64 filled pages made volatile, purged (SIGUSR1), re-pinned."""
    path = tmp_path_factory.mktemp("plot") / "script.jsonl"
    proc = vrange_run("--trace", path, build("vrange_script"), input=SCRIPT)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def sleep_trace(tmp_path_factory):
    """A shell that vforks a sleep: two processes, pressure readings and samples."""
    path = tmp_path_factory.mktemp("plot") / "sleep.jsonl"
    proc = vrange_run("--trace", path, "sh", "-c", "sleep 0.4; true")
    assert proc.returncode == 0, proc.stderr
    return path


# --- (2) the series match the trace ----------------------------------------

def test_series_of_a_purged_script_match_its_trace(script_trace):
    events = trace.read(script_trace)
    run = series.timeline(events)
    pid = events[0]["pid"]
    assert run.argv == events[0]["argv"] and run.how == "exited" and run.value == 0
    assert list(run.processes) == [pid]
    p = run.processes[pid]
    calls, (purge,) = of(events, "call"), of(events, "purge")

    # volatile: peaks where the calls said, 32 pages; back to 0 after the re-pin
    assert max(v for _, v in p.volatile) == max(c["volatile"] for c in calls) == 32 * PAGE
    assert p.volatile[-1] == (calls[-1]["t"], 0)
    # purged: jumps at the purge's t by its bytes, and the re-pin answer clears it
    before = [v for t, v in p.purged if t < purge["t"]][-1]
    assert (purge["t"], before + purge["bytes"]) in p.purged
    assert purge["bytes"] == 32 * PAGE and before == 0
    assert p.purged[-1] == (calls[-1]["t"], 0)
    # RSS: the purge's rss_anon (the run is too short for a sample)
    assert (purge["t"], purge["rss_anon"]) in p.rss
    assert [(t, why) for t, why, _ in p.purges] == [(purge["t"], "signal")]
    assert p.calls == len(calls) and p.purged_answers == 1 and p.errors == 0
    assert p.programs == [(of(events, "exec")[0]["t"], of(events, "exec")[0]["program"])]

    (row,) = series.totals(run)
    assert row["peak_volatile"] == 32 * PAGE and row["purged_bytes"] == 32 * PAGE
    assert row["purges"] == 1 and row["exit"] == "exit 0"


def test_series_of_a_shell_and_its_child_match_their_samples(sleep_trace):
    events = trace.read(sleep_trace)
    run = series.timeline(events)
    samples = of(events, "sample")
    assert len({round(s["t"], 1) for s in samples}) >= 2
    sh = run.processes[events[0]["pid"]]
    children = [p for p in run.processes.values() if p.parent == sh.pid]
    assert children and sh.children
    assert "sleep" in {n for p in children for _, n in p.programs}
    for pid, p in run.processes.items():
        mine = [s for s in samples if s["pid"] == pid]
        assert p.rss == [(s["t"], s["rss"]) for s in mine]
        assert [x for x in p.volatile if x[0] in {s["t"] for s in mine}] == \
            [(s["t"], s["volatile"]) for s in mine]
        assert p.end == max(e["t"] for e in of(events, "space_end") if e["pid"] == pid)
    readings = of(events, "pressure")
    assert run.pressure and run.pressure.usage == [(r["t"], r["usage"]) for r in readings]
    assert run.pressure.psi == readings[0]["source"].startswith("PSI")


def test_fork_child_starts_from_its_parents_volatile_bytes():
    events = [
        {"t": 0, "ev": "start", "argv": ["p"], "pid": 1},
        {"t": 1, "ev": "exec", "pid": 1, "program": "p"},
        {"t": 2, "ev": "call", "pid": 1, "tid": 1, "mode": "volatile", "start": 0, "len": 8192,
         "ret": 8192, "errno": 0, "purged": False, "path": "native", "volatile": 8192,
         "purged_bytes": 0},
        {"t": 3, "ev": "fork", "parent": 1, "pid": 2, "tid": 2, "vfork": False, "ranges": 1},
        {"t": 4, "ev": "clone", "parent": 1, "pid": 1, "tid": 3, "vfork": True, "ranges": 1},
        {"t": 5, "ev": "exec", "pid": 3, "program": "sh"},
        {"t": 6, "ev": "exit", "tid": 2, "how": "killed", "value": 9},
        {"t": 6, "ev": "space_end", "pid": 2, "program": "p"}]
    run = series.timeline(events)
    assert list(run.processes) == [1, 2, 3]
    child, spawned = run.processes[2], run.processes[3]
    assert (child.born, child.parent, child.volatile, child.name) == ("fork", 1, [(3, 8192)], "p")
    assert (child.how, child.value, child.end) == ("killed", 9, 6)
    assert (spawned.born, spawned.parent, spawned.ran) == ("vfork", 1, "sh")
    assert run.processes[1].children == [(3, 2, "fork"), (4, 3, "vfork")]
    assert run.how is None and run.t_end == 6     # no end event: cut short


def test_the_pure_part_needs_no_matplotlib(script_trace):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from vrangeemu.report import series, cli\n"
            f"run = series.timeline(series.load({str(script_trace)!r}))\n"
            "print(len(run.processes), series.totals(run)[0]['purges'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.split() == ["1", "1"], proc.stderr


# --- (3) the pictures ---------------------------------------------------------

def test_figure_marks_every_purge_sigbus_and_exec(build, tmp_path):
    path = tmp_path / "bus.jsonl"
    proc = vrange_run("--trace", path, build("vrange_script"),
                      input="map A 16 anon\nfill A 1\nvol A 0 8\npurge\ntouch A 2\n")
    assert proc.returncode == 128 + 7, proc.stderr     # SIGBUS
    events = trace.read(path)
    run = series.timeline(events)
    fig = figure(run)
    by_gid = {a.get_gid(): a for ax in fig.axes for a in ax.get_children() if a.get_gid()}
    pid = events[0]["pid"]
    purges = by_gid[f"purges-signal-{pid}"]
    assert len(purges.get_segments()) == len(of(events, "purge")) == 1
    assert list(purges.get_segments()[0][:, 0]) == [of(events, "purge")[0]["t"]] * 2
    assert list(by_gid[f"sigbus-{pid}"].get_xdata()) == [e["t"] for e in of(events, "sigbus")]
    assert of(events, "exec")[0]["t"] in list(by_gid[f"lifecycle-{pid}"].get_xdata())
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("purge (signal)") for t in texts), texts
    assert fig.axes[-1].get_xlabel().endswith("(s)")
    assert fig.axes[0].get_ylabel() == "MiB"
    assert run.title in fig._suptitle.get_text()


def test_png_is_a_real_non_blank_image(script_trace, tmp_path):
    from matplotlib import image
    out = tmp_path / "run.png"
    proc = report(script_trace, "-o", out)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(out)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert pixels[..., :3].var() > 0.005          # not one flat colour
    assert (pixels[..., :3] < 0.5).mean() > 0.002  # some ink


def test_svg_parses_and_has_one_marker_per_purge(script_trace, tmp_path):
    out = tmp_path / "run.svg"
    proc = report(script_trace, "-o", out)
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    events = trace.read(script_trace)
    groups = [g for g in root.iter() if g.get("id", "").startswith("purges-")]
    paths = [p for g in groups for p in g.iter() if p.tag.endswith("path")]
    assert len(paths) == len(of(events, "purge"))


def test_html_inlines_the_svg_and_the_totals(sleep_trace, script_trace, tmp_path):
    out = tmp_path / "run.html"
    proc = report(script_trace, "-o", out)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "</svg>" in page
    assert "<?xml" not in page and "src=" not in page    # self-contained
    events = trace.read(script_trace)
    pid = events[0]["pid"]
    table = page[page.index('<table id="totals">'):page.index("</table>")]
    row = re.search(rf"<tr><td>{pid}</td>(.*?)</tr>", table).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[2:5] == [str(len(of(events, "call"))), "0", "128.0 KiB"]   # calls, errors, marked
    assert cells[6:8] == ["1", "128.0 KiB"]                                 # purges, purged
    assert cells[-1] == "exit 0"

    out2 = tmp_path / "sleep.html"
    assert report(sleep_trace, "-o", out2).returncode == 0
    page2 = out2.read_text()
    assert "sleep" in page2 and page2.count("<tr><td>") == len(series.timeline(
        trace.read(sleep_trace)).processes)


def test_output_defaults_to_the_trace_name_with_png(script_trace, tmp_path):
    copy = tmp_path / "mine.jsonl"
    copy.write_bytes(script_trace.read_bytes())
    proc = report(copy)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mine.png").read_bytes()[:4] == b"\x89PNG"


def test_it_says_what_it_wrote(script_trace, tmp_path):
    out = tmp_path / "run.svg"
    proc = report(script_trace, "-o", out)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    events = len(trace.read(script_trace))
    assert proc.stdout == f"vrange-report: wrote {out} ({events} events)\n"
    assert out.stat().st_size > 0


def test_max_processes_limits_the_rows(sleep_trace, tmp_path):
    run = series.timeline(trace.read(sleep_trace))
    assert len(run.processes) >= 2
    assert len(figure(run).axes) == len(run.processes) + 1    # + pressure
    assert len(figure(run, most=1).axes) == 2


# --- (4) the command's errors ----------------------------------------------------

def assert_clean_error(proc, status, *words):
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("vrange-report: ") or status == 2
    lines = proc.stderr.strip().splitlines()
    assert status == 2 or len(lines) == 1, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_missing_file_is_one_line_exit_1(tmp_path):
    proc = report(tmp_path / "nope.jsonl", "-o", tmp_path / "x.png")
    assert_clean_error(proc, 1, "nope.jsonl", "No such file")
    assert not (tmp_path / "x.png").exists()


def test_empty_file_is_one_line_exit_1(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    assert_clean_error(report(tmp_path / "empty.jsonl"), 1, "empty")


@pytest.mark.parametrize("content, words", [
    ("this is not json\nat all\n", ("not a vrange-run --trace file", "JSON")),
    ("garbage without newline", ("no events",)),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary\n", ("not a vrange-run --trace file",)),
    ("[1, 2, 3]\n", ("not a trace event",)),
    ('{"t": 0.1, "ev": "call", "pid": 5}\n', ("event 1 (call) lacks the field 'ret'",)),
])
def test_garbage_is_one_line_exit_1(tmp_path, content, words):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_clean_error(report(path, "-o", tmp_path / "bad.png"), 1, *words)
    assert not (tmp_path / "bad.png").exists()


def test_a_directory_or_unwritable_output_is_exit_1(script_trace, tmp_path):
    assert_clean_error(report(tmp_path), 1, str(tmp_path))
    assert_clean_error(report(script_trace, "-o", tmp_path / "no" / "dir.png"), 1, "dir.png")


def test_unknown_extension_and_missing_file_argument_are_usage_errors(script_trace, tmp_path):
    proc = report(script_trace, "-o", tmp_path / "out.jpeg")
    assert_clean_error(proc, 2, ".jpeg", "usage:")
    assert_clean_error(report(), 2, "usage:")
    assert_clean_error(report(script_trace, "--max-processes", "0"), 2, "at least 1")


def test_help_explains_the_panels():
    proc = report("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: vrange-report ")
    assert any("FILE" in listed for listed in help_sections(proc.stdout).values())
    options = help_options(proc.stdout)
    assert {"-o", "--output", "--max-processes"} <= set(options), options
    for ext in (".png", ".svg", ".html"):    # the formats -o can write
        assert ext in options["-o"], options["-o"]
    for word in ("purge", "SIGBUS", "PSI", "MiB"):    # what the panels show
        assert word in proc.stdout


def test_a_torn_last_line_is_skipped(script_trace, tmp_path):
    text = script_trace.read_text()
    torn = tmp_path / "torn.jsonl"
    torn.write_text(text + '{"t": 9.9, "ev": "sam')   # vrange-run killed mid-write
    assert report(torn, "-o", tmp_path / "torn.png").returncode == 0
    assert json.loads(text.splitlines()[0])["ev"] == "start"
