"""What --live shows, copied out of a RunState into plain data (`Snapshot`).

It runs in the supervisor's loop, so its cost is bounded: one /proc read per
shown process (RSS), and a strip costs O(ranges) up to STRIP_EXACT ranges,
else O(SAMPLE_CELLS log n) probes (rebuilt at most every SAMPLED_EVERY
seconds); strips are cached while a space does not change and their
rebuilding stops after STRIP_BUDGET seconds per refresh (the previous strip
is shown meanwhile, marked old).
"""
import dataclasses
import os
import re
import time
from dataclasses import dataclass

from ...model.ranges import PAGE

STRIP_EXACT = 2048    # up to this many ranges (purged: pages) a strip is exact
SAMPLE_CELLS = 256    # resolution of a sampled strip (larger spaces)
PROBE_PAGES = 4       # pages a sampled strip probes at two places per bucket
SAMPLED_EVERY = 1.0   # seconds a sampled strip is kept while its space changes
STRIP_BUDGET = 0.005  # seconds of strip rebuilding per refresh
PLAIN_ROWS = 20       # processes shown in a plain-text frame


@dataclass(frozen=True)
class Strip:
    """What the strip of one address space shows: [lo, hi) from its lowest to
    its highest volatile address, its volatile and purged intervals ((start,
    end) pairs, in address order).  `sampled`: the intervals are buckets of
    SAMPLE_CELLS probes, not exact (a space with very many ranges)."""
    lo: int
    hi: int
    volatile: tuple = ()
    purged: tuple = ()
    sampled: bool = False
    stale: bool = False   # from an earlier refresh (over the rebuild budget)


@dataclass(frozen=True)
class Process:
    """One traced address space (a process; its threads share it)."""
    pid: int
    program: str
    threads: int = 1
    rss: int = 0            # RssAnon bytes (what purges change)
    volatile: int = 0       # bytes volatile now
    purged: int = 0         # bytes purged now (still volatile, data gone)
    purged_total: int = 0   # bytes discarded by purges since it started
    ranges: int = 0
    calls: int = 0
    purges: int = 0
    strip: Strip = None


@dataclass(frozen=True)
class Pressure:
    """The pressure source's last reading.  Usage sources (cgroup, budget):
    bytes against limit/high/low; PSI: `usage` is the stall (us) seen at the
    last check, purging from `threshold_us`; `avg10` (%) and `total_us` are
    the kernel's 'some' line."""
    source: str
    limit: int = 0
    high: int = 0
    low: int = 0
    usage: int = 0
    checks: int = 0
    over_high: int = 0
    enforced: int = 0
    psi: bool = False
    threshold_us: int = 0
    avg10: float = None
    total_us: int = None


@dataclass(frozen=True)
class Snapshot:
    elapsed: float
    argv: tuple = ()
    processes: tuple = ()
    hidden: int = 0            # live processes not shown (too many for the screen)
    hidden_volatile: int = 0
    hidden_purged: int = 0
    exited: int = 0            # processes that are gone
    pressure: Pressure = None
    supervisor_pid: int = 0
    ended: bool = False        # the program is gone: this is the last frame


def snapshot(state, gone=(), rss_of=None, started=None, max_processes=PLAIN_ROWS, cache=None,
             now=time.monotonic):
    """What the view shows, as plain data.

    `state` is a RunState (argv, spaces(), pressure); `gone`: the pids of the
    SpaceEnd events seen (an exec'd process that still runs is not counted
    as exited); `rss_of(pid)` gives the RSS (default: RssAnon from /proc);
    `cache` (a dict kept by the caller) lets unchanged strips be reused;
    `started`: monotonic time of the start."""
    if rss_of is None:
        from ...linux.procfs import anon_rss_of as rss_of
    t = now()
    spaces = state.spaces()
    shown = spaces
    if len(spaces) > max_processes:   # the busiest ones, listed by pid
        shown = sorted(spaces, key=lambda sp: (-sp.ranges.volatile_bytes, sp.tgid))[:max_processes]
    shown = sorted(shown, key=lambda sp: sp.tgid)
    shown_ids = {id(sp) for sp in shown}
    hidden = [sp for sp in spaces if id(sp) not in shown_ids]
    strips = _strips(shown, {} if cache is None else cache, t + STRIP_BUDGET, now)
    procs = tuple(Process(
        pid=sp.tgid, program=sp.name, threads=len(sp.tids), rss=rss_of(sp.tgid),
        volatile=sp.ranges.volatile_bytes, purged=sp.ranges.purged_bytes,
        purged_total=sp.stats.purged_bytes, ranges=len(sp.ranges), calls=sp.stats.calls,
        purges=sp.stats.purges, strip=strips.get(id(sp))) for sp in shown)
    return Snapshot(
        elapsed=t - (t if started is None else started), argv=tuple(state.argv), processes=procs,
        hidden=len(hidden), hidden_volatile=sum(sp.ranges.volatile_bytes for sp in hidden),
        hidden_purged=sum(sp.ranges.purged_bytes for sp in hidden),
        exited=len(set(gone) - {sp.tgid for sp in spaces}),
        pressure=_pressure(state.pressure), supervisor_pid=os.getpid())


def final(last, ended, elapsed, exited, max_processes=PLAIN_ROWS):
    """The last frame, drawn once the program is gone: a row per address
    space that ended (`ended`: (pid, program, Stats) of the SpaceEnd events,
    in order, as --stats lists them) with its counts at exit; what only a
    running process has (threads, RSS, volatile and purged bytes, ranges,
    strip) as `last`, the newest snapshot, showed it (if it did).  Without
    any SpaceEnd (a setup error) `last`'s rows are kept.  Rows beyond
    `max_processes` are those with the fewest calls, counted as hidden."""
    base = last if last is not None else Snapshot(elapsed)
    rows = list(base.processes)
    if ended:
        seen = {(p.pid, p.program): p for p in base.processes}
        rows = [dataclasses.replace(seen.get((pid, program)) or Process(pid, program, threads=0),
                                    calls=st.calls, purges=st.purges,
                                    purged_total=st.purged_bytes)
                for pid, program, st in ended]
    hidden = 0
    if len(rows) > max_processes:   # the busiest ones, in their order
        keep = set(sorted(range(len(rows)), key=lambda i: -rows[i].calls)[:max_processes])
        hidden = len(rows) - len(keep)
        rows = [r for i, r in enumerate(rows) if i in keep]
    return dataclasses.replace(base, processes=tuple(rows), hidden=hidden, hidden_volatile=0,
                               hidden_purged=0, ended=True, elapsed=elapsed, exited=exited)


def _strips(spaces, cache, deadline, now):
    """id(space) -> Strip (or None: not built yet) for `spaces`; `cache` maps
    id(space) to (space, fingerprint, strip, when built).  A strip is rebuilt
    only if its space changed, oldest first, and only until `deadline` (at
    least one per call); the others show their previous strip, marked stale."""
    out, todo = {}, []
    for sp in spaces:
        vr = sp.ranges
        # Every model change is a call (stats.calls) or a purge (purged_bytes).
        fp = (vr, len(vr), vr.volatile_bytes, vr.purged_bytes, sp.stats.calls)
        entry = cache.get(id(sp))
        if entry is not None and entry[0] is not sp:   # id reused by a new space
            entry = None
        if entry is not None and (entry[1] == fp or entry[2] is not None and entry[2].sampled
                                  and now() - entry[3] < SAMPLED_EVERY):
            out[id(sp)] = entry[2]
        else:
            todo.append((entry[3] if entry else 0.0, sp, fp, entry))
    built = 0
    for _, sp, fp, entry in sorted(todo, key=lambda x: x[0]):
        if built == 0 or now() < deadline:
            strip = strip_of(sp.ranges)
            cache[id(sp)] = (sp, fp, strip, now())
            built += 1
        elif entry is not None and entry[2] is not None:
            strip = dataclasses.replace(entry[2], stale=True)
        else:
            strip = None
        out[id(sp)] = strip
    live = {id(sp) for sp in spaces}
    for key in [k for k in cache if k not in live]:
        del cache[key]
    return out


def strip_of(vr):
    """The Strip of a VolatileRanges (None if it has no ranges): exact up to
    STRIP_EXACT ranges and purged pages, else sampled (`_sample`)."""
    bounds = vr.bounds()
    if bounds is None:
        return None
    lo, hi = bounds
    if len(vr) <= STRIP_EXACT and vr.purged_bytes <= STRIP_EXACT * PAGE:
        return Strip(lo, hi, tuple((r.start, r.end) for r in vr), tuple(vr.purged_intervals()))
    volatile, purged = _sample(vr, lo, hi)
    return Strip(lo, hi, volatile, purged, sampled=True)


def _sample(vr, lo, hi):
    """(volatile buckets, purged buckets) of SAMPLE_CELLS buckets over [lo,
    hi), each probed at PROBE_PAGES pages at its start and its middle: a
    bounded O(SAMPLE_CELLS log n) whatever the number of ranges (a volatile
    hit also covers the buckets its range reaches)."""
    pages = (hi - lo) // PAGE
    n = min(pages, SAMPLE_CELLS)
    edges = [lo + (i * pages // n) * PAGE for i in range(n + 1)]
    volatile, purged, covered = [], [], 0
    for a, b in zip(edges, edges[1:]):
        windows = [(p, min(p + PROBE_PAGES * PAGE, b))
                   for p in (a, a + (b - a) // 2 // PAGE * PAGE)]
        if a < covered:
            volatile.append((a, b))
        else:
            for w in windows:
                found = vr.overlapping(*w)
                if found:
                    covered = found[-1].end
                    volatile.append((a, b))
                    break
        if any(vr.is_purged(*w) for w in windows):
            purged.append((a, b))
    return _merge(volatile), _merge(purged)


def _merge(intervals):
    out = []
    for s, e in intervals:
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return tuple(out)


def _pressure(src):
    if src is None:
        return None
    r = src.readings
    threshold = getattr(src, "threshold_us", None)
    fields = dict(source=r.source, limit=r.limit, high=r.high, low=r.low, usage=r.last_usage,
                  checks=r.checks, over_high=r.over_high, enforced=r.enforced)
    if threshold is None:
        return Pressure(**fields)
    avg10 = total = None
    try:   # the kernel's own summary, one small read
        with open(src.path) as f:
            m = re.search(r"^some avg10=([\d.]+) .*total=(\d+)", f.read(), re.M)
        if m:
            avg10, total = float(m.group(1)), int(m.group(2))
    except (OSError, AttributeError):
        pass
    return Pressure(**fields, psi=True, threshold_us=threshold, avg10=avg10, total_us=total)
