"""--trace: the documented events for known programs (docs/trace.md)."""
import signal

import pytest

from conftest import vrange_run
from vrangeemu.observe import trace

PAGE = 4096


def traced(build, tmp_path, script_text, *options):
    exe = build("vrange_script")
    path = tmp_path / "trace.jsonl"
    proc = vrange_run("--trace", path, *options, exe, input=script_text)
    return proc, trace.read(path)


def of(events, ev):
    return [e for e in events if e["ev"] == ev]


@pytest.mark.parametrize("loop", ["native", "python", "ptrace"])
def test_calls_purge_and_repin_are_traced(build, tmp_path, monkeypatch, loop):
    monkeypatch.setenv("VRANGEEMU_FASTPATH", "1" if loop == "native" else "0")
    native_loop = loop == "native"
    proc, events = traced(build, tmp_path, "map A 16 anon\nfill A 1\nvol A 0 8\nvol A 8 8 1\n"
                          "purge\nnonvol A 0 16\nvol A 3 0\n",
                          *(["--trap", "ptrace"] if loop == "ptrace" else []))
    assert proc.returncode == 0, proc.stderr
    assert events[0]["ev"] == "start"
    assert (events[-1]["ev"], events[-1]["how"], events[-1]["value"]) == ("end", "exited", 0)
    assert events[0]["native_loop"] is native_loop
    pid = events[0]["pid"]
    (exec_,) = of(events, "exec")
    assert exec_["pid"] == pid and "vrange_script".startswith(exec_["program"][:13])
    calls = [e for e in of(events, "call") if e["len"] != PAGE]   # the purge barrier is 1 page
    assert [(c["mode"], c["len"], c["ret"], c["errno"], c["purged"]) for c in calls] == [
        ("volatile", 8 * PAGE, 8 * PAGE, 0, False),
        ("volatile", 8 * PAGE, 8 * PAGE, 0, False),
        ("nonvolatile", 16 * PAGE, 16 * PAGE, 0, True),
        ("volatile", 0, -1, 22, False)]     # len 0: EINVAL
    start = calls[0]["start"]
    assert calls[1]["start"] == start + 8 * PAGE and calls[1]["volatile"] == 16 * PAGE
    assert calls[2]["volatile"] == 0 and calls[2]["purged_bytes"] == 0
    assert calls[2]["path"] == "python"      # a purged answer is always decided in Python
    (purge,) = of(events, "purge")
    assert purge["why"] == "signal" and purge["bytes"] == 16 * PAGE
    assert sum(e - s for s, e in purge["runs"]) == 16 * PAGE
    assert purge["runs"][0][0] == start and purge["purged_bytes"] == 16 * PAGE
    assert calls[1]["t"] < purge["t"] < calls[2]["t"]
    # The purge was asked for before the barrier call that follows it in the
    # script (a 1-page NONVOLATILE): it must land before that call is answered.
    (barrier,) = [c for c in of(events, "call") if c["len"] == PAGE]
    assert purge["t"] < barrier["t"]
    (end,) = of(events, "space_end")
    assert end["stats"]["purged_answers"] == 1 and end["stats"]["calls"] == len(of(events, "call"))
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)


def test_sigbus_on_a_purged_page_is_traced(build, tmp_path):
    proc, events = traced(build, tmp_path, "map A 16 anon\nfill A 1\nvol A 0 8\npurge\ntouch A 2\n")
    assert proc.returncode == 128 + signal.SIGBUS
    (bus,) = of(events, "sigbus")
    (call,) = [c for c in of(events, "call") if c["len"] == 8 * PAGE]
    assert bus["addr"] == call["start"] + 2 * PAGE
    assert bus["range"] == [call["start"], call["start"] + 8 * PAGE] and bus["purged"] is True
    assert events[-1]["how"] == "killed" and events[-1]["value"] == signal.SIGBUS


def test_fork_exec_exit_and_samples(tmp_path):
    path = tmp_path / "t.jsonl"
    proc = vrange_run("--trace", path, "sh", "-c", "sleep 0.35 & wait; /bin/true")
    assert proc.returncode == 0, proc.stderr
    events = trace.read(path)
    pid = events[0]["pid"]
    children = {e["pid"] for e in events if e["ev"] in ("fork", "clone") and e["parent"] == pid}
    assert children, events
    programs = {e["program"] for e in of(events, "exec")}
    assert {"sh", "sleep", "true"} <= programs
    exits = {e["tid"] for e in of(events, "exit")}
    assert pid in exits and children & exits
    samples = of(events, "sample")
    assert len({round(s["t"], 1) for s in samples}) >= 2      # sampled while sleep ran
    assert all(s["rss"] > 0 for s in samples)


def test_unwritable_trace_file_is_a_clear_error(tmp_path):
    proc = vrange_run("--trace", tmp_path / "no" / "such" / "dir.jsonl", "true")
    assert proc.returncode == 125
    assert "--trace" in proc.stderr and "Traceback" not in proc.stderr
