#!/usr/bin/env python3
"""Demo 2: a cache four times bigger than its memory limit stays alive by being purged.

    python3 demos/2_memory_limit.py

demos/2_memory_limit.c keeps a 256 MiB cache (64 entries of 4 MiB) and does
300 random lookups.  Entries not in use are VOLATILE.  It runs in a memory
cgroup limited to 64 MiB:
  run 1: without vrange-run -> nothing can be given back: the kernel's OOM
         killer ends it (SIGKILL) while it fills the cache
  run 2: vrange-run --memory-limit 64M -> vrange-run watches the cgroup's
         usage and discards the oldest volatile entries before the limit is
         reached; lookups that find their entry purged rebuild it
"""
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's vrangeemu

from _demo import MiB, build, heading, look, mib, out_dir, rel, run, status, trace, verdict  # noqa: E402

LIMIT = 64 * MiB


def without_vrange_run(program):
    """Run the program directly in a new 64 MiB memory cgroup (needs root)."""
    from vrangeemu.linux.cgroup import Cgroup
    group = Cgroup.create(f"vrange-demo-{os.getpid()}")
    if group is None:
        print("  (skipped: cannot create a memory cgroup here; run as root to see it)")
        return None
    try:
        group.enforce(LIMIT)   # a plain hard limit: the OOM killer acts at 64 MiB

        def join():
            with open(group.file("cgroup.procs"), "w") as procs:
                procs.write("0")
        print(f"$ {rel(program)}      # inside a new memory cgroup limited to 64 MiB")
        try:
            proc = subprocess.run([program], preexec_fn=join, capture_output=True, text=True,
                                  timeout=120)
        except subprocess.SubprocessError as exc:
            print(f"  (skipped: could not join the cgroup: {exc})")
            return None
        for line in (proc.stdout + proc.stderr).splitlines():
            print(f"    | {line}")
        return proc
    finally:
        group.remove()


def main():
    print(__doc__)
    program = build("2_memory_limit.c")

    heading("run 1: the cache WITHOUT vrange-run, in a 64 MiB cgroup")
    plain = without_vrange_run(program)
    if plain is not None:
        print(f"  -> {status(plain)}")
        look("'killed by signal 9': the OOM killer ended it; it never printed its lookups")

    heading("run 2: the same program under vrange-run --memory-limit 64M")
    path = out_dir() / "2_memory_limit.trace.jsonl"
    proc = run([program], ["--memory-limit", "64M", "--stats", "--trace", path])
    look("exit status 0, 'wrong=0', 'rebuilt=' (lookups whose entry had been purged) and "
         "peak_rss_mib: far below the 256 MiB the cache needs")

    events = trace(path)
    purges = [e for e in events if e["ev"] == "purge"]
    freed = sum(e["bytes"] for e in purges)
    usage = max((e["usage"] for e in events if e["ev"] == "pressure"), default=0)
    start = events[0] if events else {"limit": 0, "high": 0}
    # --stats's total row: calls errors volatile purged purges (one per purge event)
    total = re.search(r"^\s+total\s+\d+\s+\d+\s+\S+ \S+\s+\S+ \S+\s+(\d+)", proc.stderr, re.M)
    stats_purges = int(total.group(1)) if total else None
    print(f"\n  the trace ({rel(path)}): the cgroup's usage peaked at {mib(usage)} "
          f"(limit {mib(start['limit'])}, purging starts at {mib(start['high'])}); "
          f"{len(purges)} purges discarded {mib(freed)} in all "
          f"(the 'purges' column of --stats above counts the same purges: {stats_purges})")
    print(f"  plot RSS and volatile memory over time: vrange-report {rel(path)} -o limit.png")

    result = dict(re.findall(r"(\w+)=([\d.]+)", proc.stdout))   # lookups=300 hits=... -> dict
    checks = []
    if plain is not None:
        checks.append((plain.returncode == -9,
                       f"without vrange-run: {status(plain)} (the OOM killer)"))
    checks += [
        (proc.returncode == 0 and result.get("wrong") == "0",
         f"under vrange-run: {status(proc)}, {result.get('lookups')} lookups, "
         f"wrong={result.get('wrong')}: every entry that was not purged kept its data"),
        (int(result.get("rebuilt", 0)) > 0,
         f"{result.get('rebuilt')} lookups found their entry purged and rebuilt it, "
         f"{result.get('hits')} found it intact"),
        (0 < float(result.get("peak_rss_mib", 0)) < 128 and len(purges) > 0,
         f"peak RSS {result.get('peak_rss_mib')} MiB for a 256 MiB cache: "
         f"vrange-run purged {len(purges)} times"),
        (stats_purges == len(purges),
         f"--stats and the trace count the same purges ({stats_purges} and {len(purges)})"),
    ]
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
