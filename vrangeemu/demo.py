"""A volatile cache, purged: the bundled demo (`vrange-run python3 -m vrangeemu.demo`).

A cache of 16 chunks keeps 4 hot chunks pinned and marks 12 cold ones
volatile.  The demo then asks vrange-run to purge (what memory pressure
would do), re-pins every cold chunk, rebuilds those that were discarded,
and checks the hot chunks byte for byte.  Exit 0 if all went as expected.
"""
import hashlib
import os
import signal
import sys

from .client import VolatileBuffer, VrangeUnavailable, vrange, NONVOLATILE
from .observe.stats import human

CHUNK = 4 << 20
CHUNKS = 16
HOT = 4


def render(i):
    """The expensive data a cache would keep: 4 MiB derived from the chunk number."""
    seed = hashlib.sha256(f"chunk {i}".encode()).digest()
    return seed * (CHUNK // len(seed))


def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    cache = VolatileBuffer(CHUNK * CHUNKS)
    for i in range(CHUNKS):
        cache.map[i * CHUNK:(i + 1) * CHUNK] = render(i)
    print(f"1. cache of {CHUNKS} chunks x {human(CHUNK)} built; RSS {human(rss())}")
    try:
        for i in range(HOT, CHUNKS):
            cache.mark_volatile(i * CHUNK, CHUNK)
    except VrangeUnavailable as exc:
        print(f"vrange-demo: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"2. chunks {HOT}..{CHUNKS - 1} marked volatile (cold), 0..{HOT - 1} stay pinned (hot)")

    supervisor = int(os.environ.get("VRANGE_SUPERVISOR_PID", os.getppid()))
    os.kill(supervisor, signal.SIGUSR1)
    vrange(cache.address, 4096, NONVOLATILE)   # the purge is served before this call
    print(f"3. memory pressure simulated (kill -USR1 {supervisor}): RSS now {human(rss())}")

    rebuilt = 0
    for i in range(HOT, CHUNKS):
        if cache.mark_nonvolatile(i * CHUNK, CHUNK):
            cache.map[i * CHUNK:(i + 1) * CHUNK] = render(i)
            rebuilt += 1
    hot_ok = sum(cache.map[i * CHUNK:(i + 1) * CHUNK] == render(i) for i in range(HOT))
    cold_ok = sum(cache.map[i * CHUNK:(i + 1) * CHUNK] == render(i) for i in range(HOT, CHUNKS))
    print(f"4. re-pinned the cold chunks: {rebuilt} of {CHUNKS - HOT} answered 'purged' and were "
          f"rebuilt; RSS {human(rss())}")
    print(f"5. hot chunks intact: {hot_ok}/{HOT}; cold chunks correct after rebuild: "
          f"{cold_ok}/{CHUNKS - HOT}")
    ok = hot_ok == HOT and cold_ok == CHUNKS - HOT and rebuilt == CHUNKS - HOT
    print("demo: OK - volatile chunks were discarded and reported, pinned ones kept"
          if ok else "demo: UNEXPECTED result (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
