"""Purges that meet what a program can do meanwhile: lock part of a range,
move its vDSO, exec from another thread, take signals (issue 12's faults)."""
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import VRANGE_RUN, vrange_run
from helpers import spawned, wait_for

PAGE = 4096


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_partly_locked_range_loses_only_its_unlocked_pages_and_says_so(script, trap):
    out = script("native", "--trap", trap).run(
        "map A 8 anon\nfill A 1\nvol A 0 8\nmlock A 2 2\npurge\nnonvol A 0 8\ncheck A 1\n")
    assert out.calls[-1]["purged"] == 1
    # The locked pages 2-3 kept their data; the rest was discarded and reported.
    assert out.checks["A"] == dict(good=2, zero=6, bad=0)
    assert out.checks_list[-1] == out.checks["A"]


def test_a_madvise_that_fails_midway_records_exactly_what_it_discarded(script, monkeypatch):
    # With locked memory not left out up front, madvise discards pages 0-1,
    # then fails with EINVAL at the locked pages 2-3 and never reaches 4-7.
    monkeypatch.setenv("VRANGEEMU_TEST_FAULT", "no-lock-check")
    out = script().run("map A 8 anon\nfill A 1\nvol A 0 8\nmlock A 2 2\npurge\n"
                       "nonvol A 0 2\nnonvol A 2 6\ncheck A 1\n")
    assert [c["purged"] for c in out.calls[-2:]] == [1, 0]
    assert out.checks["A"] == dict(good=6, zero=2, bad=0)


@pytest.mark.parametrize("how", ["unmap", "move"])
@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_purges_go_on_after_the_program_moves_its_vdso(build, how, trap):
    proc = vrange_run("--trap", trap, build("purge_after_vdso_moved"), how, timeout=30)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "purged first=1 second=1 zero=64" in proc.stdout


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_exec_by_another_thread_during_a_purge_is_followed(build, trap):
    # Each round execs while 128 MiB are being purged in the main thread.
    proc = vrange_run("--trap", trap, build("exec_during_purge"), timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "exec rounds done" in proc.stdout


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_signals_sent_during_purges_keep_payload_sender_and_order(build, trap):
    proc = vrange_run("--trap", trap, "--stats", build("signals_during_purges"), timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "rt received=2000 in_order=2000 si_queue=2000 sender=2000 of 2000" in proc.stdout
    # total: calls, errors, volatile, purged, purges
    total = re.search(r"^\s+total\s+\d+\s+\d+\s+\S+ \S+\s+\S+ \S+\s+(\d+)", proc.stderr, re.M)
    assert total and int(total.group(1)) >= 10, proc.stderr   # purges really ran meanwhile


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_killing_vrange_run_at_any_instant_never_kills_the_program(build, trap):
    exe = build("purges_until_supervisor_dies")
    rng = random.Random(1234)
    for _ in range(8):
        with spawned([*VRANGE_RUN, "--trap", trap, exe], stdout=subprocess.PIPE) as child:
            child.stdout.until("first round done")
            time.sleep(rng.uniform(0.0, 0.3))     # purges keep coming meanwhile
            child.proc.kill()                      # SIGKILL to vrange-run alone
            out = child.stdout.rest()              # the program holds stdout until it ends
        assert re.search(r"survived rounds=\d+ errno=38 pinned_ok=1 mask_ok=1 signal_ok=1",
                         out), out


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_a_purge_in_slices_is_whole_for_every_call_made_after_its_request(build, trap):
    # 1000 runs: the purger thread discards them a slice at a time while calls
    # are served; a re-pin of a run the slices have not reached yet settles
    # it first, and a range marked meanwhile goes with the next request.
    proc = vrange_run("--trap", trap, "--pressure", "none", build("purge_in_slices"), timeout=60)
    assert "slices purged=1000 zero=1000 of 1000 late=1" in proc.stdout, (proc.stdout, proc.stderr)
    assert proc.returncode == 0


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_a_first_purge_whose_first_slice_holds_nothing_volatile_still_purges_the_rest(script, trap):
    # Page 0 is volatile but never touched; 100 resident pages that are not
    # volatile come next, then volatile page 299.  The first purge runs in a
    # program thread (no purger thread yet) and its first slice of resident
    # runs clips to nothing: the rest used to be dropped (purged=0).
    text = "\n".join(["map R 300 anon", "vol R 0 1"]
                     + [f"fill R 2 {2 * k + 2} 1" for k in range(100)]
                     + ["fill R 1 299 1", "vol R 299 1", "purge", "nonvol R 299 1",
                        "check R 1 299 1"]) + "\n"
    out = script("native", "--trap", trap).run(text)
    assert out.calls[-1]["purged"] == 1
    assert out.checks["R"] == dict(good=0, zero=1, bad=0)


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_with_everything_purged_a_new_range_is_still_purged_by_the_next_request(script, trap):
    # After the first purge every volatile page is purged, so a request
    # needs no scan; a range marked after that must still go.
    out = script("native", "--trap", trap).run(
        "map A 4 anon\nfill A 1\nvol A 0 4\npurge\npurge\nmap B 4 anon\nfill B 3\n"
        "vol B 0 4\npurge\nnonvol B 0 4\nnonvol A 0 4\ncheck B 3\n")
    assert [c["purged"] for c in out.calls[-2:]] == [1, 1]
    assert out.checks["B"] == dict(good=0, zero=4, bad=0)


def test_a_storm_of_purge_requests_over_256_processes_keeps_every_answer_right(build):
    # 256 processes, each marking a range, forking (a child that inherits it,
    # one that execs), then asking for a purge and re-pinning, while SIGUSR1
    # comes every millisecond.  Each request met every space: the loop did
    # nothing but purge, and the program made no progress until the storm
    # ended.  A request's interrupt was also lost to a fork's event stop (any
    # ptrace stop clears a pending interrupt): the re-pin was answered before
    # the purge (purged=0) or answered errno 513 (ERESTARTNOINTR).
    exe = build("fork_storm_follows_ranges")
    with spawned([*VRANGE_RUN, exe, "storm", "400"], stdout=subprocess.PIPE) as child:
        children = f"/proc/{child.proc.pid}/task/{child.proc.pid}/children"
        wait_for(lambda: open(children).read().strip(), "the program to start", child=child)
        deadline = time.monotonic() + 60   # SIGUSR1 is handled from here on
        while child.proc.poll() is None and time.monotonic() < deadline:
            try:
                os.kill(child.proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                break
            time.sleep(0.001)
        out = child.stdout.rest()
        assert child.proc.wait(timeout=30) == 0, out
    assert "storm children=256 ok=256" in out, out
