"""Shared helpers: build the C test programs, run them under vrange-run."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vrangeemu import cbuild

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "native"
VRANGE_RUN = [sys.executable, "-m", "vrangeemu"]
VRANGE_REPORT = [sys.executable, "-m", "vrangeemu.report"]
ABIS = ("native", "v7", "v10", "v12")


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """build(name, abi="native") -> path of native/progs/NAME.c compiled for that ABI."""
    out = tmp_path_factory.mktemp("progs")
    built = {}

    def _build(name, abi="native"):
        if (name, abi) not in built:
            built[name, abi] = cbuild.build(NATIVE / "progs" / f"{name}.c", out / f"{name}_{abi}",
                                            ("-O2", "-Wall", "-Werror", "-pthread"), abi=abi,
                                            root=ROOT)
        return built[name, abi]
    return _build


def vrange_run(*args, input=None, timeout=120, **kw):
    """Run `vrange-run ARGS...`; returns the CompletedProcess (text mode)."""
    return subprocess.run([*VRANGE_RUN, *map(str, args)], input=input, capture_output=True,
                          text=True, timeout=timeout, **kw)


class Script:
    """Runs native/progs/vrange_script.c under vrange-run and parses its answers."""

    def __init__(self, build, abi="native", options=()):
        self.abi = abi
        self.exe = build("vrange_script", abi)
        self.options = list(options)

    def run(self, text, traced=True):
        argv = [*VRANGE_RUN, "--abi", self.abi, *self.options, self.exe] if traced else [self.exe]
        proc = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        return Output(proc.stdout)


class Output:
    def __init__(self, text):
        self.text = text
        self.calls = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(-?\d+)", line))
                      for line in text.splitlines() if line.startswith("ret=")]
        self.checks = {m[0]: dict(good=int(m[1]), zero=int(m[2]), bad=int(m[3]))
                       for m in re.findall(r"check (\w) good=(\d+) zero=(\d+) bad=(\d+)", text)}
        self.checks_list = [dict(good=int(m[1]), zero=int(m[2]), bad=int(m[3]))
                            for m in re.findall(r"check (\w) good=(\d+) zero=(\d+) bad=(\d+)", text)]
        self.rss = [int(v) for v in re.findall(r"^rss (\d+)", text, re.M)]


@pytest.fixture
def script(build):
    """script(abi="native", *options) -> Script."""
    return lambda abi="native", *options: Script(build, abi, options)
