"""Stops the native loop follows without Python (native/ext/follow.c):
forks, execs, exits and signals of processes without volatile ranges, with
ranges appearing between and around them.  Every result must be what the
Python loop gives (VRANGEEMU_FOLLOW=0)."""
import os

import pytest

from conftest import vrange_run
from vrangeemu.observe import trace

FOLLOW = pytest.mark.parametrize("follow", ["1", "0"])


def run(build, *args, follow="1", options=(), timeout=120):
    env = dict(os.environ, VRANGEEMU_FOLLOW=follow)
    return vrange_run(*options, build("fork_storm_follows_ranges"), *args, env=env,
                      timeout=timeout)


@FOLLOW
def test_a_range_marked_after_a_followed_fork_is_the_parents_alone(build, follow):
    # The child shares the pages but never marked them: a purge takes them
    # from neither, so the fork must be applied before the parent's mark.
    proc = run(build, "between", 20, follow=follow)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "between rounds=20 bad=0\n"


@FOLLOW
def test_a_fork_storm_with_ranges_in_children_and_grandchildren(build, follow):
    proc = run(build, "storm", 24, follow=follow)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "storm children=24 ok=24\n"


def process_events(path):
    """The fork/exec/exit/space_end events of a trace, pids numbered in order
    of appearance (they differ from run to run)."""
    names = {}

    def name(pid):
        return names.setdefault(pid, len(names))
    out = []
    for e in trace.read(path):
        if e["ev"] in ("fork", "clone"):
            out.append((e["ev"], name(e["parent"]), name(e["pid"]), e["vfork"], e["ranges"]))
        elif e["ev"] == "exec":
            out.append(("exec", name(e["pid"]), e["program"]))
        elif e["ev"] == "exit":
            out.append(("exit", name(e["tid"]), e["how"], e["value"]))
        elif e["ev"] == "space_end":
            out.append(("space_end", name(e["pid"]), e["program"], e["stats"]["calls"]))
    return out


def test_followed_stops_trace_as_the_python_loop_does(tmp_path):
    # One process at a time (the order is then fixed): fork + exec, vfork +
    # exec (system()), a child killed by a signal, and exit statuses.
    script = "/bin/true; (exit 3); sh -c 'kill -TERM $$'; env true; exit 5"
    traces = {}
    for follow in ("1", "0"):
        path = tmp_path / f"trace{follow}.jsonl"
        proc = vrange_run("--trace", path, "/bin/sh", "-c", script,
                          env=dict(os.environ, VRANGEEMU_FOLLOW=follow))
        assert proc.returncode == 5, proc.stderr
        traces[follow] = process_events(path)
    assert traces["1"] == traces["0"]
    assert [e[2:] for e in traces["1"] if e[0] == "exit"] == [
        ("exited", 0), ("exited", 3), ("killed", 15), ("exited", 0), ("exited", 5)]


@FOLLOW
def test_job_control_and_signals_of_followed_processes(follow):
    # A child stopped and continued (its group-stop is Python's, and so its
    # next stop), a signal with a handler, a child killed: statuses as bare.
    script = ("sleep 0.3 & p=$!; kill -STOP $p; sleep 0.05; kill -CONT $p; wait $p; echo a=$?;"
              " trap 'echo usr1' USR1; kill -USR1 $$; sh -c 'kill -KILL $$'; echo b=$?")
    proc = vrange_run("/bin/sh", "-c", script, env=dict(os.environ, VRANGEEMU_FOLLOW=follow))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a=0\nusr1\nb=137\n"


def test_a_bug_while_applying_followed_stops_leaves_nothing_stopped():
    # Children the native loop followed but the table never got to know
    # (their fork not applied) must be detached too: the program finishes.
    script = "for i in 1 2 3 4 5 6 7 8; do /bin/true & done; wait; /bin/true; exit 6"
    proc = vrange_run("/bin/sh", "-c", script, timeout=30,
                      env=dict(os.environ, VRANGEEMU_TEST_FAULT="follow",   # the C follower's
                               VRANGEEMU_FASTPATH="1", VRANGEEMU_FOLLOW="1"))
    assert proc.returncode == 6, proc.stderr
    assert "internal error" in proc.stderr
