"""The HTML page of a Run: self-contained, the SVG figure inlined and a table
of per-process totals."""
import html

from ..observe.stats import human
from .series import shown, subtitle, totals


def html_page(run, svg, most=8):
    """A self-contained page: the SVG inlined and a table of per-process totals."""
    svg = svg[svg.index("<svg"):]      # drop the XML declaration and DOCTYPE
    head = ("pid", "program", "parent", "calls", "errors", "made volatile", "peak volatile",
            "purges", "purged", "answered purged", "SIGBUS", "peak RSS", "end")
    rows = []
    for r in totals(run):
        cells = (r["pid"], r["program"], "" if r["parent"] is None else r["parent"],
                 r["calls"], r["errors"], human(r["marked_bytes"]), human(r["peak_volatile"]),
                 r["purges"], human(r["purged_bytes"]), r["purged_answers"], r["sigbus"],
                 "" if r["peak_rss"] is None else human(r["peak_rss"]), r["exit"])
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                    + "</tr>")
    title = html.escape(run.title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vrange-report: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; }}
table {{ border-collapse: collapse; font-size: 90%; }}
th, td {{ border: 1px solid #bbb; padding: 2px 8px; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; }}
th {{ background: #eee; }}
svg {{ max-width: 100%; height: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{html.escape(subtitle(run, len(shown(run, most))))}</p>
<h2>Per-process totals</h2>
<table id="totals">
<tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>
{chr(10).join(rows)}
</table>
<p>made volatile: bytes marked volatile, summed over calls; purges: purge events (one
purge of the process each, as --stats counts them); purged: bytes discarded by them;
answered purged: NONVOLATILE calls that answered "purged".</p>
<h2>Timeline</h2>
{svg}
</body>
</html>
"""
