#!/usr/bin/env python3
"""Demo 3: fork and copy-on-write - a page a child still needs is not discarded.

    python3 demos/3_fork_cow.py

After fork() the parent and the child map the same physical pages until one
of them writes (copy-on-write).  demos/3_fork_cow.c fills two 4 MiB regions
and marks both VOLATILE, then forks; the child inherits both volatile
ranges.  The child re-pins A (it needs that data) and leaves B volatile.
The parent asks for a purge (SIGUSR1), twice:
  purge 1, child alive:  B goes from both processes (both agreed);
                         A stays in both: the child pinned it, and dropping
                         the parent's mapping alone would free no memory
  purge 2, child gone:   A is the parent's alone now, and volatile: it goes
"""
import sys

from _demo import build, heading, look, mib, out_dir, rel, run, status, trace, verdict


def main():
    print(__doc__)
    program = build("3_fork_cow.c")

    heading("run: parent and child under vrange-run")
    path = out_dir() / "3_fork_cow.trace.jsonl"
    proc = run([program], ["--pressure", "none", "--trace", path])
    look("'after purge 1: A resident 1024/1024 pages, B resident 0/1024' in BOTH processes,")
    look("'child: A data intact', then 'after purge 2: A resident 0/1024' once the child is gone")

    events = trace(path)
    forks = [e for e in events if e["ev"] == "fork"]
    child = forks[0]["pid"] if forks else None
    print(f"\n  the trace ({rel(path)}):")
    for e in events:
        if e["ev"] == "fork":
            print(f"    {e['t']:.3f}s fork: pid {e['pid']} inherits {e['ranges']} volatile ranges")
        elif e["ev"] == "purge":
            who = "child " if e["pid"] == child else "parent"
            print(f"    {e['t']:.3f}s purge in the {who} (pid {e['pid']}): {mib(e['bytes'])} discarded")
        elif e["ev"] == "space_end":
            print(f"    {e['t']:.3f}s pid {e['pid']} has exited")
    print(f"  plot it: vrange-report {rel(path)} -o fork.png")

    out = proc.stdout
    purged_from = [e["pid"] for e in events if e["ev"] == "purge"]
    return verdict([
        (proc.returncode == 0, f"vrange-run: {status(proc)}"),
        ("parent: after purge 1: A resident 1024/1024 pages, B resident 0/1024" in out
         and "child:  after the purge: A resident 1024/1024 pages, B resident 0/1024" in out,
         "purge 1: A (pinned by the child) stayed in both, B (volatile in both) left both"),
        ("child:  A data intact" in out and "child:  re-pinned B: purged=1" in out,
         "the child's A is intact; its B answered purged=1"),
        ("parent: after purge 2: A resident 0/1024 pages" in out
         and "parent: re-pinned A: purged=1" in out,
         "purge 2, after the child exited: the parent's A was discarded (purged=1)"),
        (sorted(purged_from) == sorted([child, forks[0]["parent"], forks[0]["parent"]])
         if forks else False,
         "the trace: B purged in the child and the parent, then A in the parent"),
    ])


if __name__ == "__main__":
    sys.exit(main())
