"""ebizzy-like allocator benchmark: libvrcache.so's strategies side by side.

    python3 benchmarks/ebizzy.py [--quick] [--runs N] [--json FILE]

`measure(workdir, runs=3, quick=False)` builds native/vrcache/vrcache.c and
native/progs/ebizzy.c in `workdir`, runs the workload and returns a
JSON-serialisable dict; `render(results)` turns it into markdown.

Each ebizzy iteration mallocs a copy of a random chunk, memcpys it, searches
it linearly and frees it: one record.  With strategy `vrange` the free is
one VOLATILE call and the next malloc one NONVOLATILE call, both trapped by
vrange-run; `dontneed` gives the pages back (madvise) and faults them in
again; `free` uses MADV_FREE; `unmap` munmaps; `keep` keeps them.

- Without pressure: fixed chunk sizes, every strategy; vrange under
  vrange-run, the others bare and under vrange-run (idle for them: the cost
  of merely running under it).
- With pressure: random copy sizes (ebizzy -R; here -r), so the cache holds
  one chunk per size class, several times the chunk size.  The
  --memory-limit is set between the peak cgroup usage of `dontneed` (nothing
  cached) and of `keep` (everything cached), measured first without a limit:
  the cache does not fit, `keep` is OOM-killed, `vrange` must purge.

Medians of `runs` runs, interleaved.  Single thread, as the published
kernel measurement.  Needs vrange-run, a C compiler, root for the cgroup.
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # this checkout's vrangeemu.cbuild
from vrangeemu import cbuild  # noqa: E402
from vrangeemu.linux import inproc  # noqa: E402

VRANGE_RUN = [sys.executable, "-m", "vrangeemu"]
KiB, MiB = 1 << 10, 1 << 20
STRATEGIES = ("vrange", "dontneed", "free", "unmap", "keep")
THRESHOLD = 4 * KiB             # VRCACHE_THRESHOLD: every chunk size here is cached
SOURCE_BYTES = 64 * MiB         # without pressure: -n such that n * size ~ this (n <= 512)
PRESSURE_SOURCE = 16 * MiB      # with pressure: less pinned data, the cache matters more
PRESSURE_REFERENCE = ("vrange", "dontneed", "keep")   # also run without a limit
LIMIT_SHARE = 0.75              # limit = dontneed peak + this share of (keep - dontneed)
# The kernel patches' jemalloc port (volatile instead of MADV_DONTNEED on free),
# as the numbers quoted with the patch series (2013-2014).
PUBLISHED = [{"before": 6045, "after": 30232, "command": "ebizzy -S 30 -n 512", "cpus": "1 thread",
              "patch": "v10"},
             {"before": 52389, "after": 203414, "command": "ebizzy -S 20", "cpus": "12 CPUs",
              "patch": "v7"}]


def build(workdir):
    """Compile libvrcache.so and ebizzy into workdir; returns their paths."""
    native, flags = ROOT / "native", ("-O2", "-Wall", "-Werror", "-pthread")
    lib = cbuild.build(native / "vrcache" / "vrcache.c", Path(workdir) / "libvrcache.so", flags,
                       shared=True, libs=("-ldl",), root=ROOT)
    exe = cbuild.build(native / "progs" / "ebizzy.c", Path(workdir) / "ebizzy", flags, root=ROOT)
    return lib, exe


def chunks_for(size, source):
    return max(1, min(512, source // size))


def one_run(tools, workdir, strategy, size, chunks, seconds, traced, limit=None,
            random_sizes=False):
    """One ebizzy run -> {"status": "ok"|"oom", records_per_s, maxrss_kb, runs_discarded,
    usage}."""
    lib, exe = tools
    argv = [exe, "-S", f"{seconds:g}", "-n", str(chunks), "-s", str(size), "-t", "1", "-R", "1"]
    if random_sizes:
        argv.append("-r")
    settings = {"LD_PRELOAD": lib, "VRCACHE_STRATEGY": strategy,
                "VRCACHE_THRESHOLD": str(THRESHOLD)}
    report = Path(workdir) / "stats.json"
    if report.exists():
        report.unlink()
    if traced:
        # env(1) sets the preload inside: vrange-run itself stays on libc's malloc.
        # vrange-run's own library comes first, as vrange-run would put it.
        inproc_lib = inproc.library_path()
        if inproc_lib:
            settings["LD_PRELOAD"] = f"{inproc_lib} {lib}"
        cmd = [*VRANGE_RUN, "--stats-json", str(report),
               *(["--memory-limit", f"{limit // MiB}M"] if limit else []),
               "env", *(f"{k}={v}" for k, v in settings.items()), *argv]
        env = None
    else:
        cmd, env = argv, {**os.environ, **settings}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=seconds * 20 + 120)
    out = {"status": "ok", "runs_discarded": 0, "usage": None, "enforced": 0}
    if traced and report.exists():
        doc = json.loads(report.read_text())
        out["runs_discarded"] = doc["total"]["runs_discarded"]
        if doc.get("pressure"):
            out["usage"] = doc["pressure"]["max_usage"]
            out["enforced"] = doc["pressure"].get("enforced", 0)
    m = re.search(r"records_per_s=([\d.]+) maxrss_kb=(\d+) .*bad=0", proc.stdout)
    if proc.returncode == 0 and m:
        out.update(records_per_s=float(m.group(1)), maxrss_kb=int(m.group(2)))
    elif limit and proc.returncode in (128 + 9, -9):
        out["status"] = "oom"         # SIGKILL under a memory limit: the OOM killer
    else:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {proc.returncode}\n"
                           f"{proc.stdout}{proc.stderr}")
    return out


def summarise(runs):
    """Medians over the runs that finished; how many were OOM-killed."""
    ok = [r for r in runs if r["status"] == "ok"]
    row = {"runs": len(runs), "oom": len(runs) - len(ok),
           "runs_discarded": statistics.median(r["runs_discarded"] for r in runs)}
    usage = [r["usage"] for r in runs if r["usage"] is not None]
    row["usage"] = statistics.median(usage) if usage else None
    if ok:
        row["records_per_s"] = statistics.median(r["records_per_s"] for r in ok)
        row["maxrss_kb"] = statistics.median(r["maxrss_kb"] for r in ok)
    return row


def measure(workdir, runs=3, quick=False):
    """Run everything; returns a dict for render() (and for JSON).

    quick: one run per row, three chunk sizes, the same two pressure sizes,
    0.4 s runs (about 40 s); otherwise seven sizes (4 KiB .. 4 MiB: where the
    crossover with dontneed lies), two pressure sizes and 0.8 s runs (about 5
    minutes with runs=3)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tools = build(workdir)
    if quick:
        runs, seconds = 1, 0.4
        sizes, pressure_sizes = [16 * KiB, 256 * KiB, 4 * MiB], [MiB, 4 * MiB]
    else:
        seconds = 0.8
        sizes = [4 * KiB, 8 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB]
        pressure_sizes = [MiB, 4 * MiB]
    started = time.monotonic()

    def log(msg):
        print(f"ebizzy [{time.monotonic() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)

    # 1. Fixed chunk sizes, no limit.
    configs = [(s, "vrange", True) for s in sizes]
    configs += [(s, st, traced) for s in sizes for st in STRATEGIES[1:] for traced in (False, True)]
    raw = {c: [] for c in configs}
    for r in range(runs):
        log(f"no pressure, run {r + 1}/{runs} ({len(configs)} rows)")
        for size, st, traced in configs:
            raw[size, st, traced].append(one_run(tools, workdir, st, size,
                                                 chunks_for(size, SOURCE_BYTES), seconds, traced))
    plain = [{"size": size, "chunks": chunks_for(size, SOURCE_BYTES), "strategy": st,
              "traced": traced, **summarise(raw[size, st, traced])}
             for size, st, traced in configs]

    # 2. Random copy sizes: reference without a limit (a 4G cgroup, to read its usage).
    reference = {(s, st): [] for s in pressure_sizes for st in PRESSURE_REFERENCE}
    for r in range(runs):
        log(f"pressure reference (no limit), run {r + 1}/{runs}")
        for size, st in reference:
            reference[size, st].append(one_run(
                tools, workdir, st, size, chunks_for(size, PRESSURE_SOURCE), seconds, True,
                limit=4096 * MiB, random_sizes=True))
    limits, notes = {}, []
    for size in pressure_sizes:
        low = summarise(reference[size, "dontneed"])["usage"]
        high = summarise(reference[size, "keep"])["usage"]
        if not low or not high or high - low < 2 * MiB:
            notes.append(f"{size // KiB} KiB: cache too small against the limit granularity "
                         "(or no usage reading); no pressure rows")
            continue
        limits[size] = math.ceil((low + LIMIT_SHARE * (high - low)) / MiB) * MiB

    # 3. The same under the limit.
    limited = {(s, st): [] for s in limits for st in STRATEGIES}
    for r in range(runs):
        log(f"under pressure, run {r + 1}/{runs}")
        for size, st in limited:
            limited[size, st].append(one_run(
                tools, workdir, st, size, chunks_for(size, PRESSURE_SOURCE), seconds, True,
                limit=limits[size], random_sizes=True))
    pressure = []
    for size in pressure_sizes:
        for st in STRATEGIES:
            row = {"size": size, "chunks": chunks_for(size, PRESSURE_SOURCE), "strategy": st,
                   "limit": limits.get(size)}
            if (size, st) in reference:
                row["no_limit"] = summarise(reference[size, st])
            if (size, st) in limited:
                row["limited"] = summarise(limited[size, st])
            pressure.append(row)
    log("done")
    uname = platform.uname()
    return {"machine": {"kernel": uname.release, "machine": uname.machine,
                        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")},
            "settings": {"runs": runs, "seconds": seconds, "threads": 1, "quick": quick,
                         "threshold": THRESHOLD, "source_bytes": SOURCE_BYTES,
                         "pressure_source_bytes": PRESSURE_SOURCE, "limit_share": LIMIT_SHARE},
            "plain": plain, "pressure": pressure, "limits": {str(k): v for k, v in limits.items()},
            "notes": notes, "elapsed_s": round(time.monotonic() - started, 1),
            "published": PUBLISHED}


# ---- rendering ----

def size_text(n):
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n / KiB:g} KiB"


def rate(row):
    if row is None:
        return "-"
    if row.get("oom") and "records_per_s" not in row:
        return f"OOM-killed ({row['oom']}/{row['runs']})"
    text = f"{row['records_per_s']:,.0f}"
    return text + (f" ({row['oom']}/{row['runs']} OOM-killed)" if row.get("oom") else "")


def crossover(points):
    """points: [(size, ratio)] by size.  The size where ratio crosses 1
    (interpolated on log size / log ratio), and the bracketing sizes."""
    for (s0, r0), (s1, r1) in zip(points, points[1:]):
        if r0 < 1 <= r1:
            t = -math.log(r0) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0))), s0, s1
    return None


def render(results):
    s, m = results["settings"], results["machine"]
    plain = results["plain"]
    by = {(r["size"], r["strategy"], r["traced"]): r for r in plain}
    sizes = sorted({r["size"] for r in plain})
    lines = [
        "## ebizzy-like allocator workload (libvrcache.so)",
        "",
        f"Made by `python3 benchmarks/ebizzy.py` ({m['date']}; kernel {m['kernel']}, "
        f"{m['cpus']} CPUs; {s['threads']} thread, {s['seconds']:g} s per run, median of "
        f"{s['runs']} run(s){', quick' if s['quick'] else ''}; took {results['elapsed_s']:.0f} s). "
        "A record is one search: malloc a copy of a random chunk, memcpy, linear search, "
        f"free. Every chunk size is cached (VRCACHE_THRESHOLD={s['threshold'] // KiB} KiB); "
        f"-n is chosen so that the chunks hold about {s['source_bytes'] // MiB} MiB. "
        "`vrange` runs under vrange-run: each free is one VOLATILE call, each reuse one "
        "NONVOLATILE call, both trapped. The other strategies are shown bare / under "
        "vrange-run (which is idle for them).",
        "",
        "### Without memory pressure: records/s",
        "",
        "| chunk | -n | vrange (vrange-run) | dontneed | free | unmap | keep | vrange / dontneed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios, untrapped = [], []
    for size in sizes:
        v = by[size, "vrange", True]
        cells = []
        for st in STRATEGIES[1:]:
            bare, traced = by[size, st, False], by[size, st, True]
            cells.append(f"{rate(bare)} / {rate(traced)}")
            if bare.get("records_per_s") and traced.get("records_per_s"):
                untrapped.append(traced["records_per_s"] / bare["records_per_s"])
        ratio = v["records_per_s"] / by[size, "dontneed", False]["records_per_s"]
        ratios.append((size, ratio))
        lines.append(f"| {size_text(size)} | {v['chunks']} | {rate(v)} | {' | '.join(cells)} | "
                     f"**{ratio:.2f}x** |")
    lines += ["", "Peak RSS (MiB; vrange under vrange-run, the others bare):", "",
              "| chunk | vrange | dontneed | free | unmap | keep |", "|---|---|---|---|---|---|"]
    for size in sizes:
        cells = [by[size, "vrange", True]] + [by[size, st, False] for st in STRATEGIES[1:]]
        lines.append(f"| {size_text(size)} | " + " | ".join(
            f"{c['maxrss_kb'] / 1024:.0f}" if "maxrss_kb" in c else "-" for c in cells) + " |")

    cross = crossover(ratios)
    if cross:
        at, lo, hi = cross
        above = [(sz, r) for sz, r in ratios if sz >= hi]
        crossing = (f"**`vrange` under emulation beats `dontneed` from about "
                    f"{size_text(int(at // KiB * KiB))} chunks** (between {size_text(lo)} and "
                    f"{size_text(hi)}, interpolated); above it by "
                    + ", ".join(f"{r:.1f}x at {size_text(sz)}" for sz, r in above) + ".")
    elif ratios and all(r >= 1 for _, r in ratios):
        crossing = (f"`vrange` under emulation beats `dontneed` at every size measured, from "
                    f"{size_text(ratios[0][0])} ({ratios[0][1]:.1f}x).")
    else:
        crossing = "`vrange` under emulation does not beat `dontneed` at any size measured."
    best = max(ratios, key=lambda x: x[1]) if ratios else None
    published = "; ".join(
        f"{p['before']} -> {p['after']} records/s ({p['after'] / p['before']:.1f}x) with "
        f"`{p['command']}`, {p['cpus']}, {p['patch']}" for p in results["published"])
    small = sizes[0]
    keep_t, vr = by[small, "keep", True], by[small, "vrange", True]
    per_record = 1e6 / vr["records_per_s"] - 1e6 / keep_t["records_per_s"]
    lines += ["", crossing, "",
              f"Headline without pressure: vrange / dontneed = **{ratios[-1][1]:.1f}x** at "
              f"{size_text(ratios[-1][0])}" + (f" (best {best[1]:.1f}x at {size_text(best[0])})"
                                                 if best and best != ratios[-1] else "")
              + ". The kernel patches' jemalloc port, which marked freed chunks volatile "
              "instead of MADV_DONTNEED, published " + published + "; there the gain shrank "
              "as memory pressure grew.",
              "",
              f"Emulation cost: at {size_text(small)}, a vrange record takes {per_record:.0f} us "
              f"longer than a keep record (both under vrange-run): the two trapped calls, "
              f"~{per_record / 2:.0f} us each. Below the crossover that fixed cost dominates; "
              "above it, dontneed's page faults (one per 4 KiB page, every record) cost more.",
              ""]
    if untrapped:
        lines += [f"Untrapped cost of vrange-run (strategies that make no vrange call, under "
                  f"vrange-run / bare): median {statistics.median(untrapped):.2f}x, range "
                  f"{min(untrapped):.2f}-{max(untrapped):.2f}x.", ""]

    lines += render_pressure(results)
    if results.get("notes"):
        lines += ["Notes: " + "; ".join(results["notes"]) + ".", ""]
    return "\n".join(lines)


def render_pressure(results):
    s = results["settings"]
    rows = [r for r in results["pressure"] if r.get("limited")]
    if not rows:
        return ["### Under memory pressure", "", "Not measured (no limit could be sized).", ""]
    lines = [
        "### Under memory pressure: records/s",
        "",
        f"Random copy sizes (`-r`: 8 B .. chunk size), so the cache holds one chunk per size "
        f"class; -n such that the chunks hold {s['pressure_source_bytes'] // MiB} MiB. "
        f"`--memory-limit` = dontneed's peak cgroup usage + {s['limit_share']:.0%} of the gap "
        "to keep's (both measured first without a limit): the cache does not fit. All rows "
        "under vrange-run.",
        "",
        "| chunk | limit | strategy | no limit | under the limit | peak RSS (MiB) | runs discarded |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lim = r["limited"]
        rss = f"{lim['maxrss_kb'] / 1024:.0f}" if "maxrss_kb" in lim else "-"
        lines.append(f"| {size_text(r['size'])} | {r['limit'] // MiB} MiB | {r['strategy']} | "
                     f"{rate(r.get('no_limit'))} | {rate(lim)} | {rss} | {lim['runs_discarded']:.0f} |")
    heads = []
    by = {(r["size"], r["strategy"]): r for r in rows}
    for size in sorted({r["size"] for r in rows}):
        v, d = by.get((size, "vrange")), by.get((size, "dontneed"))
        if not (v and d and "records_per_s" in v["limited"] and "records_per_s" in d["limited"]):
            continue
        with_p = v["limited"]["records_per_s"] / d["limited"]["records_per_s"]
        text = f"{with_p:.2f}x under the limit"
        if v.get("no_limit", {}).get("records_per_s") and d.get("no_limit", {}).get(
                "records_per_s"):
            text += (f" vs {v['no_limit']['records_per_s'] / d['no_limit']['records_per_s']:.2f}x"
                     " without")
        heads.append(f"{size_text(size)}: {text}")
    lines += ["", "Headline with pressure, vrange / dontneed (same random-size workload): "
              + ("; ".join(heads) if heads else "n/a") + ". Under the limit every reuse of a "
              "purged chunk pays dontneed's page faults plus the two trapped calls, and each "
              "purge stops the program for an injected madvise.", ""]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per row (median reported)")
    ap.add_argument("--quick", action="store_true", help="one run, fewer sizes, shorter runs")
    ap.add_argument("--json", help="also write the raw results here")
    opts = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="vrange-ebizzy-")
    try:
        results = measure(workdir, runs=opts.runs, quick=opts.quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))


if __name__ == "__main__":
    main()
