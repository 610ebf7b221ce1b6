"""The benchmark's floors (native/floor/): empty C supervisors that answer
every trapped call with 0.  Checked here so that a floor which silently
stopped answering cannot pass for a fast one in docs/benchmarks.md."""
import signal
import subprocess

import pytest

from conftest import NATIVE
from vrangeemu import cbuild

NR = 1000
FLOORS = ("floor_notify", "floor_ptrace")

# Calls NR (trapped) and NR + 1 (not trapped), prints both results, then
# exits with argv[1] or dies of signal argv[2] if given.
CALLER = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long trapped = syscall(%d, 1, 2, 3, 4, 5, 6);
    int trapped_errno = trapped < 0 ? errno : 0;
    long other = syscall(%d, 0, 0, 0, 0, 0, 0);
    printf("trapped=%%ld errno=%%d other=%%ld errno=%%d\n", trapped, trapped_errno, other,
           other < 0 ? errno : 0);
    fflush(stdout);
    if (argc > 2)
        raise(atoi(argv[2]));
    return atoi(argv[1]);
}
""" % (NR, NR + 1)


@pytest.fixture(scope="module")
def exes(tmp_path_factory):
    out = tmp_path_factory.mktemp("floor")
    (out / "caller.c").write_text(CALLER)
    sources = {name: NATIVE / "floor" / f"{name}.c" for name in FLOORS}
    sources["caller"] = out / "caller.c"
    return {name: cbuild.build(source, out / name, ("-O2", "-Wall", "-Wextra", "-Werror"),
                               include=False)
            for name, source in sources.items()}


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_without_a_supervisor_the_call_fails_with_enosys(exes):
    proc = run([exes["caller"], "0"])
    assert proc.stdout == "trapped=-1 errno=38 other=-1 errno=38\n"


@pytest.mark.parametrize("floor", FLOORS)
def test_floor_answers_the_trapped_call_with_0_and_only_that_one(exes, floor):
    proc = run([exes[floor], str(NR), exes["caller"], "0"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "trapped=0 errno=0 other=-1 errno=38\n"


@pytest.mark.parametrize("floor", FLOORS)
def test_floor_passes_the_exit_status_through(exes, floor):
    proc = run([exes[floor], str(NR), exes["caller"], "42"])
    assert proc.returncode == 42 and proc.stdout.startswith("trapped=0 ")


@pytest.mark.parametrize("floor", FLOORS)
def test_floor_gives_128_plus_the_signal_that_killed_the_program(exes, floor):
    proc = run([exes[floor], str(NR), exes["caller"], "0", str(int(signal.SIGTERM))])
    assert proc.returncode == 128 + signal.SIGTERM and proc.stdout.startswith("trapped=0 ")


@pytest.mark.parametrize("floor", FLOORS)
def test_floor_still_answers_after_an_exec(exes, floor):
    # The shell execs the caller: the filter (and for ptrace the tracer)
    # stays, so the call after the exec is answered too.
    proc = run([exes[floor], str(NR), "sh", "-c", f'exec "{exes["caller"]}" 7'])
    assert proc.returncode == 7 and proc.stdout.startswith("trapped=0 ")


@pytest.mark.parametrize("floor", FLOORS)
def test_floor_reports_a_missing_program_with_127(exes, floor):
    proc = run([exes[floor], str(NR), "/no/such/program"])
    assert proc.returncode == 127 and "/no/such/program" in proc.stderr
