"""--purge-policy and --check-access on a small block cache with known bugs
(native/progs/buggy_allocator.c): each bug is caught, the correct cache passes."""
import re

import pytest

from conftest import vrange_run
from vrangeemu.supervisor.checks import EXIT_VIOLATION
from vrangeemu.linux import cgroup as cg


def touched(stdout):
    return [int(a, 16) for a in re.findall(r"touching (0x[0-9a-f]+)", stdout)]


def reported(stderr):
    return [int(a, 16) for a in re.findall(r"touched (0x[0-9a-f]+) at ip 0x[0-9a-f]+", stderr)]


def summary(stderr):
    (line,) = [ln for ln in stderr.splitlines() if "summary:" in ln]
    return line


def test_touch_after_marking_is_reported_and_the_program_goes_on(build):
    proc = vrange_run("--check-access", "report", build("buggy_allocator"), "touch", "3")
    assert proc.returncode == EXIT_VIOLATION, proc.stderr
    assert "done bad=0" in proc.stdout        # it ran to the end, its data intact
    assert reported(proc.stderr) == touched(proc.stdout) and len(touched(proc.stdout)) == 24
    assert "24 volatile access violation(s) in 1 process(es)" in summary(proc.stderr)
    assert "that page was not purged" in proc.stderr


def test_touch_after_marking_aborts_at_the_first_access(build):
    proc = vrange_run("--check-access", "abort", build("buggy_allocator"), "touch", "3")
    assert proc.returncode == EXIT_VIOLATION
    assert "done" not in proc.stdout
    assert reported(proc.stderr) == touched(proc.stdout)[:1] == touched(proc.stdout)
    assert "killing the program" in proc.stderr and "Traceback" not in proc.stderr


def test_touch_of_a_forced_purge_is_reported_as_purged(build):
    proc = vrange_run("--check-access", "report", "--purge-policy", "always",
                      build("buggy_allocator"), "touch", "2")
    assert proc.returncode == EXIT_VIOLATION
    assert reported(proc.stderr) == touched(proc.stdout)
    assert proc.stderr.count("that page was purged") == 16


def test_without_checking_a_forced_purge_turns_the_touch_into_sigbus(build):
    proc = vrange_run("--purge-policy", "always", build("buggy_allocator"), "touch", "2")
    assert proc.returncode == 128 + 7       # SIGBUS at the first touch
    assert len(touched(proc.stdout)) == 1


def test_ignored_purged_answer_shows_up_at_once_with_forced_purges(build):
    exe = build("buggy_allocator")
    hidden = vrange_run(exe, "ignore", "3")
    assert hidden.returncode == 0 and "done bad=0" in hidden.stdout   # no pressure: unseen
    caught = vrange_run("--purge-policy", "always", exe, "ignore", "3")
    assert caught.returncode == 1 and "done bad=16" in caught.stdout
    assert "24 VOLATILE calls" in summary(caught.stderr)


def test_correct_cache_passes_clean_under_every_check(build):
    proc = vrange_run("--check-access", "report", "--purge-policy", "always",
                      build("buggy_allocator"), "correct", "3")
    assert proc.returncode == 0, proc.stderr
    assert "done bad=0" in proc.stdout
    line = summary(proc.stderr)
    assert "0 volatile access violation(s)" in line
    assert "24 runs discarded" in line and "16 purged answers" in line


def test_random_policy_is_reproducible_with_its_seed(build):
    exe = build("buggy_allocator")
    runs = [vrange_run("--purge-policy", "random", "--seed", seed, exe, "ignore", "6")
            for seed in (1, 1, 2)]
    assert "seed 1 (repeat with --seed 1)" in runs[0].stderr
    bad = [re.search(r"done bad=(\d+)", r.stdout).group(1) for r in runs]
    assert bad[0] == bad[1] and summary(runs[0].stderr) == summary(runs[1].stderr)
    assert int(bad[0]) > 0                       # p = 0.5 over 40 re-pins
    assert summary(runs[0].stderr) != summary(runs[2].stderr) or bad[0] != bad[2]


@pytest.mark.parametrize("bad", [["--purge-probability", "2"], ["--purge-policy", "often"],
                                 ["--check-access", "maybe"], ["--purge-delay", "-1"],
                                 ["--seed", "x"]])
def test_bad_options_are_usage_errors(bad):
    proc = vrange_run(*bad, "true")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"vrange-run: argument {bad[0]}") and "--help" in proc.stderr


@pytest.mark.skipif(not (cg.v2_root() or cg.v1_root()), reason="no memory cgroup controller")
def test_checked_cache_still_fits_its_memory_limit(build):
    """Pressure purges still land while every call stops in ptrace for the
    checks (a purge asked for meanwhile runs at the call's own stop)."""
    proc = vrange_run("--check-access", "report", "--memory-limit", "64M",
                      build("cache_under_limit"), 64, 200, 8)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"rebuilt=[1-9]\d* .*bad=0 hot_bad=0", proc.stdout), proc.stdout
    assert "0 volatile access violation(s)" in summary(proc.stderr)


def test_check_access_gives_a_repinned_range_back_the_protection_it_had(script):
    # R: read-only, W: read-write, X: a read-only page, then a read-write
    # one, marked as one volatile range.  A re-pin used to make all rw-.
    out = script("native", "--check-access", "report").run(
        "map R 2 ro\nmap W 2 anon\nmap X 2 anon\nmprotect X 0 1 r\n"
        "vol R 0 2\nvol W 0 2\nvol X 0 2\nperm R 0\nperm X 1\n"
        "nonvol R 0 2\nnonvol W 0 2\nnonvol X 0 2\n"
        "perm R 0\nperm R 1\nperm W 0\nperm X 0\nperm X 1\n")
    perms = re.findall(r"perm (\w \d) (\S+)", out.text)
    assert perms[:2] == [("R 0", "---p"), ("X 1", "---p")]   # PROT_NONE while volatile
    assert perms[2:] == [("R 0", "r--p"), ("R 1", "r--p"), ("W 0", "rw-p"),
                         ("X 0", "r--p"), ("X 1", "rw-p")]
    assert all(call["errno"] == 0 for call in out.calls)
