"""vrange-run benchmarks: run side by side, write docs/benchmarks.md + JSON.

    python3 benchmarks/run.py [--runs N] [--quick] [--only SECTION,...] [--render]

Everything is measured in one run on one machine and reported as medians
and ratios of things measured together (never as absolute pass/fail
thresholds: machines here are shared and noisy).  Needs what the tests need:
vrange-run installed, a C compiler, root for the cgroup rows.

One function per section: the trap round trip (against two empty C
supervisors, the floors, in native/floor/), purge throughput, pressure
reaction, purge latency (with few and many ranges), calls under a purge
storm, peak cgroup usage under --memory-limit, idle cost, the cost to
programs that never call vrange (also a threaded program on jemalloc under
--check-access), scale (the range tree
with 10^5 ranges, the supervisor's memory with 100 traced processes), and
the ebizzy-like workload on the reference allocator (benchmarks/ebizzy.py).

`--only` measures some sections and merges their rows into the committed
results.json (a note says when); `--render` rewrites docs/benchmarks.md
from results.json without measuring anything.
"""
import argparse
import glob
import json
import os
import platform
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This checkout's vrangeemu (built in place, e.g. by `pip install -e .`), not an
# installed copy, here and in every vrange-run started from here.
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
from vrangeemu import cbuild  # noqa: E402

VRANGE_RUN = [sys.executable, "-m", "vrangeemu"]
NR = 1000   # vrange's native number: trapped by vrange-run and by the floors
MiB = 1 << 20
PROGRAMS = {   # name -> C source, built by build()
    "bench_probe": "benchmarks/bench_probe.c",
    "bench_untrapped": "benchmarks/bench_untrapped.c",
    "bench_fanout": "benchmarks/bench_fanout.c",
    "floor_notify": "native/floor/floor_notify.c",
    "floor_ptrace": "native/floor/floor_ptrace.c",
    "bench_purge": "benchmarks/bench_purge.c",
    "bench_peak": "benchmarks/bench_peak.c",
    "cache_under_limit": "native/progs/cache_under_limit.c",
    "ebizzy": "native/progs/ebizzy.c",
}
# SIGUSR1 the only purge: no PSI purge (others' load on a shared machine)
# lands in the middle of a timed purge or call.
SIGNAL_ONLY = ["--pressure", "none"]
LATENCY_OTHERS = (0, 1_000, 10_000)   # other volatile ranges present
STORM_RANGES, STORM_PERIOD_US = 5000, 2000
REPIN_RANGES, REPIN_PERIOD_US = 20_000, 1000   # re-pins of purged ranges in a storm
PEAK_LIMITS_MB = (32, 64, 128)        # --memory-limit for the 256 MiB cache


def build(out_dir):
    """Compile PROGRAMS into out_dir; returns {name: path}."""
    return {name: cbuild.build(ROOT / source, Path(out_dir) / name, ("-O2", "-pthread"), root=ROOT)
            for name, source in PROGRAMS.items()}


def measure(argv, **env):
    """Run a command; returns its key=value output as floats."""
    env = dict(os.environ, VRANGE_SYSCALL_NR=str(NR), **env)   # the number the floors trap
    proc = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=300,
                          env=env)
    if proc.returncode:
        raise RuntimeError(f"{argv}: exit {proc.returncode}: {proc.stdout}{proc.stderr}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", proc.stdout)}


def probe(args, vr_args=(), **env):
    """Run a program under vrange-run; returns its key=value output as floats."""
    return measure([*VRANGE_RUN, *vr_args, *args], **env)


def interleaved(runs, fns):
    """{name: medians of fns[name]()}, the measurements taken in turn run
    after run, so that a noisy spell on a shared machine hits all alike."""
    values = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            values[name].append(fn())
    return {name: {k: statistics.median(v[k] for v in vs) for k in vs[0]}
            for name, vs in values.items()}


def median_of(runs, fn):
    return interleaved(runs, {"": fn})[""]


def trap_round_trip(runs, calls, exe):
    """vrange-run's call round trip with each trap method, side by side with
    the empty C supervisor of that method (its floor) and with no supervisor
    at all (the probe's vrange calls then fail with ENOSYS: a bare syscall).
    With 2 CPUs and taskset, also each floor with both processes pinned to
    one CPU and to different CPUs (every wake-up then crosses CPUs)."""
    probe_calls = [exe["bench_probe"], "calls"]
    slow = calls // 4   # for ptrace stops and cross-CPU wake-ups
    inline = [exe["bench_probe"], "inline"]
    fns = {
        # The in-process library (default): libc's syscall() answered in the
        # program; sustained (the supervisor applies the log meanwhile) and
        # in bursts that fit its log; an inline instruction takes the trap.
        "trap_inproc": lambda: probe([*probe_calls, calls]),
        "trap_inproc_burst": lambda: probe([exe["bench_probe"], "burst", 1000, 9]),
        "trap_inline": lambda: probe([*inline, calls]),
        "trap_notify": lambda: probe([*probe_calls, calls], ["--inproc", "off"]),
        # The same while writing a --trace (every call is logged).
        "trap_traced": lambda: probe([*probe_calls, calls], ["--inproc", "off", "--trace",
                                                             os.devnull]),
        # The same with every call served by the Python loop (no native loop).
        "trap_python": lambda: probe([*probe_calls, slow], VRANGEEMU_FASTPATH="0"),
        "floor_notify": lambda: measure([exe["floor_notify"], NR, *probe_calls, calls]),
        "trap_ptrace": lambda: probe([*probe_calls, slow], ["--trap", "ptrace"]),
        "floor_ptrace": lambda: measure([exe["floor_ptrace"], NR, *probe_calls, slow]),
        "trap_bare": lambda: measure([*probe_calls, calls]),
    }
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        for kind in ("notify", "ptrace"):
            floor = ["taskset", "-c", "0", exe[f"floor_{kind}"], NR]
            fns[f"floor_{kind}_1cpu"] = lambda floor=floor: measure([*floor, *probe_calls, slow])
            fns[f"floor_{kind}_2cpus"] = lambda floor=floor: measure(
                [*floor, "taskset", "-c", "1", *probe_calls, slow])
    return interleaved(runs, fns)


def testing_round_trip(runs, calls, exe):
    """The call round trip under the allocator-testing options, which stop
    every call in ptrace: `--check-access report` (each VOLATILE call
    protects its range, each NONVOLATILE unprotects it) and `--purge-policy
    always` (each VOLATILE call purges; the probe's page is never touched,
    so nothing is resident to discard)."""
    probe_calls = [exe["bench_probe"], "calls", calls // 4]
    return interleaved(runs, {
        "trap_checked": lambda: probe(probe_calls, ["--check-access", "report"]),
        "trap_forced": lambda: probe(probe_calls, ["--purge-policy", "always"]),
    })


def purge_throughput(runs, purge_mb, exe):
    """An injected purge of purge_mb MiB against the program's own madvise."""
    return {f"purge_{access}": median_of(runs, lambda: probe(
        [exe["bench_probe"], "purge", purge_mb], ["--purged-access", access]))
        for access in ("sigbus", "zero")}


def pressure_reaction(runs, exe, notes):
    """From crossing the high watermark of a 64 MiB cgroup to the volatile
    pages being gone."""
    from vrangeemu.linux import cgroup
    from vrangeemu.supervisor.pressure import watermarks
    v1, v2 = cgroup.v1_root(), cgroup.v2_root()
    if not (v2 or v1):
        notes.append("no memory cgroup controller: reaction not measured")
        return {}
    high = watermarks(64 * MiB)[0]
    root, version = (v2, 2) if v2 else (v1, 1)
    react = median_of(runs, lambda: probe(
        [exe["bench_probe"], "react", 24, 48, high, root, version], ["--memory-limit", "64M"]))
    return {"react_cgroup": dict(react, cgroup_version=version)}


def purge_latency(rounds, exe):
    """Request to pages gone, timed by the program (bench_purge latency):
    SIGUSR1 to vrange-run, then mincore() until its filled 64 KiB volatile
    range is gone; `rounds` rounds, with 0, 1,000 and 10,000 other
    one-page volatile ranges (never touched) in the same space."""
    return {f"latency_{n}": probe([exe["bench_purge"], "latency", rounds, n], SIGNAL_ONLY)
            for n in LATENCY_OTHERS}


def purge_storm(seconds, exe):
    """VOLATILE+NONVOLATILE pairs on 5,000 one-page ranges (each pair
    re-touches its page, so every purge has something to discard) for
    `seconds`, while a thread of the program sends SIGUSR1 to vrange-run
    every 2 ms; the same without the signals.  Each pair timed by the
    program (bench_purge storm).  Then 20,000 purged one-page ranges
    re-pinned one by one while SIGUSR1 comes every 1 ms (nothing is left to
    purge) and without it (bench_purge repin)."""
    argv = [exe["bench_purge"], "storm", STORM_RANGES, seconds]
    repin = [exe["bench_purge"], "repin", REPIN_RANGES]
    return {"storm": dict(probe([*argv, STORM_PERIOD_US], SIGNAL_ONLY), seconds=seconds),
            "storm_quiet": dict(probe([*argv, 0], SIGNAL_ONLY), seconds=seconds),
            "storm_repin": probe([*repin, REPIN_PERIOD_US], SIGNAL_ONLY),
            "storm_repin_quiet": probe([*repin, 0], SIGNAL_ONLY)}


def peak_under_limit(runs, exe, notes):
    """The demo-2-like cache (native/progs/cache_under_limit.c: 64 chunks of
    4 MiB = 256 MiB, volatile while idle, 400 random lookups, 8 MiB pinned)
    under `--memory-limit SIZE`: the kernel's peak usage of the group
    vrange-run made (v1 memory.max_usage_in_bytes, v2 memory.peak), read
    inside the group just before the program ends (bench_peak), against
    SIZE; with what vrange-run's own polls saw (--stats-json)."""
    from vrangeemu.linux import cgroup
    v2, v1 = cgroup.v2_root(), cgroup.v1_root()
    if not (v2 or v1):
        notes.append("no memory cgroup controller: peak usage under a limit not measured")
        return {}
    root, version = (v2, 2) if v2 else (v1, 1)   # the one vrange-run prefers
    raw = {mb: [] for mb in PEAK_LIMITS_MB}
    with tempfile.TemporaryDirectory(prefix="vrange-peak-") as tmp:
        report = Path(tmp) / "stats.json"
        for _ in range(runs):
            for mb in PEAK_LIMITS_MB:
                report.unlink(missing_ok=True)
                cmd = [*VRANGE_RUN, "--memory-limit", f"{mb}M",
                       "--stats-json", report, exe["bench_peak"], root, version,
                       exe["cache_under_limit"], 64, 400, 8]
                proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True,
                                      timeout=300)
                out = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", proc.stdout)}
                if "max_usage" not in out or not report.exists():
                    raise RuntimeError(f"{cmd}: exit {proc.returncode}: "
                                       f"{proc.stdout}{proc.stderr}")
                pressure = json.loads(report.read_text())["pressure"] or {}
                if not pressure.get("source", "").startswith(f"cgroup v{version} "):
                    notes.append(f"peak usage: vrange-run used {pressure.get('source')}, not a "
                                 f"cgroup v{version} group: not measured")
                    return {}
                raw[mb].append(dict(out, polled=pressure["max_usage"],
                                    enforced=pressure["enforced"]))
    results = {}
    for mb, rs in raw.items():
        peaks = [r["max_usage"] for r in rs]
        results[f"peak_{mb}"] = {
            "limit": mb * MiB, "runs": len(rs), "cgroup_version": version,
            "peak_max": max(peaks), "peak_median": statistics.median(peaks),
            "polled_max": max(r["polled"] for r in rs),
            "enforced": sum(r["enforced"] for r in rs),
            "failed": sum(r["status"] != 0 for r in rs),   # OOM-killed (137) or bad data
            "bad": sum(r.get("bad", 0) + r.get("hot_bad", 0) for r in rs),
            "rebuilt": statistics.median(r.get("rebuilt", 0) for r in rs),
            "steps": rs[0].get("steps", 0)}
    return results


def supervisor_cpu_ms(pid):
    """CPU time of one process so far, in ms (schedstat: nanoseconds)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6


def idle_cost(runs, extra, window=2.0):
    """vrange-run's own CPU per second while its program sleeps (start-up
    excluded: measured over `window` seconds after one second)."""
    def one():
        proc = subprocess.Popen([*VRANGE_RUN, *extra, "sleep", str(window + 2)])
        try:
            time.sleep(1)
            before = supervisor_cpu_ms(proc.pid)
            time.sleep(window)
            used = supervisor_cpu_ms(proc.pid) - before
        finally:
            proc.wait()
        return {"cpu_ms_per_s": used / window}
    return median_of(runs, one)


def untrapped_cost(runs, exe, quick):
    """What vrange-run costs a program that never calls vrange: a
    syscall-heavy loop and a compute loop, each timing itself (so start-up
    is excluded), bare, under the empty notify floor (a seccomp filter and
    nothing else) and under vrange-run, in turn."""
    prog = exe["bench_untrapped"]
    work = {"syscalls": 125_000 if quick else 500_000,        # x2 syscalls
            "compute": 25_000_000 if quick else 100_000_000}  # xorshift rounds
    out = {}
    for kind, n in work.items():   # short runs, 3x as many: others' load sways a median less
        r = interleaved(3 * runs, {"bare": lambda: measure([prog, kind, n]),
                               "floor": lambda: measure([exe["floor_notify"], NR, prog, kind, n]),
                               "traced": lambda: probe([prog, kind, n])})
        bare, floor, traced = r["bare"]["ms"], r["floor"]["ms"], r["traced"]["ms"]
        out[f"untrapped_{kind}"] = {
            "n": n, "runs": 3 * runs, "bare_ms": bare, "floor_ms": floor, "traced_ms": traced,
            "floor_overhead_pct": (floor / bare - 1) * 100,
            "overhead_pct": (traced / bare - 1) * 100}
    return out


def dd_seconds(argv):
    """dd's own time for its copy ("... copied, 0.0871 s, ..." on stderr)."""
    proc = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, LC_ALL="C"))
    m = re.search(r"copied, ([\d.]+) s", proc.stderr)
    if proc.returncode or not m:
        raise RuntimeError(f"{argv}: exit {proc.returncode}: {proc.stderr}")
    return {"ms": float(m.group(1)) * 1e3}


def untrapped_processes(runs, exe, quick):
    """Untrapped work that vrange-run still sees: a loop of fork + exec
    /bin/true + wait (vrange-run follows every fork and exec with ptrace),
    timed by the program itself, and dd copying /dev/zero to /dev/null 64
    bytes at a time (a read and a write per block, each through the seccomp
    filter), timed by dd; bare, under the empty notify floor and under
    vrange-run, in turn."""
    prog = exe["bench_untrapped"]
    forks = 200 if quick else 1000
    blocks = 200_000 if quick else 1_000_000
    dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64", f"count={blocks}"]
    out = {}
    for kind, n, fns in (
            ("forkexec", forks, {
                "bare": lambda: measure([prog, "forkexec", forks]),
                "floor": lambda: measure([exe["floor_notify"], NR, prog, "forkexec", forks]),
                "traced": lambda: probe([prog, "forkexec", forks])}),
            ("dd", blocks, {
                "bare": lambda: dd_seconds(dd),
                "floor": lambda: dd_seconds([exe["floor_notify"], NR, *dd]),
                "traced": lambda: dd_seconds([*VRANGE_RUN, *dd])})):
        r = interleaved(runs, fns)
        bare, floor, traced = r["bare"]["ms"], r["floor"]["ms"], r["traced"]["ms"]
        out[f"untrapped_{kind}"] = {"n": n, "runs": runs, "bare_ms": bare, "floor_ms": floor,
                                    "traced_ms": traced, "ratio": traced / bare,
                                    "floor_ratio": floor / bare}
    return out


def tree_ops(runs, quick, ranges=100_000):
    """Range-tree operations per second on one space holding `ranges`
    one-page ranges (every 4th purged), and the time to choose 1 MiB of
    victims among them: the pure-Python model that every call updates."""
    from vrangeemu.model.purge import choose_victims
    from vrangeemu.model.ranges import PAGE, VolatileRanges
    from vrangeemu.model.space import AddressSpace

    def page(slot):   # one-page ranges with one-page gaps
        return 2 * slot * PAGE, (2 * slot + 1) * PAGE
    tree = VolatileRanges()
    for slot in range(ranges):
        tree.mark(*page(slot))
    for slot in range(0, ranges, 4):
        tree.set_purged(*page(slot))
    space = AddressSpace(1, "bench", tree)

    def everything(space, lo, hi):   # every page is resident and discardable
        return [(lo, hi)]
    rnd = random.Random(1)
    per_run = 5000 if quick else 20000

    def timed(op, slots):
        t = time.perf_counter()
        for slot in slots:
            op(*page(slot))
        return len(slots) / (time.perf_counter() - t)

    def one():
        slots = rnd.sample(range(ranges), per_run)
        unmark = timed(tree.unmark, slots)   # down to ranges - per_run ...
        mark = timed(tree.mark, slots)       # ... and back
        is_purged = timed(tree.is_purged, slots)
        t = time.perf_counter()
        freed = choose_victims([space], MiB, everything)[1]
        choose_ms = (time.perf_counter() - t) * 1e3
        assert freed >= MiB and len(tree) == ranges
        return {"mark_per_s": mark, "unmark_per_s": unmark, "is_purged_per_s": is_purged,
                "choose_victims_ms": choose_ms}
    return dict(median_of(runs, one), ranges=ranges, ops_per_run=per_run)


def pressure_among_ranges(exe, n=40_000):
    """bench_purge grow: `n` one-page ranges filled and made volatile one by
    one, then re-pinned, under --memory-limit 64M (the oldest are purged
    while the program goes on) and without a limit, in turn."""
    argv = [exe["bench_purge"], "grow", n]
    r = interleaved(3, {"limited": lambda: probe(argv, ["--memory-limit", "64M"]),
                        "free": lambda: probe(argv)})
    return {"grow_limited": r["limited"], "grow_free": r["free"]}


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)[1])


def supervisor_rss(runs, exe, counts=(1, 100)):
    """VmRSS of the vrange-run process while `count` traced processes are
    alive at once, each with one volatile range (bench_fanout)."""
    def one(count):
        proc = subprocess.Popen([*VRANGE_RUN, exe["bench_fanout"], str(count)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ready = select.select([proc.stdout], [], [], 120)[0] and proc.stdout.readline()
            if not ready or not ready.startswith("ready"):
                raise RuntimeError(f"bench_fanout {count}: no ready line")
            rss = vm_rss_kib(proc.pid)
        finally:
            proc.stdin.close()   # the children read end of file and exit
            status = proc.wait(timeout=60)
        if status:
            raise RuntimeError(f"bench_fanout {count}: exit {status}")
        return {"rss_kib": rss}
    r = interleaved(runs, {count: lambda count=count: one(count) for count in counts})
    return {f"rss_{count}": r[count] for count in counts}


def sections(opts, calls, purge_mb, exe, tmp, notes):
    """name -> (what it measures, a function returning its results), in
    the order a full run measures them."""
    def ebizzy_rows():
        import ebizzy
        return {"ebizzy": ebizzy.measure(tmp, runs=min(opts.runs, 3), quick=opts.quick)}
    return {
        "trap": ("trap round trip and floors",
                 lambda: trap_round_trip(opts.runs, calls, exe)),
        "testing": ("round trip under --check-access and --purge-policy always",
                    lambda: testing_round_trip(opts.runs, calls, exe)),
        "purge": ("purge", lambda: purge_throughput(opts.runs, purge_mb, exe)),
        "reaction": ("pressure reaction", lambda: pressure_reaction(opts.runs, exe, notes)),
        "latency": ("purge latency", lambda: purge_latency(100 if opts.quick else 300, exe)),
        "storm": ("calls under a purge storm", lambda: purge_storm(1 if opts.quick else 2, exe)),
        "peak": ("peak usage under a limit",
                 lambda: peak_under_limit(1 if opts.quick else min(opts.runs, 3), exe, notes)),
        "idle": ("idle cost", lambda: {"idle_limit": idle_cost(3, ["--memory-limit", "64M"]),
                                       "idle_auto": idle_cost(3, [])}),
        "untrapped": ("untrapped cost", lambda: untrapped_cost(opts.runs, exe, opts.quick)),
        "processes": ("fork+exec and dd under vrange-run",
                      lambda: untrapped_processes(opts.runs, exe, opts.quick)),
        "scale": ("scale", lambda: {"tree": tree_ops(opts.runs, opts.quick),
                                    **supervisor_rss(min(opts.runs, 3), exe),
                                    **pressure_among_ranges(exe)}),
        "jemalloc": ("jemalloc under --check-access",
                     lambda: jemalloc_checked(opts.runs, exe, notes)),
        "ebizzy": ("ebizzy-like workload and the reference allocator", ebizzy_rows),
    }


def write(machine, results, notes, out, json_path):
    import ebizzy
    Path(json_path).write_text(json.dumps({"machine": machine, "results": results,
                                           "notes": notes}, indent=1) + "\n")
    Path(out).write_text(render(machine, results, notes) + "\n" + ebizzy.render(results["ebizzy"]))
    print(f"wrote {out} and {json_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per row (median reported)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer calls, a smaller purge, shorter loops")
    ap.add_argument("--only", metavar="SECTION,...",
                    help="measure only these sections (see --list) and merge their rows "
                         "into the existing --json file")
    ap.add_argument("--list", action="store_true", help="list the sections and exit")
    ap.add_argument("--render", action="store_true",
                    help="measure nothing: rewrite --out from the --json file")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    opts = ap.parse_args()
    calls = 5000 if opts.quick else 20000
    purge_mb = 256 if opts.quick else 1024
    sys.path.insert(0, str(ROOT / "benchmarks"))   # ebizzy.py

    if opts.render:
        doc = json.loads(Path(opts.json).read_text())
        write(doc["machine"], doc["results"], doc["notes"], opts.out, opts.json)
        return
    results, notes = {}, []
    todo = sections(opts, calls, purge_mb, None, None, notes)
    if opts.list:
        for name, (what, _) in todo.items():
            print(f"{name:10} {what}")
        return
    only = opts.only.split(",") if opts.only else list(todo)
    unknown = set(only) - set(todo)
    if unknown:
        ap.error(f"--only: no section {', '.join(sorted(unknown))} (see --list)")
    load_before = os.getloadavg()[0]   # others' load on a shared machine skews every row
    tmp = tempfile.mkdtemp(prefix="vrange-bench-")
    exe = build(tmp)
    todo = sections(opts, calls, purge_mb, exe, tmp, notes)
    for name in only:
        what, measure_section = todo[name]
        print(f"{what} ...", flush=True)
        results.update(measure_section())

    load = [load_before, os.getloadavg()[0]]
    machine = {"kernel": platform.release(), "machine": platform.machine(),
               "cpus": os.cpu_count(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d"), "runs": opts.runs, "calls": calls,
               "purge_mb": purge_mb, "loadavg": load}
    if opts.only:   # the other rows stay as the last full run measured them
        doc = json.loads(Path(opts.json).read_text())
        remeasured = f"{', '.join(sorted(results))}: measured on their own"
        notes = [n for n in doc["notes"] if not n.startswith(remeasured)] + notes + [
            f"{remeasured} "
            f"(`benchmarks/run.py --only {opts.only}"
            f"{f' --runs {opts.runs}' if opts.runs != 5 else ''}"
            f"{' --quick' if opts.quick else ''}`, {machine['date']}, kernel "
            f"{machine['kernel']}, load average {load[0]:.1f} before, {load[1]:.1f} after)"]
        results, machine = {**doc["results"], **results}, doc["machine"]
    write(machine, results, notes, opts.out, opts.json)
    shutil.rmtree(tmp, ignore_errors=True)


def jemalloc_checked(runs, exe, notes):
    """A threaded program on the distribution's jemalloc (no vrange calls),
    bare and under `vrange-run --check-access report`: records/s."""
    lib = next(iter(sorted(glob.glob("/usr/lib/*/libjemalloc.so.2"))), None)
    if lib is None:
        notes.append("libjemalloc2 not installed: the jemalloc rows were not measured")
        return {}
    argv = [exe["ebizzy"], "-S", "1", "-t", "2", "-n", "64", "-s", "65536"]
    preload = ["env", f"LD_PRELOAD={lib}"]
    return interleaved(runs, {
        "jemalloc_bare": lambda: measure([*preload, *argv]),
        "jemalloc_checked": lambda: probe([*preload, *argv], ["--check-access", "report"]),
    })


def jemalloc_rows(r):
    if "jemalloc_bare" not in r:
        return []
    bare, checked = r["jemalloc_bare"]["records_per_s"], r["jemalloc_checked"]["records_per_s"]
    return [("ebizzy-like, 2 threads, on jemalloc, under `--check-access report`",
             f"{checked:,.0f} records/s",
             f"{checked / bare:.2f}x bare ({bare:,.0f} records/s): jemalloc makes no vrange "
             f"call, so nothing is trapped or protected")]


def trap_rows(r):
    tn, tp = r["trap_notify"]["calls_us"], r["trap_ptrace"]["calls_us"]
    fn, fp = r["floor_notify"]["calls_us"], r["floor_ptrace"]["calls_us"]
    tpy = r["trap_python"]["calls_us"]
    bare = r["trap_bare"]["calls_us"]
    rows = []
    if "trap_inproc" in r:
        ti, tb = r["trap_inproc"]["calls_us"], r["trap_inproc_burst"]["calls_us"]
        tl = r["trap_inline"]["calls_us"]
        rows += [
            ("vrange call through libc's syscall(), in-process library (default), sustained",
             f"{ti:.2f} us", f"{ti / fn:.2f}x the notify floor (target 0.2x); {ti / bare:.0f}x "
             f"a bare syscall; bounded by the supervisor applying the log"),
            ("the same, bursts of 1,000 calls that fit the log", f"{tb:.2f} us",
             f"{tb / fn:.2f}x the notify floor; the library's own cost"),
            ("vrange call by an inline `syscall` instruction (user notification)",
             f"{tl:.1f} us", f"{tl / fn:.1f}x the notify floor (target 0.5x: not met, "
             f"SIGSYS would stop in ptrace)"),
        ]
    rows += [
        ("vrange call round trip, user notification (`--inproc off`)", f"{tn:.1f} us",
         f"{tn / fn:.1f}x the notify floor; {tn / bare:.0f}x a bare syscall"),
        ("the same, with `--trace` (every call logged)", f"{r['trap_traced']['calls_us']:.1f} us",
         f"{r['trap_traced']['calls_us'] / tn:.2f}x without"),
        ("the same, every call served by the Python loop (`VRANGEEMU_FASTPATH=0`)",
         f"{tpy:.1f} us", f"{tpy / tn:.1f}x the native loop; {tpy / fn:.1f}x the notify floor"),
        ("vrange call round trip, `--trap ptrace`", f"{tp:.1f} us",
         f"{tp / fp:.1f}x the ptrace floor; {tp / tn:.1f}x user notification"),
        ("notify floor: empty C supervisor (`native/floor/floor_notify.c`)", f"{fn:.1f} us",
         f"{fn / bare:.0f}x a bare syscall"),
        ("ptrace floor: empty C supervisor (`native/floor/floor_ptrace.c`)", f"{fp:.1f} us",
         f"{fp / fn:.1f}x the notify floor"),
        ("bare syscall: the same vrange call, no supervisor (ENOSYS)", f"{bare:.2f} us",
         f"an unassigned syscall under vrange-run's filter: "
         f"{r['trap_notify']['bare_us']:.2f} us"),
    ]
    for kind in ("notify", "ptrace"):
        if f"floor_{kind}_1cpu" in r:
            one, two = r[f"floor_{kind}_1cpu"]["calls_us"], r[f"floor_{kind}_2cpus"]["calls_us"]
            rows += [(f"{kind} floor, both processes pinned to one CPU", f"{one:.1f} us", ""),
                     (f"{kind} floor, supervisor and program pinned to different CPUs",
                      f"{two:.1f} us", f"{two / one:.0f}x one CPU")]
    return rows


def testing_rows(r):
    if "trap_checked" not in r:
        return []
    tp = r["trap_ptrace"]["calls_us"]
    return [(f"the same, under `{option}`", f"{r[key]['calls_us']:.1f} us",
             f"{r[key]['calls_us'] / tp:.1f}x `--trap ptrace` (every call stops in ptrace); "
             + why)
            for key, option, why in (
                ("trap_checked", "--check-access report",
                 "each call also changes the page's protection"),
                ("trap_forced", "--purge-policy always",
                 "each VOLATILE call also purges (the page is never touched: nothing to "
                 "discard)"))]


def purge_rows(m, r):
    ps, pz = r["purge_sigbus"], r["purge_zero"]
    return [
        (f"purge {m['purge_mb']} MiB by SIGUSR1 (sigbus mode)", f"{ps['inject_ms']:.1f} ms",
         f"{ps['own_ms'] / ps['inject_ms']:.2f}x the throughput of the program's own madvise "
         f"({ps['own_ms']:.1f} ms)"),
        (f"purge {m['purge_mb']} MiB by SIGUSR1 (zero mode)", f"{pz['inject_ms']:.1f} ms",
         f"{pz['own_ms'] / pz['inject_ms']:.2f}x own madvise ({pz['own_ms']:.1f} ms)"),
    ]


def reaction_rows(r):
    if "react_cgroup" not in r:
        return []
    rc = r["react_cgroup"]
    return [(f"pressure reaction, cgroup v{int(rc['cgroup_version'])} 64 MiB limit",
             f"{rc['react_ms']:.1f} ms", "high mark crossed -> volatile pages gone")]


def us_text(us):
    """A time in us, as us below 1 ms, else ms: 133 -> '133 us', 29959 -> '30.0 ms'."""
    return f"{us:,.0f} us" if us < 1e3 else f"{us / 1e3:,.1f} ms"


def latency_rows(r):
    if "latency_0" not in r:
        return []
    base = r["latency_0"]["median_us"]
    rows = []
    for n in LATENCY_OTHERS:
        lat = r[f"latency_{n}"]
        spread = (f"max {us_text(lat['max_us'])}, p90 {us_text(lat['p90_us'])}; "
                  f"{lat['rounds']:.0f} rounds")
        if not n:
            rows.append(("purge latency, one 64 KiB volatile range: SIGUSR1 -> pages gone",
                         us_text(base), f"{spread}, timed by the program (mincore)"))
        else:
            rows.append((f"the same with {n:,} other volatile ranges in the space",
                         us_text(lat["median_us"]),
                         f"{lat['median_us'] / base:.1f}x with none "
                         f"({(lat['median_us'] - base) / n:+.2f} us per range); {spread}"))
    return rows


def storm_rows(r):
    if "storm" not in r:
        return []
    s, q = r["storm"], r["storm_quiet"]
    return [
        (f"VOLATILE+NONVOLATILE pair among {s['ranges']:,.0f} ranges, SIGUSR1 every "
         f"{s['period_us'] / 1e3:g} ms", us_text(s["pair_median_us"]),
         f"max {us_text(s['pair_max_us'])} (one call {us_text(s['call_max_us'])}), "
         f"p99 {us_text(s['pair_p99_us'])}; {s['over_10ms']:.0f} of {s['pairs']:,.0f} pairs "
         f"over 10 ms; {s['pairs_per_s']:,.0f} pairs/s; {s['signals']:,.0f} signals in "
         f"{s['seconds']:g} s"),
        ("the same pairs without the storm", us_text(q["pair_median_us"]),
         f"max {us_text(q['pair_max_us'])}, p99 {us_text(q['pair_p99_us'])}; "
         f"{q['pairs_per_s']:,.0f} pairs/s"),
    ] + repin_rows(r)


def repin_rows(r):
    if "storm_repin" not in r:
        return []
    s, q = r["storm_repin"], r["storm_repin_quiet"]
    return [
        (f"re-pin of one of {s['repins']:,.0f} purged ranges, SIGUSR1 every "
         f"{s['period_us'] / 1e3:g} ms (nothing left to purge)", us_text(s["repin_median_us"]),
         f"max {us_text(s['repin_max_us'])}; all {s['total_ms']:,.0f} ms, "
         f"{s['total_ms'] / q['total_ms']:.2f}x the {q['total_ms']:,.0f} ms without the "
         f"storm (max {us_text(q['repin_max_us'])}); {s['signals']:,.0f} signals"),
    ]


def peak_rows(r):
    rows = []
    for mb in PEAK_LIMITS_MB:
        p = r.get(f"peak_{mb}")
        if not p:
            continue
        extra = (f"; limit handed to the kernel {p['enforced']} time(s)" if p["enforced"] else "")
        if p["failed"]:
            extra += (f"; {p['failed']} run(s) failed (OOM-killed, or {p['bad']:.0f} chunks "
                      "read back wrong)")
        rows.append((f"peak cgroup usage, 256 MiB volatile cache, `--memory-limit {mb}M`",
                     f"{p['peak_max'] / MiB:.1f} MiB",
                     f"{p['peak_max'] / p['limit']:.2f}x SIZE (highest of {p['runs']} runs, "
                     f"median {p['peak_median'] / MiB:.1f} MiB; cgroup "
                     f"v{p['cgroup_version']} peak); vrange-run's polls saw "
                     f"{p['polled_max'] / MiB:.1f} MiB; {p['rebuilt']:.0f} of {p['steps']:.0f} "
                     f"lookups rebuilt a purged chunk" + extra))
    return rows


def verdict(ok):
    return "**met**" if ok else "**missed**"


def new_targets(r):
    """The "Against the targets" items of issues 12 and 14, from the measured numbers."""
    items = []
    if "latency_0" in r:
        l0 = r["latency_0"]
        l1k, l10k = r["latency_1000"], r["latency_10000"]
        items.append(
            f"Purge latency of a small range, median at most 300 us: "
            f"{verdict(l0['median_us'] <= 300)} ({us_text(l0['median_us'])} median, "
            f"max {us_text(l0['max_us'])} over {l0['rounds']:.0f} rounds; from the program's "
            f"kill(SIGUSR1) to vrange-run until mincore() shows no page of its 64 KiB range "
            f"resident; `--pressure none`, so SIGUSR1 is the only purge).")
        grows = l10k["median_us"] / l0["median_us"]
        text = (f"Fixed cost not growing with the number of ranges (taken as: the median with "
                f"10,000 other ranges at most 1.5x the median with none): "
                f"{verdict(grows <= 1.5)} ({us_text(l1k['median_us'])} with 1,000, "
                f"{us_text(l10k['median_us'])} with 10,000: {grows:.1f}x, about "
                f"{(l10k['median_us'] - l0['median_us']) / 10_000:.1f} us per range present).")
        if grows > 1.5:
            text += (" The other ranges have no resident page, yet a SIGUSR1 purge looks at "
                     "every volatile range of the space, one resident-page scan each "
                     "(`model.purge.purge_runs`).")
        items.append(text)
    if "storm" in r:
        s, q = r["storm"], r["storm_quiet"]
        text = (f"No call waits more than ~10 ms behind purges: "
                f"{verdict(s['call_max_us'] <= 10e3)} (with SIGUSR1 every "
                f"{s['period_us'] / 1e3:g} ms for {s['seconds']:g} s and {s['ranges']:,.0f} "
                f"volatile ranges, the slowest call took {us_text(s['call_max_us'])}, the "
                f"slowest VOLATILE+NONVOLATILE pair {us_text(s['pair_max_us'])}; "
                f"{s['over_10ms']:.0f} of {s['pairs']:,.0f} pairs over 10 ms; "
                f"{s['pairs_per_s']:,.0f} pairs/s against {q['pairs_per_s']:,.0f} without "
                f"the storm). A call that arrives while purge requests are pending is "
                f"taken along and answered after one purge turn (the signals sent before "
                f"it are handled first); large purges go in slices of 64 runs with calls "
                f"served between them, so each call waits for one turn, not for the "
                f"stream (before: one call waited 2.0 s, 46 pairs/s).")
        items.append(text)
    ebizzy = {(row["size"], row["strategy"]): row.get("limited", {})
              for row in r.get("ebizzy", {}).get("pressure", [])}
    parts, ok = [], True
    for size, strict in ((MiB, False), (4 * MiB, True)):
        v, d, f = (ebizzy.get((size, st), {}).get("records_per_s")
                   for st in ("vrange", "dontneed", "free"))
        if not (v and d):
            ok = False
            parts.append(f"{size // MiB} MiB: not measured (or vrange/dontneed OOM-killed)")
            continue
        ok = ok and (v > d if strict else v >= d)
        parts.append(f"{size // MiB} MiB: vrange {v / d:.2f}x dontneed"
                     + (f", MADV_FREE {f / d:.2f}x" if f else ""))
    if ebizzy:
        items.append(f"Under a limit, vrange at least dontneed at 1 MiB chunks and above it at "
                     f"4 MiB (the ebizzy-like table under memory pressure below): "
                     f"{verdict(ok)} ({'; '.join(parts)}).")
    peaks = [r[f"peak_{mb}"] for mb in PEAK_LIMITS_MB if f"peak_{mb}" in r]
    if peaks:
        volatile_left = [p for p in peaks if not p["enforced"]]
        ok = bool(volatile_left) and all(p["peak_max"] <= p["limit"] for p in volatile_left)
        text = (f"Peak group usage at most SIZE while anything volatile remains: {verdict(ok)} ("
                + "; ".join(f"{p['limit'] // MiB} MiB: peak {p['peak_max'] / MiB:.1f} MiB"
                            + (" (the limit was handed to the kernel)" if p["enforced"] else "")
                            for p in peaks)
                + "; the cache keeps all but the chunk in use volatile, so something volatile "
                  "is always left).")
        if not ok:
            over = max(p["peak_max"] - p["limit"] for p in volatile_left)
            text += (f" At most {over / 1024:.0f} KiB over SIZE. While volatile memory remains, "
                     "a v1 group is held at SIZE itself with the OOM killer off (a task that "
                     "reaches it waits for the purger thread), and purged from the high mark "
                     "(SIZE less max(SIZE/10, 2 MiB)); what goes past SIZE is charged by the "
                     "kernel past the limit (the log shows no moment where vrange-run raised "
                     "it).")
        items.append(text)
    if "untrapped_forkexec" in r:
        fe = r["untrapped_forkexec"]
        items.append(
            f"Fork+exec-heavy programs at most 1.3x bare (issue 14): {verdict(fe['ratio'] <= 1.3)} "
            f"({fe['ratio']:.2f}x: {fe['traced_ms'] / fe['n'] * 1e3:.0f} us a fork + exec "
            f"/bin/true + wait, {fe['bare_ms'] / fe['n'] * 1e3:.0f} us bare). Each still stops "
            f"five times in ptrace; the native loop resumes the routine stops (spaces that "
            f"never had a volatile range) and logs them for Python, which applies them later "
            f"(`native/ext/follow.c`).")
    if "trap_inproc" in r:
        ti, tb = r["trap_inproc"]["calls_us"], r["trap_inproc_burst"]["calls_us"]
        fn, tl = r["floor_notify"]["calls_us"], r["trap_inline"]["calls_us"]
        items.append(
            f"libc path at most 0.2x the user-notification floor (issue 14): "
            f"{verdict(ti <= 0.2 * fn)} ({ti:.2f} us sustained, {ti / fn:.2f}x the floor's "
            f"{fn:.1f} us; {tb:.2f} us in bursts that fit the log). The library answers in the "
            f"calling thread (`native/inproc/inproc.c`); sustained, the supervisor applying its "
            f"log is the limit.")
        items.append(
            f"Inline `syscall` path at most 0.5x the floor (issue 14): {verdict(tl <= 0.5 * fn)} "
            f"({tl:.1f} us: inline calls take user notification). A SIGSYS handler would answer "
            f"them in the program, but every signal of a seized task makes a ptrace "
            f"signal-delivery stop first: 55 us a SIGSYS under vrange-run against 1.7 us bare "
            f"(docs/design.md, \"The in-process path\").")
    plain = r.get("ebizzy", {}).get("plain")
    if plain:
        import ebizzy
        by = {(row["size"], row["strategy"], row["traced"]): row for row in plain}
        ratios = [(size, by[size, "vrange", True]["records_per_s"]
                   / by[size, "dontneed", False]["records_per_s"])
                  for size in sorted({row["size"] for row in plain})]
        cross = ebizzy.crossover(ratios)
        if cross:
            at, where = cross[0], f"about {cross[0] / 1024:.1f} KiB"
        elif all(ratio >= 1 for _, ratio in ratios):
            at, where = ratios[0][0], f"every size measured, from {ratios[0][0] // 1024} KiB"
        else:
            at, where = None, "no size measured"
        items.append(
            f"ebizzy-like crossover (vrange beats dontneed) at 8 KiB chunks or below (issue 14): "
            f"{verdict(at is not None and at <= 8 * 1024)} ({where}; "
            + ", ".join(f"{ratio:.2f}x at {size // 1024} KiB" for size, ratio in ratios[:4])
            + ").")
    return items


def idle_rows(r):
    return [
        ("idle supervisor CPU, `--memory-limit 64M`", f"{r['idle_limit']['cpu_ms_per_s']:.2f} ms/s",
         "CPU per second of an idle program (polls every 100 ms)"),
        ("idle supervisor CPU, auto (PSI here)", f"{r['idle_auto']['cpu_ms_per_s']:.2f} ms/s",
         "PSI polled every 100 ms while nothing stalls"),
    ]


def untrapped_rows(r):
    us, uc = r["untrapped_syscalls"], r["untrapped_compute"]
    return [(f"{what} under vrange-run", f"{u['traced_ms']:.0f} ms",
             f"{u['overhead_pct']:+.1f}% against bare ({u['bare_ms']:.0f} ms); "
             f"the notify floor: {u['floor_overhead_pct']:+.1f}%")
            for what, u in ((f"syscall-heavy program ({us['n'] / 1e6:g}M getppid + "
                             f"{us['n'] / 1e6:g}M 64-byte reads of /dev/zero)", us),
                            (f"compute-bound program ({uc['n'] / 1e6:g}M xorshift rounds)", uc))]


def process_rows(r):
    if "untrapped_forkexec" not in r:
        return []
    fe, dd = r["untrapped_forkexec"], r["untrapped_dd"]
    return [
        (f"{fe['n']:,} fork + exec /bin/true + wait under vrange-run",
         f"{fe['traced_ms']:.0f} ms",
         f"{fe['ratio']:.2f}x bare ({fe['bare_ms']:.0f} ms; {fe['bare_ms'] * 1e3 / fe['n']:.0f} "
         f"us a process, {fe['traced_ms'] * 1e3 / fe['n']:.0f} us traced): vrange-run follows "
         f"every fork and exec with ptrace, the native loop resuming the routine stops; "
         f"the notify floor: {fe['floor_ratio']:.2f}x"),
        (f"`dd if=/dev/zero of=/dev/null bs=64 count={dd['n']:,}` under vrange-run",
         f"{dd['traced_ms']:.0f} ms",
         f"{dd['ratio']:.2f}x bare ({dd['bare_ms']:.0f} ms; dd's own time): a read and a write "
         f"per block through the seccomp filter; the notify floor: {dd['floor_ratio']:.2f}x"),
    ]


def scale_rows(r):
    t, one, many = r["tree"], r["rss_1"]["rss_kib"], r["rss_100"]["rss_kib"]
    n = f"{t['ranges']:,}"
    return [
        (f"range tree with {n} ranges: mark", f"{t['mark_per_s']:,.0f} /s",
         "pure Python (`VolatileRanges`), random one-page ranges"),
        (f"range tree with {n} ranges: unmark", f"{t['unmark_per_s']:,.0f} /s",
         "every 4th range has its page purged"),
        (f"range tree with {n} ranges: is_purged", f"{t['is_purged_per_s']:,.0f} /s", ""),
        (f"choose 1 MiB of victims among {n} ranges", f"{t['choose_victims_ms']:.0f} ms",
         "`choose_victims`, once per purge decision"),
        *grow_rows(r),
        ("supervisor RSS, 1 traced process", f"{one / 1024:.1f} MiB", "VmRSS of vrange-run"),
        ("supervisor RSS, 100 traced processes", f"{many / 1024:.1f} MiB",
         f"+{(many - one) / 99:.0f} KiB per extra process (each with one volatile range)"),
    ]


def grow_rows(r):
    if "grow_limited" not in r:
        return []
    g, f = r["grow_limited"], r["grow_free"]
    return [(f"{g['ranges']:,.0f} one-page ranges made volatile then re-pinned, under a 64 MiB "
             "limit", f"{g['total_ms'] / 1e3:.1f} s",
             f"{g['total_ms'] / f['total_ms']:.1f}x the {f['total_ms'] / 1e3:.1f} s without a "
             f"limit; {g['purged']:,.0f} purged by the way, {g['bad']:.0f} lost data")]


def render(m, r, notes):
    rows = (trap_rows(r) + testing_rows(r) + purge_rows(m, r) + reaction_rows(r)
            + latency_rows(r) + storm_rows(r) + peak_rows(r) + idle_rows(r)
            + untrapped_rows(r) + process_rows(r) + jemalloc_rows(r) + scale_rows(r))
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    tn, fn = r["trap_notify"]["calls_us"], r["floor_notify"]["calls_us"]
    ps = r["purge_sigbus"]
    us, uc = r["untrapped_syscalls"], r["untrapped_compute"]
    worst_untrapped = max(us["overhead_pct"], uc["overhead_pct"],
                          *((r[k]["ratio"] - 1) * 100 for k in ("untrapped_forkexec", "untrapped_dd")
                            if k in r))
    processes = ""
    if "untrapped_forkexec" in r:
        fe, dd = r["untrapped_forkexec"], r["untrapped_dd"]
        processes = f"""
  Work that forks and execs costs more: a fork+exec loop runs
  {fe['ratio']:.2f}x as long (each new process and each exec stops in
  ptrace; the native loop resumes the routine stops itself), and `dd bs=64` {dd['ratio']:.2f}x (two
  filtered syscalls per 64 bytes; under the floor {dd['floor_ratio']:.2f}x)."""
    tpy = r["trap_python"]["calls_us"]
    trap_verdict = f"""**{'met' if tn <= 3 * fn else 'missed'}**: {tn:.1f} us per call,
  {tn / fn:.1f}x the floor. The native loop (`native/ext/fastpath.c`) answers
  calls that need no decision: on top of the floor's receive and send it
  queries the VMAs (PROCMAP_QUERY), checks the caller is still waiting and
  writes `*purged` (process_vm_writev); its log goes to the Python model in
  a worker thread. Every call served by the Python loop instead costs
  {tpy:.0f} us ({tpy / fn:.0f}x the floor)."""
    purge_ratio = ps['own_ms'] / ps['inject_ms']
    targets = "".join(f"- {item}\n" for item in new_targets(r))
    return f"""# Benchmarks

Made by `python3 benchmarks/run.py` ({m['date']}; kernel {m['kernel']}, {m['machine']},
{m['cpus']} CPUs, Python {m['python']}; median of {m['runs']} runs per row; {m['calls']}
calls per round-trip run; 1-minute load average {m['loadavg'][0]:.1f} before,
{m['loadavg'][1]:.1f} after). Raw numbers: `benchmarks/results.json`. Rerun after
changing a hot path (trap handling, purge, range tree) and commit both files.

| what | median | compared side by side |
|---|---|---|
{table}

The floors are the cheapest supervisors of each kind: C programs whose
handler answers every trapped call with 0 at once (the probe's `purged`
pointer is never written). They run the same probe as vrange-run, in turn
with it, run after run. The notify floor sets the synchronous wake-up
(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP), as vrange-run does. Neither the floors
nor vrange-run are pinned to CPUs in the main rows, so the scheduler decides
whether each wake-up stays on one CPU or crosses to another; the pinned rows
show what each costs.

## Against the targets

- Per trapped call at most 3x the user-notification floor (3 x {fn:.1f} us
  = {3 * fn:.0f} us, the floor measured in this run): {trap_verdict}
- Untrapped cost at most 2%: **{'met' if worst_untrapped <= 2 else 'missed'}**
  (syscall-heavy {us['overhead_pct']:+.1f}%, compute-bound {uc['overhead_pct']:+.1f}%;
  each program times itself, so vrange-run's start-up is not counted;
  median of {us['runs']} runs of each, bare, floor and vrange-run in turn).
  Under the empty notify floor, which only installs the same kind of
  seccomp filter, the syscall-heavy loop costs {us['floor_overhead_pct']:+.1f}%: that part is the
  kernel's seccomp work on every syscall of a filtered task (a filter of
  any content puts the task on the slow syscall-entry path). vrange-run
  differs from the floor by {us['overhead_pct'] - us['floor_overhead_pct']:+.1f} points.{processes}
- Injected purge at least 0.8x the program's own madvise: **{'met' if purge_ratio >= 0.8 else 'missed'}**
  ({purge_ratio:.3f}x). The gap is the fixed cost of waking the supervisor,
  stopping a thread and finding the resident pages (PAGEMAP_SCAN when no
  other traced process can share them); the madvise itself runs in the
  program.
- React within ~100 ms of crossing the watermark: **{'met' if r.get('react_cgroup', {}).get('react_ms', 1e9) <= 100 else 'not measured or missed'}** on cgroup v1,
  which wakes vrange-run through a usage-threshold eventfd. memcg v1 checks
  thresholds every 128 page charges, so a program that stops allocating just
  past the mark is seen by the next poll instead (at most 100 ms). v2 and the
  RSS budget rely on polling (10 ms near the mark, 100 ms below half of it),
  and the budget also checks at the program's vrange calls (a call waits
  for the purge once the summed RSS reaches the high mark); not measured
  here (v2 has no memory controller on this machine; the budget probe would
  need the RSS of its own tree).
- Idle cost near zero: the idle rows above.
{targets}{''.join(f'{chr(10)}Note: {n}' for n in notes)}
"""


if __name__ == "__main__":
    main()
