"""Reports of a finished run: the --stats table and the --stats-json file."""
import json

from .model.space import Stats


def human(n):
    """Bytes as a short human string.

    >>> human(1536), human(3 << 20)
    ('1.5 KiB', '3.0 MiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _rows(sup):
    return list(sup.finished) + [(s.tgid, s.name, s.stats) for s in sup.spaces()]


def write_json(sup, path):
    """Per process, total and pressure readings as JSON (bytes, counts)."""
    rows = _rows(sup)
    total = Stats()
    for _, _, st in rows:
        total.add(st)
    doc = {"processes": [{"pid": tgid, "program": name, **st.as_dict()} for tgid, name, st in rows],
           "total": total.as_dict(),
           "pressure": sup.pressure.readings.as_dict() if sup.pressure else None}
    with open(path, "w") as out:
        json.dump(doc, out, indent=1)
        out.write("\n")


def print_stats(sup, out):
    """One line per address space (live or gone) and a total, on `out`."""
    rows = _rows(sup)
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
    print("  volatile = bytes made volatile (summed over calls); peak-vol = most volatile at "
          "once; peak-res = most volatile bytes resident when pressure was seen", file=out)
    if sup.pressure:
        r = sup.pressure.readings
        print(f"  pressure: {r.source}: {r.checks} checks, {r.over_high} over the high mark, "
              f"peak {human(r.max_usage) if r.limit else r.max_usage}, "
              f"limit enforced {r.enforced} times", file=out)
