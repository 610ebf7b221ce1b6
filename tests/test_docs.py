"""The README, docs/*.md and --help against the repository and the measured
benchmark table: every link and file path they give is a file here, every
cost they quote is a row of benchmarks/results.json, the trace example is
made of real events, and the README's synopsis has every option."""
import fnmatch
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, vrange_run
from vrangeemu.observe import events

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {".git", "build", "dist", ".venv", "__pycache__", ".pytest_cache", ".hypothesis",
             ".benchmarks"}
PATH_EXTENSIONS = ("md", "c", "h", "py", "json", "jsonl", "cfg", "toml", "1", "2")


def repository_files():
    """Paths (relative to ROOT, with '/') of the files in this checkout."""
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                   and os.path.relpath(os.path.join(top, d), ROOT) != "demos/build"]
        found += [os.path.relpath(os.path.join(top, f), ROOT).replace(os.sep, "/") for f in files]
    return found


def references(text):
    """(kind, target) of each markdown link and each `file path` in code spans."""
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        yield "link", m.group(1)
    for m in re.finditer(r"`([\w./*\[\]-]+\.(?:%s))`" % "|".join(PATH_EXTENSIONS), text):
        yield "path", m.group(1)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_and_paths_are_files_of_the_repository(doc):
    files = repository_files()
    bad = []
    for kind, target in references(doc.read_text()):
        if kind == "link":
            path = target.split("#")[0]
            resolved = (doc.parent / path).resolve()
            if (re.match(r"^[a-z]+:", target) or path.startswith("/")
                    or not resolved.is_relative_to(ROOT) or not resolved.is_file()):
                bad.append(target)
        # A path in backticks: from the repository root, the document's
        # folder, or the end of a longer path (design.md's tables name
        # `linux/stub.py` under vrangeemu/); a glob must match something.
        elif ".." in target.split("/") or not any(
                fnmatch.fnmatch(f, pattern) for f in files
                for pattern in (target, f"*/{target}",
                                os.path.relpath(doc.parent / target, ROOT))):
            bad.append(target)
    assert not bad, f"{doc.name} points at what is not a file here: {bad}"


def test_trace_doc_example_is_made_of_real_events():
    text = (ROOT / "docs" / "trace.md").read_text()
    example = re.search(r"^Example \(.*?^```\n(.*?)^```", text, re.S | re.M).group(1)
    fields = {kind.KIND: {f for f in kind._fields if f != "t"} for kind in events.KINDS}
    lines = [json.loads(line) for line in example.splitlines()]
    assert lines[0]["ev"] == "start" and lines[0]["version"] == events.VERSION
    for line in lines:
        assert set(line) - {"t", "ev"} == fields[line["ev"]], line


# --- quoted costs against benchmarks/results.json ---------------------------------------

def results():
    return json.loads((ROOT / "benchmarks" / "results.json").read_text())["results"]


def near(quoted, measured, share=0.15):
    """A rounded quote of a measured median: within 15% (or 0.5 us) of it."""
    return abs(quoted - measured) <= max(share * abs(measured), 0.5)


def help_text():
    proc = vrange_run("--help")
    assert proc.returncode == 0
    return " ".join(proc.stdout.split())     # argparse wraps lines anywhere


def text_of(name):
    return help_text() if name == "--help" else " ".join((ROOT / name).read_text().split())


US = r"(\d+(?:\.\d+)?)"
# (where, the quote with its figures in groups, what each figure must match)
NOTIFY = lambda r: r["trap_notify"]["calls_us"]                      # noqa: E731
INPROC = lambda r: r["trap_inproc"]["calls_us"]                      # noqa: E731
PTRACE = lambda r: r["trap_ptrace"]["calls_us"]                      # noqa: E731
TESTING = (lambda r: r["trap_forced"]["calls_us"],                   # cheaper of the two ...
           lambda r: r["trap_checked"]["calls_us"])                  # ... and dearer
CLAIMS = [
    ("README.md", rf"native loop: about {US} us a call", [NOTIFY]),
    ("README.md", rf"in the calling thread, about {US} us a call", [INPROC]),
    ("--help", rf"preloads \(default on, about {US} us a call\)", [INPROC]),
    ("docs/vrange.2.md", rf"inside the program \(about {US} us a call\)", [INPROC]),
    ("README.md", rf"stops in ptrace, {US}-{US} us a call", TESTING),
    ("README.md", rf"a compute loop costs about the same \(\+{US}%\)",
     [lambda r: r["untrapped_compute"]["overhead_pct"]]),
    ("README.md", rf"a syscall-heavy loop takes about {US}x as long",
     [lambda r: 1 + r["untrapped_syscalls"]["overhead_pct"] / 100]),
    ("README.md", rf"bs=64` about {US}x", [lambda r: r["untrapped_dd"]["ratio"]]),
    ("README.md", rf"fork \+ exec `/bin/true` about {US}x",
     [lambda r: r["untrapped_forkexec"]["ratio"]]),
    ("--help", rf"user notification \(default, about {US} us a call\)", [NOTIFY]),
    ("--help", rf"ptrace stop \(about {US} us a call", [PTRACE]),
    ("--help", rf"\(--trap ptrace, {US}-{US} us a call\)", TESTING),
    ("docs/vrange.2.md", rf"native loop inside vrange-run \(about {US} us a call\)", [NOTIFY]),
    ("docs/compat.md", rf"a syscall \(< {US} us\)",
     [lambda r: max(r["trap_bare"]["calls_us"], 1.0)]),   # an upper bound: 1 us covers 0.08
    ("docs/compat.md", rf"about {US} us a call \(user notification", [NOTIFY]),
    ("docs/compat.md", rf"about {US} us a call with `--trap ptrace`", [PTRACE]),
    ("docs/testing-allocators.md", rf"`--trap ptrace`, {US}-{US} us a call here", TESTING),
    ("docs/trace.md", rf"Each call costs about {US} us more",   # noise can make it < 0
     [lambda r: max(r["trap_traced"]["calls_us"] - r["trap_notify"]["calls_us"], 0)]),
]
# Where costs are quoted: every "N us" there must be one of CLAIMS.
QUOTING = ("README.md", "--help", "docs/vrange.2.md", "docs/compat.md",
           "docs/testing-allocators.md", "docs/trace.md", "docs/demos.md")


@pytest.mark.parametrize("where, quote, figures", CLAIMS,
                         ids=[f"{w}-{i}" for i, (w, _, _) in enumerate(CLAIMS)])
def test_quoted_cost_is_the_measured_one(where, quote, figures):
    m = re.search(quote, text_of(where))
    assert m, f"{where} no longer says {quote!r}"
    r = results()
    for quoted, measured in zip(map(float, m.groups()), (f(r) for f in figures)):
        assert near(quoted, measured), \
            f"{where}: {m.group(0)!r} quotes {quoted}, docs/benchmarks.md measured {measured:.2f}"


def test_every_cost_quoted_in_microseconds_is_checked():
    for where in QUOTING:
        text = text_of(where)
        checked = [m.span(i) for q, w in ((q, w) for w, q, _ in CLAIMS if w == where)
                   for m in re.finditer(q, text) for i in range(1, len(m.groups()) + 1)]
        for m in re.finditer(r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))? ?(?:us|µs)\b", text):
            spans = [m.span(1)] + ([m.span(2)] if m.group(2) else [])
            assert all(s in checked for s in spans), \
                f"{where}: {text[max(0, m.start() - 60):m.end() + 20]!r} is in no CLAIM"


def test_readme_synopsis_has_every_option():
    usage = re.search(r"^## Using it\n\n```\n(vrange-run .*?)```", (ROOT / "README.md").read_text(),
                      re.S | re.M).group(1)
    help_usage = vrange_run("--help").stdout.split("\n\n")[0]   # argparse's own usage
    options = re.findall(r"\[(-[\w-]+)", help_usage)
    assert "--trap" in options and "-v" in options
    missing = [o for o in options if o not in ("-h", "--version")
               and not re.search(rf"\[{re.escape(o)}[\] ]", usage)]
    assert not missing, f"the README's synopsis lacks {missing}"


def test_benchmarks_doc_is_the_table_of_results_json(tmp_path):
    """docs/benchmarks.md is what benchmarks/run.py renders from results.json,
    so the figures quoted above are the table's."""
    data = tmp_path / "results.json"
    data.write_bytes((ROOT / "benchmarks" / "results.json").read_bytes())
    proc = subprocess.run([sys.executable, ROOT / "benchmarks" / "run.py", "--render",
                           "--json", data, "--out", tmp_path / "benchmarks.md"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "benchmarks.md").read_text() == (ROOT / "docs" / "benchmarks.md").read_text()
