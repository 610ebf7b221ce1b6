"""vrange-report: plot a `vrange-run --trace FILE` log (docs/trace.md).

  series.py  a trace's events as a Run of per-process series (no matplotlib)
  figure.py  the matplotlib figure of a Run
  page.py    the HTML page: the figure inlined and per-process totals
  cli.py     the command: main(), its arguments, its exit codes
"""
from .series import Run, TraceError, load, timeline, totals

__all__ = ["Run", "TraceError", "load", "timeline", "totals"]

