#!/usr/bin/env python3
"""Demo 1: a volatile cache survives without memory pressure and is purged with it.

    python3 demos/1_volatile_cache.py

A program keeps a 32 MiB cache of data that is expensive to compute.  While
it does not need the cache, it marks the memory VOLATILE: "you may throw
this away if memory gets short".  Later it marks it NONVOLATILE again and
the answer says whether anything was thrown away (purged).  Then it either
uses the data as it is or rebuilds it.

The same program runs twice under vrange-run:
  run 1: no memory pressure        -> purged=0, the data is intact
  run 2: pressure (kill -USR1)     -> purged=1, the cache is rebuilt
"""
import hashlib
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's vrangeemu

ENTRIES = 8
ENTRY = 4 << 20   # 8 entries x 4 MiB = 32 MiB


# --- the program that runs under vrange-run ------------------------------------------
def render(i):
    """Stands for an expensive computation (decoding an image, a query...)."""
    seed = hashlib.sha256(f"entry {i}".encode()).digest()
    return seed * (ENTRY // len(seed))


def rss():
    """Resident memory of this process, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def program(simulate_pressure):
    from vrangeemu.client import VolatileBuffer   # the Python client of vrange()

    cache = VolatileBuffer(ENTRIES * ENTRY)
    for i in range(ENTRIES):
        cache.map[i * ENTRY:(i + 1) * ENTRY] = render(i)
    print(f"built the cache: {ENTRIES} entries, {ENTRIES * ENTRY >> 20} MiB; RSS {rss():.0f} MiB")

    cache.mark_volatile()            # vrange(cache, 32 MiB, VOLATILE)
    print("cache marked VOLATILE: from now on the system may discard it")

    if simulate_pressure:
        # What memory pressure would do; you could also type this in a shell.
        supervisor = int(os.environ["VRANGE_SUPERVISOR_PID"])
        os.kill(supervisor, signal.SIGUSR1)
        print(f"memory pressure: sent `kill -USR1 {supervisor}` to vrange-run")

    # ... the program does other work; later it needs its cache again ...
    purged = cache.mark_nonvolatile()   # vrange(cache, 32 MiB, NONVOLATILE, &purged)
    print(f"cache marked NONVOLATILE again: purged={int(purged)}; RSS {rss():.0f} MiB")
    if purged:
        # Discarded pages now read as zeros: the data must be computed again.
        for i in range(ENTRIES):
            cache.map[i * ENTRY:(i + 1) * ENTRY] = render(i)
        print(f"rebuilt all {ENTRIES} entries; RSS {rss():.0f} MiB")
    good = sum(cache.map[i * ENTRY:(i + 1) * ENTRY] == render(i) for i in range(ENTRIES))
    print(f"entries correct: {good}/{ENTRIES} ({'rebuilt' if purged else 'intact'})")
    return 0 if good == ENTRIES else 1


# --- the demo: run the program twice and say what happened ----------------------------
def main():
    from _demo import heading, look, mib, out_dir, rel, run, status, trace, verdict

    me = str(Path(__file__).resolve())
    traces = out_dir()
    print(__doc__)

    heading("run 1: nothing asks for memory (--pressure none: vrange-run never purges by itself)")
    t1 = traces / "1_no_pressure.trace.jsonl"
    quiet = run([sys.executable, me, "--program"],
                ["--pressure", "none", "--stats", "--trace", t1])
    look("'purged=0' and 'entries correct: 8/8 (intact)': the volatile data survived")

    heading("run 2: memory pressure (the program asks vrange-run to purge, as `kill -USR1` would)")
    t2 = traces / "1_pressure.trace.jsonl"
    pressed = run([sys.executable, me, "--program", "--purge"],
                  ["--pressure", "none", "--stats", "--trace", t2])
    look("'purged=1': the answer says the data is gone; RSS fell by ~32 MiB; then 'rebuilt'")

    purges = [e for e in trace(t2) if e["ev"] == "purge"]
    freed = sum(e["bytes"] for e in purges)
    print(f"\n  the trace ({rel(t2)}) has {len(purges)} purge event(s), {mib(freed)} discarded "
          f"by an injected madvise(MADV_DONTNEED)")
    print(f"  plot it: vrange-report {rel(t2)} -o cache.png")

    return verdict([
        (quiet.returncode == 0 and "purged=0" in quiet.stdout
         and "entries correct: 8/8 (intact)" in quiet.stdout,
         f"run 1 ({status(quiet)}): no pressure, purged=0, the cache was used as it was"),
        (not [e for e in trace(t1) if e["ev"] == "purge"],
         "run 1's trace has no purge"),
        (pressed.returncode == 0 and "purged=1" in pressed.stdout
         and "entries correct: 8/8 (rebuilt)" in pressed.stdout,
         f"run 2 ({status(pressed)}): pressure, purged=1, the cache was rebuilt and is correct"),
        (freed == ENTRIES * ENTRY, f"run 2's trace: {mib(freed)} of the 32 MiB cache was discarded"),
    ])


if __name__ == "__main__":
    if "--program" in sys.argv:
        sys.exit(program("--purge" in sys.argv))
    sys.exit(main())
