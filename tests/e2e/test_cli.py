"""vrange-run as a Unix wrapper: exit statuses, signals, errors, help, clients."""
import configparser
import os
import re
import signal
import subprocess
import sys
import sysconfig

import pytest

from conftest import ROOT, VRANGE_REPORT, VRANGE_RUN, vrange_run
from helpers import help_options, help_sections, paragraphs, spawned
from vrangeemu.abi import PROFILES


def test_exit_status_is_the_programs():
    assert vrange_run("sh", "-c", "exit 42").returncode == 42


def test_killed_program_gives_128_plus_signal():
    proc = vrange_run("sh", "-c", "kill -SEGV $$")
    assert proc.returncode == 128 + signal.SIGSEGV


def test_program_not_found_is_127_with_a_one_line_error():
    proc = vrange_run("no-such-program-xyz")
    assert proc.returncode == 127
    assert proc.stderr == "vrange-run: no-such-program-xyz: command not found\n"


def test_program_not_executable_is_126(tmp_path):
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    proc = vrange_run(script)
    assert proc.returncode == 126
    assert proc.stderr.startswith(f"vrange-run: {script}: Permission denied")
    assert proc.stderr.count("\n") == 1, proc.stderr


# A path is not searched in PATH: the error is the shell's for that path.
@pytest.mark.parametrize("make, status, error", [
    (lambda tmp: tmp / "no" / "such-prog", 127, "No such file or directory"),
    (lambda tmp: tmp, 126, "is a directory"),
    (lambda tmp: _script(tmp / "bad-interp", "#!/no/such/interpreter\n"), 127,
     "bad interpreter: /no/such/interpreter: No such file or directory"),
])
def test_exec_error_of_a_path_names_its_cause(tmp_path, make, status, error):
    path = make(tmp_path)
    proc = vrange_run(path)
    assert (proc.returncode, proc.stderr) == (status, f"vrange-run: {path}: {error}\n")


def _script(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return path


def _usage_error(proc):
    """The one line of a usage error (exit 2, then a pointer to --help)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("vrange-run: "), proc.stderr
    assert lines[1] == "Try 'vrange-run --help' for more information."
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--abi", "v99", "true"], "invalid choice: 'v99'"),
    (["--syscall-nr", "-5", "true"], "--syscall-nr -5"),
    (["--memory-limit", "10k", "true"], "too small"),
])
def test_bad_options_are_one_line_and_exit_2(args, message):
    assert message in _usage_error(vrange_run(*args))


@pytest.mark.parametrize("args", [[], ["--stats", "-v"]])
def test_missing_program_is_named(args):
    cause = _usage_error(vrange_run(*args)).partition("(")[0]   # before the synopsis
    assert "PROGRAM" in cause and "args" not in cause.lower(), cause   # ARGS are optional


def test_version_of_both_commands():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    want = cfg.get("metadata", "version")
    for name, argv in (("vrange-run", VRANGE_RUN), ("vrange-report", VRANGE_REPORT)):
        proc = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{name} {want}\n", "")


@pytest.mark.parametrize("nr, real", [(1, "write"), (314, "sched_setattr"), (469, "file_setattr")])
def test_syscall_nr_of_a_real_syscall_is_refused(nr, real):
    line = _usage_error(vrange_run("--syscall-nr", nr, "sh", "-c", "echo ran"))
    assert f"{real}()" in line and "--force-syscall-nr" in line


def test_syscall_nr_of_the_stubs_own_call_is_refused():
    # 0xaffe ends each batch of the purge stub (linux/stub.py): the filter
    # gives it to the tracer, so it cannot be vrange too, forced or not.
    from vrangeemu.linux.stub import DONE_NR
    for extra in ((), ("--force-syscall-nr",)):
        line = _usage_error(vrange_run("--syscall-nr", DONE_NR, *extra, "sh", "-c", "echo ran"))
        assert "vrange-run uses that number itself" in line


def test_force_syscall_nr_takes_a_real_syscall_over():
    # getppid (110) answered as vrange: a zero length is EINVAL there.
    code = "import ctypes; print(ctypes.CDLL(None).syscall(110, 0, 0, 1, 0, 0))"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    forced = vrange_run("--syscall-nr", 110, "--force-syscall-nr", sys.executable, "-c", code)
    assert forced.returncode == 0, forced.stderr
    assert int(plain.stdout) > 0 and forced.stdout == "-1\n"


@pytest.mark.parametrize("args", [["--syscall-nr", 400], ["--abi", "v12", "--syscall-nr", 316]])
def test_unassigned_or_the_profiles_own_number_is_accepted(args):
    proc = vrange_run(*args, "sh", "-c", "echo ran")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ran\n", "")


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_nesting_is_refused_naming_the_cause(trap):
    proc = vrange_run(*VRANGE_RUN, "--trap", trap, "sh", "-c", "echo ran")
    assert proc.returncode == 125 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith("vrange-run: ") and proc.stderr.count("\n") == 1
    assert "nesting is not supported" in proc.stderr
    if trap == "notify":
        assert ("already running under a seccomp user-notification supervisor "
                "(another vrange-run?)") in proc.stderr
    assert "CONFIG_SECCOMP_FILTER" not in proc.stderr


def test_options_after_the_program_belong_to_it():
    proc = vrange_run("sh", "-c", 'echo "$@"', "sh", "--stats", "-v")
    assert proc.returncode == 0 and proc.stdout == "--stats -v\n" and proc.stderr == ""


# What --help must tell, checked as structure and facts, not sentences.
OPTIONS = ("-h", "--help", "--version", "--abi", "--syscall-nr", "--force-syscall-nr", "--trap",
           "--memory-limit", "--pressure", "--purged-access", "--fork-volatility", "--stats",
           "--stats-json", "--trace", "--live", "-v", "--verbose")
CHECK_OPTIONS = ("--purge-policy", "--purge-probability", "--purge-delay", "--seed",
                 "--check-access")
EXIT_STATUSES = ("128+N", "66", "2", "125", "126", "127")


def test_help_explains_abis_claimed_numbers_and_exit_codes():
    proc = vrange_run("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    text = proc.stdout
    assert text.startswith("usage: vrange-run ")
    sections, options = help_sections(text), help_options(text)
    assert any({"program", "args"} <= set(listed) for listed in sections.values()), sections
    missing = [o for o in OPTIONS + CHECK_OPTIONS if o not in options]
    assert not missing, f"--help lacks {missing}"
    assert all(options[o] for o in OPTIONS + CHECK_OPTIONS), "an option without a description"
    # The allocator-testing options are a group of their own.
    (group,) = [listed for listed in sections.values() if "--purge-policy" in listed]
    assert set(CHECK_OPTIONS) <= set(group) and "--abi" not in group
    # A table of the ABI profiles, each with its syscall number.
    (table,) = [listed for listed in sections.values() if set(PROFILES) <= set(listed)]
    for name, profile in PROFILES.items():
        assert re.search(rf"(?<!\d){profile.nr}(?!\d)", table[name]), (name, table[name])
    # The real syscalls those numbers claim are named with them, and how to purge.
    paras = paragraphs(text)
    for nr, real in (("314", "sched_setattr"), ("316", "renameat2")):
        assert any(nr in p and real in p for p in paras), f"no paragraph names {nr} as {real}"
    assert "kill -USR1" in " ".join(paras), "--help does not tell how to purge"
    # Every exit status of its own, in one place.
    assert any(all(re.search(rf"(?<![\w+]){re.escape(code)}(?![\w+])", p) for code in EXIT_STATUSES)
               for p in paras), f"no paragraph gives all of the exit statuses {EXIT_STATUSES}"


def test_console_script_is_installed():
    # The one installed with this Python (a venv need not be active), not
    # another found on PATH.
    exe = os.path.join(sysconfig.get_path("scripts"), "vrange-run")
    proc = subprocess.run([exe, "sh", "-c", "exit 3"], timeout=60)
    assert proc.returncode == 3


# The program says when it runs.  (vrange-run's having a child is no sign:
# its own start-up runs one, ldconfig, from python-ptrace's import.)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_sent_to_vrange_run_reach_the_program(sig):
    with spawned([*VRANGE_RUN, "sh", "-c", "echo running; exec sleep 30"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        child.stdout.until("running")
        os.kill(child.pid, sig)
        assert child.wait() == 128 + sig
        assert child.stderr.rest() == ""


def test_signal_the_program_ignores_does_not_stop_the_supervisor():
    with spawned([*VRANGE_RUN, "sh", "-c", "trap '' TERM; echo ignoring; sleep 0.5; exit 5"],
                 stdout=subprocess.PIPE) as child:
        child.stdout.until("ignoring")
        os.kill(child.pid, signal.SIGTERM)
        assert child.wait() == 5


def test_python_client_outside_vrange_run_explains():
    proc = subprocess.run([sys.executable, "-c",
                           "from vrangeemu.client import VolatileBuffer\n"
                           "VolatileBuffer(4096).mark_volatile()"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "VrangeUnavailable" in proc.stderr and "run this program under vrange-run" in proc.stderr


def test_python_client_under_vrange_run():
    code = ("import os, signal\n"
            "from vrangeemu.client import VolatileBuffer, vrange, NONVOLATILE\n"
            "b = VolatileBuffer(1 << 20)\n"
            "b.map[:] = b'x' * len(b.map)\n"
            "print(b.mark_volatile(0, 1 << 19), b.mark_nonvolatile(0, 1 << 19))\n"
            "b.mark_volatile()\n"
            "os.kill(int(os.environ['VRANGE_SUPERVISOR_PID']), signal.SIGUSR1)\n"
            "vrange(b.address, 4096, NONVOLATILE, 0)\n"
            "print(b.mark_nonvolatile(), b.map[:8], b.map[-8:])\n")
    proc = vrange_run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["524288 False",
                                        "True b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' "
                                        "b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'"]


def test_bundled_demo_runs_and_reports():
    proc = vrange_run("--stats", sys.executable, "-m", "vrangeemu.demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 of 12 answered 'purged' and were rebuilt" in proc.stdout
    assert "hot chunks intact: 4/4" in proc.stdout
    assert "48.0 MiB" in proc.stderr   # --stats: bytes marked and purged


SYS_PTRACE, SYS_SECCOMP = 101, 317


@pytest.mark.parametrize("nr, message", [
    (SYS_PTRACE, "vrange-run: ptrace is not permitted here (Operation not permitted)"),
    (SYS_SECCOMP, "vrange-run: cannot install the seccomp filter: seccomp() failed: "
                  "Operation not permitted"),
])
def test_refused_ptrace_or_seccomp_is_a_clear_125(build, nr, message):
    proc = subprocess.run([build("deny_syscall"), str(nr), *VRANGE_RUN, "sh", "-c", "exit 0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125
    assert proc.stderr.startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr


def test_program_arguments_that_look_like_our_options_are_the_programs():
    # A prefix of several options (--purge) or an exact one (--stats) after
    # the program name belongs to the program, never to vrange-run.
    proc = vrange_run("sh", "-c", 'echo "$@"', "sh", "--purge", "--stats", "-v")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "--purge --stats -v\n" and proc.stderr == ""


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
def test_a_program_making_the_stubs_own_call_gets_enosys_and_goes_on(trap):
    # The filter hands 0xaffe to the tracer (the stub's end-of-batch call);
    # made by the program itself it fails as an unknown syscall would.
    from vrangeemu.linux.stub import DONE_NR
    code = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
            f"r = libc.syscall({DONE_NR}, 1, 2, 3); print(r, ctypes.get_errno(), flush=True)")
    proc = vrange_run("--trap", trap, sys.executable, "-c", code)
    assert (proc.returncode, proc.stdout) == (0, "-1 38\n"), proc.stderr
