"""Reports of a finished run: the --stats table and the --stats-json file.

Rows are the processes that are gone (SpaceEnd events, in order: a process
that exec'd has one row per program it ran), then the live address spaces of
the RunState, then the pressure source's readings.
"""
import json

from ..model.space import Stats
from .events import SpaceEnd


def human(n):
    """Bytes as a short human string.

    >>> human(1536), human(3 << 20)
    ('1.5 KiB', '3.0 MiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class StatsCollector:
    """The finished rows: (pid, program, model.space.Stats) per SpaceEnd seen."""

    def __init__(self, bus=None):
        self.rows = []
        if bus is not None:
            self.attach(bus)

    def attach(self, bus):
        bus.subscribe(self._on_end, SpaceEnd)

    def _on_end(self, ev):
        self.rows.append((ev.pid, ev.program, ev.stats))


def _rows(collector, state):
    return list(collector.rows) + [(s.tgid, s.name, s.stats) for s in state.spaces()]


def write_json(collector, state, out):
    """Per process, total and pressure readings as JSON (bytes, counts), to
    `out`: a path, or a file open for writing (left open)."""
    rows = _rows(collector, state)
    total = Stats()
    for _, _, st in rows:
        total.add(st)
    doc = {"processes": [{"pid": tgid, "program": name, **st.as_dict()} for tgid, name, st in rows],
           "total": total.as_dict(),
           "pressure": state.pressure.readings.as_dict() if state.pressure else None}
    if not hasattr(out, "write"):
        with open(out, "w") as f:
            return write_json(collector, state, f)
    json.dump(doc, out, indent=1)
    out.write("\n")


def print_stats(collector, state, out):
    """One line per address space (live or gone) and a total, on `out`."""
    rows = _rows(collector, state)
    total = Stats()
    print("vrange-run: stats", file=out)
    print(f"  {'pid':>7} {'program':<16} {'calls':>7} {'errors':>6} {'volatile':>10} "
          f"{'purged':>10} {'purges':>6} {'answered-purged':>15} {'peak-vol':>10} "
          f"{'peak-res':>10}", file=out)
    for tgid, name, st in rows:
        total.add(st)
        print(f"  {tgid:>7} {name[:16]:<16} {st.calls:>7} {st.errors:>6} "
              f"{human(st.marked_bytes):>10} {human(st.purged_bytes):>10} {st.purges:>6} "
              f"{st.purged_answers:>15} {human(st.volatile_peak):>10} "
              f"{human(st.resident_volatile_peak):>10}", file=out)
    print(f"  {'total':>7} {'':<16} {total.calls:>7} {total.errors:>6} "
          f"{human(total.marked_bytes):>10} {human(total.purged_bytes):>10} "
          f"{total.purges:>6} {total.purged_answers:>15}", file=out)
    print("  volatile = bytes made volatile (summed over calls); purged = bytes discarded; "
          "purges = purges of the process (one --trace `purge` event each); peak-vol = most "
          "volatile at once; peak-res = most volatile bytes resident when pressure was seen",
          file=out)
    if state.pressure:
        r = state.pressure.readings
        print(f"  pressure: {r.source}: {r.checks} checks, {r.over_high} over the high mark, "
              f"peak {human(r.max_usage) if r.limit else r.max_usage}, "
              f"limit enforced {r.enforced} times", file=out)
        if getattr(r, "group_peak", None) is not None:
            print(f"  memory cgroup: peak usage {human(r.group_peak)} of the "
                  f"{human(r.limit)} limit", file=out)
