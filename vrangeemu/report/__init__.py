"""vrange-report: plot a `vrange-run --trace FILE` log (docs/trace.md).

  series.py  a trace's events as a Run of per-process series (no matplotlib)
  figure.py  the matplotlib figure of a Run
  page.py    the HTML page: the figure inlined and per-process totals
  cli.py     the command: main(), its arguments, its exit codes
"""
from .series import Run, TraceError, load, timeline, totals

__all__ = ["Run", "TraceError", "load", "timeline", "totals"]


def __getattr__(name):
    """Transitional (issue 11), for the integrator to delete with the old
    vrangeemu/report.py, which this package shadows: cli.py's and live.py's
    `from .report import human, print_stats, write_json` still land here."""
    from ..observe import stats
    if name == "human":
        return stats.human
    if name in ("print_stats", "write_json"):
        new = getattr(stats, name)

        def old(sup, where):   # the old signature: a Supervisor (finished, spaces(), pressure)
            collector = stats.StatsCollector()
            collector.rows = list(sup.finished)
            return new(collector, sup, where)
        return old
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
