"""What a purge discards: runs of volatile, unpurged, discardable pages (pure).

>>> from vrangeemu.model.ranges import VolatileRanges
>>> r = VolatileRanges(); r.mark(0, 4 * 4096)
>>> purge_runs(r, lambda s, e: [True, False, True, True])
[(0, 4096), (8192, 16384)]
"""

PAGE = 4096


def purge_runs(ranges, discardable):
    """[(start, end)] to madvise(MADV_DONTNEED), in address order.

    `discardable(start, end)` gives one bool per page (resident and mapped
    by this process alone).  Pages already purged are skipped; a page that
    is not discardable splits a run, so nothing another process still maps
    (copy-on-write) and nothing never touched is ever counted as purged.
    """
    runs = []
    for rng in ranges:
        for start, end in ranges.unpurged_intervals(rng):
            run_start = None
            for i, ok in enumerate(discardable(start, end)):
                addr = start + i * PAGE
                if ok and run_start is None:
                    run_start = addr
                elif not ok and run_start is not None:
                    runs.append((run_start, addr))
                    run_start = None
            if run_start is not None:
                runs.append((run_start, end))
    return runs
