"""libvrcache.so, the volatile-caching allocator: correct with every strategy.

Strategy vrange runs under vrange-run, the others bare.  vrange-run starts
env(1), which sets LD_PRELOAD, so only the program gets the allocator and
vrange-run itself stays on libc's.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import NATIVE, ROOT, vrange_run
from vrangeemu import cbuild
from vrangeemu.linux import cgroup as cg

STRATEGIES = ("vrange", "dontneed", "free", "unmap", "keep")
CACHING = ("vrange", "dontneed", "free", "keep")
needs_memcg = pytest.mark.skipif(not (cg.v2_root() or cg.v1_root()),
                                 reason="no memory cgroup controller mounted")


@pytest.fixture(scope="session")
def libvrcache(tmp_path_factory):
    lib = tmp_path_factory.mktemp("vrcache") / "libvrcache.so"
    return cbuild.build(NATIVE / "vrcache" / "vrcache.c", lib,
                        ("-O2", "-Wall", "-Werror", "-pthread"), shared=True, libs=("-ldl",),
                        root=ROOT)


def run(lib, strategy, argv, *, traced=False, vr_args=(), env=(), timeout=120):
    """Run argv with the allocator preloaded; traced: under vrange-run."""
    settings = {"LD_PRELOAD": lib, "VRCACHE_STRATEGY": strategy, "VRCACHE_STATS": "1",
                **dict(env)}
    if traced:
        return vrange_run(*vr_args, "env", *(f"{k}={v}" for k, v in settings.items()),
                          *argv, timeout=timeout)
    return subprocess.run(list(map(str, argv)), env={**os.environ, **settings},
                          capture_output=True, text=True, timeout=timeout)


def allocator_stats(stderr):
    """The counters libvrcache.so printed at exit, summed over processes."""
    total = {}
    for line in stderr.splitlines():
        if line.startswith("vrcache: pid="):
            for key, value in re.findall(r"(\w+)=(\d+)", line):
                if key != "pid":
                    total[key] = total.get(key, 0) + int(value)
            total["strategy"] = re.search(r"strategy=(\w+)", line).group(1)
    assert total, stderr
    return total


def supervisor_stats(path):
    return json.loads(path.read_text())


def summary(proc, least=1000):
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    m = re.search(r"^summary checks=(\d+) bad=0$", proc.stdout, re.M)
    assert m and int(m.group(1)) >= least, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_check_program_passes_with_every_strategy(build, libvrcache, tmp_path, strategy):
    report = tmp_path / "stats.json"
    traced = strategy == "vrange"
    proc = run(libvrcache, strategy, [build("vrcache_check")], traced=traced,
               vr_args=("--stats-json", report))
    out = summary(proc)
    for section in ("basic", "realloc", "calloc", "align", "threads"):
        assert re.search(rf"^{section} checks=[1-9]\d* bad=0$", out, re.M), out
    st = allocator_stats(proc.stderr)
    assert st["strategy"] == strategy and st["fallback"] == 0
    assert st["allocs"] > 1000
    reused = int(re.search(r"calloc_reused=(\d+)", out).group(1))
    if strategy == "unmap":
        assert st["from_cache"] == 0 and st["unmaps"] > 1000
    else:
        # Blocks came back from the cache, calloc ones dirty from a malloc.
        assert st["from_cache"] > st["allocs"] // 2 and reused > 0
    if traced:
        total = supervisor_stats(report)["total"]
        # One VOLATILE per free into the cache, one NONVOLATILE per reuse.
        assert total["calls"] == st["vrange_calls"] > 2000 and total["errors"] == 0
        assert total["marked_bytes"] > 0 and st["vrange_errors"] == 0
        assert st["vrange_calls"] <= 2 * st["allocs"]
    else:
        assert st["vrange_calls"] == 0


def test_vrange_strategy_without_vrange_run_falls_back_to_dontneed(build, libvrcache):
    proc = run(libvrcache, "vrange", [build("vrcache_check"), "basic", "calloc"],
               env={"VRCACHE_VERBOSE": "1"})
    summary(proc)
    assert proc.stderr.count("vrange() is not available") == 1, proc.stderr
    st = allocator_stats(proc.stderr)
    assert st["strategy"] == "dontneed" and st["fallback"] == 1
    assert st["vrange_calls"] == 1 and st["madvise"] > 100   # one probe by a real free


def test_cap_on_cached_bytes_unmaps_the_rest(build, libvrcache):
    proc = run(libvrcache, "keep", [build("vrcache_check"), "basic", "realloc", "calloc"],
               env={"VRCACHE_MAX_CACHED": "4M"})
    summary(proc)
    st = allocator_stats(proc.stderr)
    assert st["unmaps"] > 0 and 0 < st["cached_peak"] <= 4 << 20


@needs_memcg
def test_purged_blocks_come_back_as_fresh_memory_under_a_limit(build, libvrcache, tmp_path):
    # Each round frees 16 MiB into another size class: the cache (~128 MiB,
    # all volatile) cannot stay within 48 MiB, so vrange-run purges it and
    # later rounds reuse purged blocks: written and read back (a page still
    # volatile would raise SIGBUS), calloc'ed ones checked for zeros.
    report = tmp_path / "stats.json"
    proc = run(libvrcache, "vrange", [build("vrcache_check"), "pressure:16"], traced=True,
               vr_args=("--stats-json", report, "--memory-limit", "48M"))
    out = summary(proc, least=300)
    assert re.search(r"^pressure:16 checks=\d+ bad=0$", out, re.M)
    doc = supervisor_stats(report)
    total, pressure = doc["total"], doc["pressure"]
    assert total["purges"] > 0 and total["purged_bytes"] > 0 and total["purged_answers"] > 0
    assert total["volatile_peak"] > 48 << 20     # the cache really outgrew the limit
    assert pressure["over_high"] > 0 and pressure["enforced"] == 0
    st = allocator_stats(proc.stderr)
    assert st["purged_reuses"] == total["purged_answers"] > 0 and st["vrange_errors"] == 0


@needs_memcg
def test_same_workload_with_strategy_keep_is_oom_killed(build, libvrcache):
    proc = run(libvrcache, "keep", [build("vrcache_check"), "pressure:16"], traced=True,
               vr_args=("--memory-limit", "48M"))
    assert proc.returncode == 128 + 9, (proc.returncode, proc.stdout, proc.stderr)


PYTHON_PROGRAM = r"""
import hashlib, os
h = hashlib.sha256()
kept = []
for i in range(40):
    n = 70_000 + i * 37_000
    b = bytes([i % 251]) * n                   # malloc
    ba = bytearray(b)                          # malloc + copy
    ba.extend(b"xyz" * 30_000)                 # realloc: grows
    ba[::4096] = bytes([i % 7]) * len(range(0, len(ba), 4096))
    h.update(ba)
    del ba[n // 3:]                            # realloc: shrinks
    h.update(ba)
    z = bytes(n + 1000)                        # calloc, often a dirty cached block
    assert z.count(0) == len(z), i
    if i % 5 == 0:
        kept.append(b)
    del b, ba, z
pid = os.fork()
if pid == 0:                                   # the child allocates on its own
    big = [bytes([k]) * (300_000 + k * 5_000) for k in range(30)]
    ok = all(x.count(k) == len(x) for k, x in enumerate(big))
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
for b in kept:
    h.update(b)
print(h.hexdigest(), status, sum(map(len, kept)))
"""


@pytest.fixture(scope="module")
def python_expected():
    proc = subprocess.run([sys.executable, "-c", PYTHON_PROGRAM], capture_output=True,
                          text=True, timeout=60, check=True)
    return proc.stdout


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unmodified_python_runs_with_every_strategy(libvrcache, python_expected, tmp_path,
                                                    strategy):
    report = tmp_path / "stats.json"
    traced = strategy == "vrange"
    proc = run(libvrcache, strategy, [sys.executable, "-c", PYTHON_PROGRAM], traced=traced,
               vr_args=("--stats-json", report))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout == python_expected and " 0 " in proc.stdout
    st = allocator_stats(proc.stderr)
    assert st["allocs"] > 100 and st["fallback"] == 0
    if traced:
        assert supervisor_stats(report)["total"]["marked_bytes"] > 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ebizzy_runs_with_every_strategy(build, libvrcache, tmp_path, strategy):
    report = tmp_path / "stats.json"
    traced = strategy == "vrange"
    proc = run(libvrcache, strategy,
               [build("ebizzy"), "-S", 1, "-n", 16, "-s", 256 * 1024, "-t", 2, "-R", 7],
               traced=traced, vr_args=("--stats-json", report),
               env={"VRCACHE_THRESHOLD": "16384"})
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    m = re.fullmatch(r"records_per_s=([\d.]+) maxrss_kb=(\d+) records=(\d+) seconds=[\d.]+ "
                     r"bad=0\n", proc.stdout)
    assert m and float(m.group(1)) > 0 and int(m.group(2)) > 16 * 256
    st = allocator_stats(proc.stderr)
    assert st["allocs"] >= int(m.group(3)) + 16    # every copy came from the allocator
    if traced:
        assert supervisor_stats(report)["total"]["marked_bytes"] > 0


def test_reference_allocator_is_clean_under_forced_purges_and_access_checks(build, libvrcache):
    """The correct allocator never touches a volatile chunk and rebuilds
    purged ones: with every range purged at once and every access checked,
    its data checks pass and nothing is reported."""
    proc = run(libvrcache, "vrange", [build("vrcache_check"), "basic", "realloc", "calloc",
                                      "threads"], traced=True,
               vr_args=("--check-access", "report", "--purge-policy", "always"))
    summary(proc, least=100)
    line = [ln for ln in proc.stderr.splitlines() if "summary:" in ln][0]
    assert "0 volatile access violation(s)" in line
    calls, purges, runs, answers = map(int, re.search(
        r"(\d+) VOLATILE calls, (\d+) purges \((\d+) runs discarded.* (\d+) purged answers",
        line).groups())
    assert calls > 100 and 0 < purges <= runs and answers > 0
    assert allocator_stats(proc.stderr)["purged_reuses"] == answers


JEMALLOC = next(iter(sorted(__import__("glob").glob("/usr/lib/*/libjemalloc.so.2"))), None)


@pytest.mark.skipif(JEMALLOC is None, reason="libjemalloc2 not installed "
                    "(.ci/run installs it: apt-get install libjemalloc2)")
def test_threaded_program_on_jemalloc_is_unaffected_by_access_checks(build, tmp_path):
    """jemalloc makes no vrange call: checked, a threaded program computes
    the same and nothing is reported."""
    report = tmp_path / "stats.json"
    proc = vrange_run("--check-access", "report", "--stats-json", report, "env",
                      f"LD_PRELOAD={JEMALLOC}", build("ebizzy"), "-S", "0.5", "-t", "2",
                      "-n", "64", "-s", "65536")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"records=[1-9]\d* .*bad=0", proc.stdout), proc.stdout
    assert "0 volatile access violation(s); 0 VOLATILE calls" in proc.stderr
    assert supervisor_stats(report)["total"]["calls"] == 0
