"""Purging under real memory pressure: cgroup limits (v1 here), RSS budget."""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, VRANGE_RUN, vrange_run
from helpers import spawned
from vrangeemu import cbuild
from vrangeemu.linux import cgroup as cg

MiB = 1 << 20
CAN_CREATE = cg.v2_root() or cg.v1_root()
needs_memcg = pytest.mark.skipif(not CAN_CREATE, reason="no memory cgroup controller mounted")


def stats_row(stderr, program):
    m = re.search(rf"^\s+\d+ {program}\S*\s+(\d+)\s+(\d+)\s+(\S+ \S+)\s+(\S+ \S+)\s+(\d+)\s+(\d+)",
                  stderr, re.M)
    assert m, stderr
    return m.groups()


def leftover_cgroups():
    found = []
    for version, root in ((2, cg.v2_root()), (1, cg.v1_root())):
        if root:
            parent = os.path.join(root, cg.own_path(version).lstrip("/"))
            found += [d for d in os.listdir(parent) if d.startswith("vrange-run-")]
    return found


def group_paths(pid):
    """Where vrange-run `pid` makes its cgroup (one path per hierarchy)."""
    return [os.path.join(root, cg.own_path(version).lstrip("/"), f"vrange-run-{pid}")
            for version, root in ((2, cg.v2_root()), (1, cg.v1_root())) if root]


def watchdogs(paths):
    """pids of the cgroup watchdogs of those groups still running."""
    wanted = {os.fsencode(p) for p in paths}
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")     # a zombie's is empty
        except OSError:
            continue
        if any(a.endswith(b"cgroup_watchdog.py") for a in argv) and wanted & set(argv):
            found.append(int(entry))
    return found


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def process_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def clean_up_groups(paths):
    """A test that failed may leave its group: empty it and remove it."""
    for path in filter(os.path.isdir, paths):
        group = cg.Cgroup(path, 2 if path.startswith(cg.v2_root() or "\0") else 1)
        try:
            group.enforce(64 * MiB)
            for pid in group.read("cgroup.procs").split():
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
        group.remove(timeout=5)


@needs_memcg
def test_cache_four_times_the_limit_survives_under_vrange_run(build, tmp_path):
    report = tmp_path / "stats.json"
    proc = vrange_run("--stats", "--stats-json", report, "--memory-limit", "64M",
                      build("cache_under_limit"), 64, 400, 8)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"steps=400 rebuilt=(\d+) verified=(\d+) bad=0 hot_bad=0 enosys=0", proc.stdout)
    assert m, proc.stdout
    assert int(m.group(1)) > 64     # chunks came back purged and were rebuilt
    calls, errors, marked, purged, purges, answered = stats_row(proc.stderr, "cache_under_lim")
    assert int(purges) > 0 and int(answered) > 0
    assert not leftover_cgroups()
    doc = json.loads(report.read_text())
    (process,) = doc["processes"]
    pressure = doc["pressure"]
    assert process["calls"] == 800 and process["purges"] == int(purges)
    assert process["purged_answers"] == int(answered) and process["purged_bytes"] > 0
    assert 0 < process["volatile_peak"] <= 64 * 4 * MiB
    # Pressure saw volatile memory resident, never more than the cgroup held.
    assert 0 < process["resident_volatile_peak"] < pressure["max_usage"]
    pressure = doc["pressure"]
    assert pressure["source"].startswith("cgroup v") and pressure["limit"] == 64 * MiB
    assert pressure["checks"] >= pressure["over_high"] > 0 and pressure["max_usage"] > 0


@needs_memcg
def test_same_cache_without_vrange_run_is_oom_killed(build, tmp_path):
    group = cg.Cgroup.create(f"vrange-test-{os.getpid()}")
    assert group is not None
    try:
        group.enforce(64 * MiB)
        procs = group.file("cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write("0")
        proc = subprocess.run([build("cache_under_limit"), "64", "400", "8"], preexec_fn=join,
                              capture_output=True, text=True, timeout=120)
    finally:
        group.remove()
    assert proc.returncode == -9, (proc.returncode, proc.stdout)   # SIGKILL: the OOM killer


@needs_memcg
def test_limit_is_enforced_once_nothing_volatile_is_left(build):
    # 96 MiB of pinned data cannot fit in 64 MiB: after purging what it could
    # (nothing), vrange-run lets the kernel enforce the limit.
    proc = vrange_run("--memory-limit", "64M", build("vrange_script"),
                      input="map A 24576 anon\nfill A 1\nrss\n", timeout=60)
    assert proc.returncode == 128 + 9
    assert "nothing volatile left to purge" in proc.stderr
    assert not leftover_cgroups()


@needs_memcg
def test_vrange_run_killed_under_pressure_gives_the_group_back_to_the_kernel(build):
    """Issue 12, fault 5.  vrange-run holds its group with the OOM killer off
    (v1) and a margin above SIZE while it purges; SIGKILLed there, it used to
    leave the program to pause at the margin for ever (D state) in a group
    nobody removed.  Its watchdog must give the group the OOM killer and
    SIZE back, so the grower is OOM-killed near 32 MiB, and remove the
    group once the program is gone."""
    paths = []
    try:
        with spawned([*VRANGE_RUN, "-v", "--memory-limit", "32M",
                      build("volatile_then_grow_until_killed"), 16, 16, 200],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE) as child:
            paths = group_paths(child.pid)
            grower = int(child.stdout.until("grower ").split()[1])
            child.stdout.until("gate 16")
            # 16 volatile + 16 MiB grown is past the high mark: pressure
            # has purged the volatile MiBs; the group is held with the OOM
            # killer off, waiting for more to purge.
            child.stderr.until(re.compile(r"purged \d+ bytes").search, what="a purge")
            assert any(map(os.path.isdir, paths))
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            child.send("go\n")            # the grower grows on, 1 MiB every 10 ms
            try:
                end = child.stdout.until("grower ", timeout=10)
            except pytest.fail.Exception:
                pytest.fail(f"the grower did not end; its state: {process_state(grower)} "
                            f"(D: paused at the limit)\n" + "".join(child.stdout.seen))
            assert end == "grower killed by signal 9\n"   # the OOM killer, near SIZE
            grown = [int(line.split()[1]) for line in child.stdout.seen
                     if line.startswith("grown ")]
            assert max(grown) < 32
            child.stdout.rest(timeout=5)    # end of output: the watchdog holds no copy
        assert wait_until(lambda: not any(map(os.path.isdir, paths)), 5), \
            f"{paths} still there"
        assert wait_until(lambda: not watchdogs(paths), 5), "the watchdog did not exit"
    finally:
        clean_up_groups(paths)


@needs_memcg
def test_normal_exit_leaves_neither_group_nor_watchdog(build):
    with spawned([*VRANGE_RUN, "--memory-limit", "32M", "true"], stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE) as child:
        paths = group_paths(child.pid)
        out, err = child.finish()
        assert child.proc.returncode == 0, err
        assert not any(map(os.path.isdir, paths))
        assert not watchdogs(paths)       # told "done", vrange-run waited for it


def test_budget_source_keeps_summed_rss_under_the_limit(build):
    proc = vrange_run("--stats", "--pressure", "budget", "--memory-limit", "64M",
                      build("cache_under_limit"), 64, 300, 8)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"steps=300 rebuilt=\d+ verified=\d+ bad=0 hot_bad=0", proc.stdout)
    _, _, _, purged, purges, _ = stats_row(proc.stderr, "cache_under_lim")
    assert int(purges) > 0


def build_demo_2(directory):
    """demos/2_memory_limit.c (64 entries of 4 MiB, 300 lookups) built into
    `directory`, mode 0755."""
    exe = cbuild.build(ROOT / "demos" / "2_memory_limit.c", os.path.join(directory, "demo_2"),
                       ("-O2", "-Wall"), root=ROOT)
    os.chmod(exe, 0o755)
    return exe


def demo_2_result(stdout):
    """Its last line: lookups, hits, rebuilt, wrong, peak_rss_mib (VmHWM, read
    just before it exits) as numbers."""
    m = re.search(r"lookups=(\d+) hits=(\d+) rebuilt=(\d+) wrong=(\d+) peak_rss_mib=([\d.]+)",
                  stdout)
    assert m, stdout
    return dict(zip(("lookups", "hits", "rebuilt", "wrong"), map(int, m.groups()[:4])),
                peak_rss_mib=float(m.group(5)))


def assert_demo_2_within(proc, limit_mib):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = demo_2_result(proc.stdout)
    # Every entry found intact had its data (wrong=0); purged ones were rebuilt.
    assert result["lookups"] == 300 and result["wrong"] == 0 and result["rebuilt"] > 0, result
    assert result["peak_rss_mib"] <= limit_mib * 1.10, result
    return result


@pytest.mark.parametrize("path", ["native loop", "python loop", "ptrace"])
def test_rss_budget_holds_demo_2_within_the_limit(tmp_path, path):
    """Without a cgroup (what a user without root gets), demo 2's cache, 4x
    the limit, peaks within SIZE + 10%: its vrange calls are checkpoints,
    purged before they are answered once the summed RSS reaches the high
    mark, whichever loop serves them.  (Read only every 10-100 ms, the
    budget let it peak at 217-257 MiB.)"""
    report = tmp_path / "stats.json"
    options = {"native loop": [], "python loop": [], "ptrace": ["--trap", "ptrace"]}[path]
    env = dict(os.environ, VRANGEEMU_FASTPATH="0" if path == "python loop" else "1")
    proc = vrange_run(*options, "--pressure", "budget", "--memory-limit", "64M",
                      "--stats-json", report, build_demo_2(tmp_path), env=env)
    assert_demo_2_within(proc, 64)
    assert proc.stderr.count("best-effort") == 1, proc.stderr
    pressure = json.loads(report.read_text())["pressure"]
    assert pressure["source"] == "RSS budget 64 MiB" and pressure["over_high"] > 0
    assert pressure["max_usage"] <= 64 * MiB, pressure


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def python_for_nobody(directory):
    """(interpreter, PYTHONPATH) with which uid 65534 can run this checkout's
    vrange-run, or pytest.skip.  This interpreter if that user can read it
    and its packages; else the system's python3 of the same version, with
    copies of the packages vrange-run needs in `directory`."""
    check = ["-c", "import cffi, ptrace, sortedcontainers, vrangeemu._native"]

    def works(python, path):
        env = dict(os.environ, PYTHONPATH=path)
        return subprocess.run([*NOBODY, python, *check], env=env, cwd=directory,
                              capture_output=True).returncode == 0
    if works(sys.executable, str(ROOT)):
        return sys.executable, str(ROOT)
    system = shutil.which("python3", path="/usr/bin:/bin")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not system or subprocess.run([system, "-c", "import sys; print('%d.%d' % "
                                     "sys.version_info[:2])"], capture_output=True,
                                    text=True).stdout.strip() != version:
        pytest.skip(f"uid 65534 cannot read {sys.executable} and there is no system "
                    f"python{version}")
    site = os.path.join(directory, "site")
    os.mkdir(site)
    for name in ("cffi", "_cffi_backend", "pycparser", "ptrace", "sortedcontainers"):
        spec = importlib.util.find_spec(name)
        if spec.submodule_search_locations:
            shutil.copytree(list(spec.submodule_search_locations)[0], os.path.join(site, name))
        else:
            shutil.copy(spec.origin, site)
    subprocess.run(["chmod", "-R", "a+rX", site], check=True)
    path = os.pathsep.join([site, str(ROOT)])
    if not works(system, path):
        pytest.skip(f"uid 65534 cannot import vrangeemu from {ROOT} with {system}")
    return system, path


def test_without_root_the_limit_is_a_budget_that_holds(tmp_path):
    """The no-root path end to end: vrange-run run as uid 65534 (no
    capabilities, so no cgroup can be made) falls back to the RSS budget,
    says once that it is best-effort, and still holds demo 2 within SIZE + 10%."""
    if not shutil.which("setpriv"):
        pytest.skip("no setpriv(1) to run as an unprivileged user")
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read())
    except OSError:
        scope = 0    # no Yama: a process may trace its own children
    if scope >= 2:
        pytest.skip(f"Yama ptrace_scope is {scope}: only CAP_SYS_PTRACE may trace")
    directory = tempfile.mkdtemp(prefix="vrange-nobody-")   # pytest's tmp_path is 0700
    try:
        os.chmod(directory, 0o755)
        python, path = python_for_nobody(directory)
        proc = subprocess.run([*NOBODY, python, "-m", "vrangeemu", "--memory-limit", "64M",
                               build_demo_2(directory)],
                              env=dict(os.environ, PYTHONPATH=path), cwd=directory,
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(directory)
    assert_demo_2_within(proc, 64)
    warnings = [line for line in proc.stderr.splitlines() if "best-effort" in line]
    assert len(warnings) == 1 and "no memory cgroup can be made here" in warnings[0], proc.stderr


@pytest.mark.parametrize("args, message, status", [
    (["--pressure", "budget"], "--pressure budget needs --memory-limit SIZE", 125),
    (["--memory-limit", "64M", "--pressure", "psi"], "--memory-limit needs --pressure cgroup", 125),
    (["--memory-limit", "512K"], "too small", 2),   # usage mistakes: one line, exit 2
    (["--memory-limit", "lots"], "not a size", 2),
])
def test_bad_pressure_options_are_clear(args, message, status):
    proc = vrange_run(*args, "true")
    assert proc.returncode == status and message in proc.stderr and "Traceback" not in proc.stderr


def classic(build, mode, access):
    proc = vrange_run("--memory-limit", "16M", "--purged-access", access,
                      build("classic_chunks_under_pressure"), mode, 15, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "purge seen=1 hog exit=0", proc.stdout
    return lines[:-1]


@needs_memcg
@pytest.mark.parametrize("access", ["sigbus", "zero"])
def test_classic_chunks_repin_reports_purged_volatile_chunks(build, access):
    lines = classic(build, "repin", access)
    assert lines == [f"chunk {i} purged=1 data=zero" if i % 2 == 0 else
                     f"chunk {i} purged=0 data=ok" for i in range(26)]


@needs_memcg
def test_classic_chunks_sigbus_handler_repairs_its_data(build):
    lines = classic(build, "sigbus-handler", "sigbus")
    assert lines == [f"chunk {i} data=ok handled={1 - i % 2}" for i in range(26)]


@needs_memcg
def test_classic_chunks_zero_mode_never_raises_sigbus(build):
    lines = classic(build, "sigbus-handler", "zero")
    assert lines == [f"chunk {i} data=zero handled=0" if i % 2 == 0 else
                     f"chunk {i} data=ok handled=0" for i in range(26)]


@needs_memcg
def test_psi_stalls_make_vrange_run_purge(build, tmp_path):
    """System PSI as the source: page-cache reclaim inside a small cgroup
    (no swap here, so cache is what the kernel can reclaim) stalls tasks;
    vrange-run sees the stall total grow and discards the volatile pages."""
    churn = tmp_path / "churn"
    with open(churn, "wb") as f:
        f.truncate(512 * MiB)   # sparse: reading it still fills the page cache
    group = cg.Cgroup.create(f"vrange-test-{os.getpid()}")
    try:
        group.enforce(128 * MiB)   # vrange-run and its program both inside
        procs = group.file("cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write("0")
        proc = subprocess.run([*VRANGE_RUN, "--pressure", "psi", "--stats-json", tmp_path / "s.json",
                               build("volatile_under_page_cache_churn"), churn],
                              preexec_fn=join, capture_output=True, text=True, timeout=60)
    finally:
        group.remove()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("purged after")
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["pressure"]["source"].startswith("PSI ")   # our v2 cgroup or /proc/pressure
    assert doc["pressure"]["over_high"] > 0 and doc["total"]["purged_bytes"] >= 48 * MiB


@pytest.mark.parametrize("limit_mib", [32, 64])
def test_the_group_never_goes_past_size_while_anything_volatile_is_left(build, tmp_path,
                                                                         limit_mib):
    """Direct reclaim: the group is held at SIZE itself (no margin); a task
    that reaches it waits for a purge.  The cache is 4x the limit."""
    report = tmp_path / "stats.json"
    chunks = limit_mib   # 4 MiB each: four times the limit
    proc = vrange_run("--stats", "--stats-json", report, "--memory-limit", f"{limit_mib}M",
                      build("cache_under_limit"), chunks, 200, 1, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"steps=200 rebuilt=\d+ verified=\d+ bad=0 hot_bad=0 enosys=0", proc.stdout)
    assert "nothing volatile left" not in proc.stderr
    pressure = json.loads(report.read_text())["pressure"]
    assert pressure["group_peak"] is not None and pressure["limit"] == limit_mib * MiB
    # v1 charges up to a page past a limit where an allocation may not wait
    # (seen: SIZE + 4 KiB); the old margin let the group reach SIZE + 16 MiB.
    assert pressure["group_peak"] <= limit_mib * MiB + 4096, pressure
    assert "peak usage" in proc.stderr and f"of the {limit_mib}.0 MiB limit" in proc.stderr
    assert not leftover_cgroups()


def test_a_two_mib_limit_purges_the_volatile_part_and_keeps_the_rest(script):
    # 1.75 MiB made volatile in two halves, then 384 KiB pinned: A and B
    # alone are past 2 MiB, so A must go; B and the program's own pages
    # (about 0.5 MiB) fit under the low mark after.  (1M is accepted too,
    # but this program's own pages leave a 1 MiB group too little room to
    # test reliably: 2 runs in 16 were OOM-killed before their first purge.)
    out = script("native", "--memory-limit", "2M").run(
        "map A 448 anon\nfill A 1 0 224\nvol A 0 224\nfill A 1 224 224\nvol A 224 224\n"
        "map B 96 anon\nfill B 2\ncheck B 2\nnonvol A 0 448\n")
    assert out.checks["B"] == dict(good=96, zero=0, bad=0)
    assert out.calls[-1]["purged"] == 1
