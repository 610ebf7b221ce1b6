"""vrange-report: plot a `vrange-run --trace FILE` log (docs/trace.md).

    vrange-report trace.jsonl -o run.png      # or .svg, or .html

It says on stdout what it wrote: "vrange-report: wrote OUT (N events)".
Exit status 0, 1 if FILE is not a readable trace or OUT cannot be written,
2 for a usage error (argparse).
"""
import argparse
import io
import os
import sys

from ..version import VersionAction
from .figure import figure
from .page import html_page
from .series import TraceError, load, timeline

FORMATS = ("png", "svg", "html")


def render(run, out, fmt, most=8):
    """Write the plot of `run` to path `out` as png, svg or html."""
    fig = figure(run, most)
    if fmt == "html":
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        text = html_page(run, buf.getvalue(), most)
        with open(out, "w") as f:
            f.write(text)
    elif fmt == "svg":
        fig.savefig(out, format="svg", metadata={"Date": None})
    else:
        fig.savefig(out, format=fmt, dpi=110)


DESCRIPTION = """\
Plot a vrange-run --trace FILE (docs/trace.md): one row per process, on one
time axis in seconds, showing its anonymous RSS, its volatile bytes and the
bytes purged from them (MiB), each purge (a dashed line, coloured and
labelled by what asked for it: memory pressure or SIGUSR1), each SIGBUS
delivery (X), and its fork/exec/exit (triangles). A last row shows the
pressure readings against the high/low marks and the limit (for PSI: memory
stall microseconds per poll)."""

EPILOG = """\
The output format comes from OUT's extension: .png, .svg, or .html (a
self-contained page with the SVG inlined and a table of per-process totals).
Exit status: 0 on success, 1 if FILE is not a readable trace or OUT cannot be
written, 2 for a usage error.

example:
  vrange-run --trace run.jsonl --memory-limit 64M ./my-cache
  vrange-report run.jsonl -o run.html
"""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="vrange-report", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("file", metavar="FILE", help="a trace written by vrange-run --trace FILE")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write the plot: .png, .svg or .html "
                             "(default: FILE with .png)")
    parser.add_argument("--max-processes", metavar="N", type=_positive, default=8,
                        help="draw at most N process rows: those that made vrange calls, "
                             "were purged or got SIGBUS first, then the longest-lived "
                             "(default: 8)")
    opts = parser.parse_args(argv)
    if opts.output is None:
        opts.output = os.path.splitext(opts.file)[0] + ".png"
    ext = os.path.splitext(opts.output)[1].lower().lstrip(".")
    if ext not in FORMATS:
        parser.error(f"-o {opts.output}: unknown output type "
                     f"{'.' + ext if ext else '(no extension)'}; use .png, .svg or .html")
    opts.format = ext
    return opts


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return n


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        events = load(opts.file)
        try:
            run = timeline(events)
        except TraceError as exc:
            raise TraceError(f"{opts.file}: {exc}") from None
    except TraceError as exc:
        print(f"vrange-report: {exc}", file=sys.stderr)
        return 1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("vrange-report: needs matplotlib (python3 -m pip install 'matplotlib>=3.5')",
              file=sys.stderr)
        return 1
    try:
        render(run, opts.output, opts.format, opts.max_processes)
    except OSError as exc:
        print(f"vrange-report: {opts.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"vrange-report: wrote {opts.output} ({len(events)} events)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
