"""The teaching demos (demos/), run exactly as the README says: from the
repository root, `python3 demos/NAME.py`.  Each exits 0 only if what it
demonstrates really happened; these tests also check the lines a student is
told to look at."""
import subprocess
import sys

import pytest

from conftest import ROOT


def demo(name):
    proc = subprocess.run([sys.executable, f"demos/{name}.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("DEMO OK"), proc.stdout
    assert "[NO]" not in proc.stdout
    return proc.stdout


def test_volatile_cache_survives_without_pressure_and_is_rebuilt_with_it():
    out = demo("1_volatile_cache")
    run1, run2 = out.split("=== run 2")
    run2 = run2.split("=== what happened")[0]
    assert "| cache marked NONVOLATILE again: purged=0" in run1
    assert "| entries correct: 8/8 (intact)" in run1
    assert "| cache marked NONVOLATILE again: purged=1" in run2
    assert "| rebuilt all 8 entries" in run2 and "| entries correct: 8/8 (rebuilt)" in run2
    assert "has 1 purge event(s), 32.0 MiB discarded" in out
    assert "vrange-report demos/build/1_pressure.trace.jsonl" in out


def test_cache_four_times_the_limit_lives_under_vrange_run():
    out = demo("2_memory_limit")
    assert "| filled the cache: 64 entries x 4 MiB = 256 MiB" in out
    assert "| lookups=300 hits=" in out and " wrong=0 " in out
    # Without vrange-run (where a memory cgroup can be made): the OOM killer.
    assert ("(skipped:" in out
            or "[ok] without vrange-run: killed by signal 9 (the OOM killer)" in out)
    assert "[ok] under vrange-run: exit status 0, 300 lookups, wrong=0" in out
    assert "[ok] --stats and the trace count the same purges" in out   # one meaning of "purges"
    assert "vrange-report demos/build/2_memory_limit.trace.jsonl" in out


def test_fork_cow_keeps_pages_a_child_needs_until_it_exits():
    out = demo("3_fork_cow")
    assert "| parent: after purge 1: A resident 1024/1024 pages, B resident 0/1024" in out
    assert "| child:  after the purge: A resident 1024/1024 pages, B resident 0/1024" in out
    assert "| child:  A data intact" in out
    assert "| parent: after purge 2: A resident 0/1024 pages" in out
    assert "| parent: re-pinned A: purged=1 data=zeros" in out


def test_sigbus_kills_without_a_handler_and_a_handler_recovers():
    out = demo("4_sigbus")
    assert "exit status 135 (128 + signal 7)" in out
    lines = out.splitlines()
    assert sum("volatile data=ok sigbus=1 (handler: re-pin said purged=1, rebuilt)" in ln
               for ln in lines) == 13
    assert "has 13 sigbus events" in out
    assert "| chunk  0 'A' volatile data=zero sigbus=0" in out   # --purged-access zero


@pytest.mark.parametrize("name", ["1_volatile_cache", "2_memory_limit", "3_fork_cow",
                                  "4_sigbus"])
def test_demos_are_listed_in_the_readme(name):
    assert f"python3 demos/{name}.py" in (ROOT / "README.md").read_text()
