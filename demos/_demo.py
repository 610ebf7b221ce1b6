"""Shared by the demos: find vrange-run, build a C program, run it, say what happened.

Nothing here is about vrange itself; read the numbered demos first.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]   # the repository
if str(ROOT) not in sys.path:   # the repository's vrangeemu.cbuild (pure Python)
    sys.path.insert(0, str(ROOT))
from vrangeemu import cbuild  # noqa: E402

MiB = 1 << 20


def _vrange_run():
    """How to start vrange-run: this checkout's copy if its native part is
    built here (e.g. `pip install -e .`), else the `vrange-run` installed
    with this Python (e.g. .venv/bin/vrange-run, even if the venv is not
    active), else the one on PATH."""
    if list((ROOT / "vrangeemu").glob("_native*.so")):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        return [sys.executable, "-m", "vrangeemu"]
    for exe in (os.path.join(sysconfig.get_path("scripts"), "vrange-run"),
                shutil.which("vrange-run")):
        if exe and os.access(exe, os.X_OK):
            return [exe]
    sys.exit("vrange-run is not installed: run `python3 -m venv .venv && .venv/bin/pip "
             f"install .` in {ROOT} first")


VRANGE_RUN = _vrange_run()


def out_dir():
    """Where built programs and traces go: demos/build (git ignores it)."""
    path = ROOT / "demos" / "build"
    try:
        path.mkdir(exist_ok=True)
        return path
    except OSError:   # a read-only checkout
        return Path(tempfile.mkdtemp(prefix="vrange-demos-"))


def rel(path):
    """A path as a student would type it from the repository root."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def build(c_file):
    """Compile demos/NAME.c against native/include/vrange.h; returns the program's path."""
    src = ROOT / "demos" / c_file
    exe = out_dir() / src.stem
    try:
        cbuild.compiler()
    except cbuild.CompilerNotFound as e:
        sys.exit(f"a C compiler is needed to build this demo: {e}")
    print(f"$ cc -O2 -Wall -I {rel(cbuild.include_dir(ROOT))} -o {rel(exe)} {rel(src)}")
    return cbuild.build(src, exe, ("-O2", "-Wall"), root=ROOT)


def show(argv):
    """The command line as a student would type it."""
    words = []
    for word in argv:
        word = str(word)
        if word == sys.executable:
            word = "python3"
        words.append(rel(word) if word.startswith(str(ROOT)) else word)
    return " ".join(words)


def run(argv, vrange_options=None, lines=None, **kw):
    """Run argv (under `vrange-run OPTIONS...` unless vrange_options is None),
    echoing the command and the program's output (its first `lines` lines if
    given).  Returns the CompletedProcess."""
    if vrange_options is not None:
        if "--trace" in vrange_options:   # never read an old run's trace
            Path(vrange_options[vrange_options.index("--trace") + 1]).unlink(missing_ok=True)
        print(f"$ vrange-run {show([*vrange_options, *argv])}")
        argv = [*VRANGE_RUN, *map(str, vrange_options), *argv]
    else:
        print(f"$ {show(argv)}")
    sys.stdout.flush()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    output = (proc.stdout + proc.stderr).splitlines()
    for line in output[:lines]:
        print(f"    | {line}")
    if lines is not None and len(output) > lines:
        print(f"    | ... ({len(output) - lines} more lines)")
    return proc


def status(proc):
    """The exit status in words (a negative returncode is a signal)."""
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}"
    if proc.returncode > 128:
        return f"exit status {proc.returncode} (128 + signal {proc.returncode - 128})"
    return f"exit status {proc.returncode}"


def trace(path):
    """The events of a --trace file (docs/trace.md); [] if there is none."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def mib(n):
    return f"{n / MiB:.1f} MiB"


def heading(text):
    print(f"\n=== {text}")


def look(text):
    print(f"  >> look at: {text}")


def verdict(checks):
    """checks: [(ok, what it means)].  Prints each and returns the exit status:
    0 only if everything the demo set out to show really happened."""
    heading("what happened")
    for ok, what in checks:
        print(f"  [{'ok' if ok else 'NO'}] {what}")
    good = all(ok for ok, _ in checks)
    print("\nDEMO OK" if good else "\nDEMO FAILED: something above did not happen as expected")
    return 0 if good else 1
