#!/usr/bin/env python3
"""Demo 4: SIGBUS on purged memory that is still volatile, and recovering from it.

    python3 demos/4_sigbus.py

demos/4_sigbus.c (after the v10 patch's second test): 26 chunks of 16 KiB,
the even ones VOLATILE, a purge, then every chunk is READ without being
re-pinned first.  A purged page has no data any more; while it is still
volatile, touching it raises SIGBUS, so a program can never mistake
missing data for real data:
  run 1: no handler        -> the first purged chunk kills the program (SIGBUS)
  run 2: a SIGBUS handler  -> it re-pins the chunk (answer: purged=1), rebuilds
                              it and returns; the read is retried and succeeds
  run 3: --purged-access zero (what reviewers asked for, like MADV_DONTNEED):
                              no signal, purged chunks simply read as zeros
"""
import sys

from _demo import build, heading, look, out_dir, rel, run, status, trace, verdict


def sigbus_events(path):
    return [e for e in trace(path) if e["ev"] == "sigbus"]


def main():
    print(__doc__)
    program = build("4_sigbus.c")
    traces = out_dir()

    heading("run 1: no SIGBUS handler")
    t1 = traces / "4_no_handler.trace.jsonl"
    plain = run([program, "no-handler"], ["--pressure", "none", "--trace", t1])
    print(f"  -> {status(plain)}")
    look("the last line stops at chunk 0: reading it raised SIGBUS (signal 7), which killed it")

    heading("run 2: a SIGBUS handler that re-pins and rebuilds")
    t2 = traces / "4_handler.trace.jsonl"
    handled = run([program, "handler"], ["--pressure", "none", "--trace", t2])
    look("even chunks: 'sigbus=1 (handler: re-pin said purged=1, rebuilt)' and data=ok; "
         "odd (pinned) chunks: sigbus=0, data=ok")

    heading("run 3: the same, with --purged-access zero")
    zero = run([program, "handler"], ["--pressure", "none", "--purged-access", "zero"], lines=6)
    look("even chunks: 'data=zero sigbus=0': the data is silently gone until the program re-pins")

    caught = sigbus_events(t2)
    print(f"\n  the trace of run 2 ({rel(t2)}) has {len(caught)} sigbus events, "
          f"each at a purged page of a volatile range")
    print(f"  plot it: vrange-report {rel(t2)} -o sigbus.png")

    lines = handled.stdout.splitlines()
    even_ok = [ln for ln in lines if "volatile data=ok sigbus=1 (handler: re-pin said purged=1" in ln]
    odd_ok = [ln for ln in lines if "pinned   data=ok sigbus=0" in ln]
    zero_lines = zero.stdout.splitlines()
    return verdict([
        (plain.returncode == 128 + 7 and plain.stdout.rstrip().endswith("chunk  0 'A' volatile"),
         f"run 1: {status(plain)}, at the first purged chunk"),
        (bool(sigbus_events(t1)) and all(e["purged"] for e in sigbus_events(t1)),
         "run 1's trace: the SIGBUS hit a purged page"),
        (handled.returncode == 0 and len(even_ok) == 13 and len(odd_ok) == 13,
         f"run 2: {status(handled)}; 13 SIGBUSes handled (purged=1, rebuilt), "
         "13 pinned chunks untouched"),
        (len(caught) == 13 and all(e["purged"] for e in caught),
         "run 2's trace: 13 sigbus events, all on purged pages"),
        (zero.returncode == 0
         and sum("volatile data=zero sigbus=0" in ln for ln in zero_lines) == 13
         and sum("pinned   data=ok sigbus=0" in ln for ln in zero_lines) == 13,
         "run 3: no SIGBUS; the 13 purged chunks read as zeros"),
    ])


if __name__ == "__main__":
    sys.exit(main())
