"""vrange-run: run a program with the vrange() syscall emulated."""
import argparse
import contextlib
import os
import signal
import sys

from .abi import CLAIMED, NATIVE_NR, PROFILES

EXIT_USAGE = 2     # a mistake in the command line, as argparse and most tools use it
EXIT_SETUP = 125   # our own failure, as env(1) and timeout(1) use it
EXIT_INTERNAL = 70   # EX_SOFTWARE: VRANGEEMU_CHECK=1 found the supervisor inconsistent

# The signals the supervisor passes on to the program (supervisor/loop.py).
# Held from main()'s first line on: before the program runs, one arriving
# ends vrange-run with 128+N instead of a KeyboardInterrupt traceback.
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

EPILOG = f"""\
ABI profiles (--abi):
  native  syscall {NATIVE_NR} (assigned to nothing), {PROFILES['native'].signature};
          VOLATILE=1 NONVOLATILE=0, flags: 1 = PARTIAL purge. See native/include/vrange.h.
  v7      syscall 314, {PROFILES['v7'].signature}; returns 0/1 purged.
  v10     syscall 314, {PROFILES['v10'].signature}; returns bytes.
  v12     syscall 316, {PROFILES['v12'].signature}; NONVOLATILE=0 VOLATILE=1.

WARNING: v7 and v10 claim syscall 314 (sched_setattr) and v12 claims 316
(renameat2) for the traced program and everything it runs: while traced,
those real syscalls are answered as vrange (e.g. `mv` uses renameat2).

Purging: under memory pressure the oldest volatile ranges of all traced
processes go first (one LRU), until usage is back under a low watermark.
Pressure comes from (--pressure auto picks the first that applies):
  --memory-limit SIZE  a memory cgroup created for the program (v2, else v1),
                       purged from 90% of SIZE down to ~77%; a task that
                       reaches SIZE waits for the purge (v1); the kernel's OOM
                       killer enforces SIZE only once nothing volatile is left.
                       Without root: in a delegated cgroup v2 subtree, e.g.
                       systemd-run --user --scope -p Delegate=yes vrange-run ...
  budget               where no cgroup can be made: the summed RSS of the
                       traced processes against SIZE, best effort (said at
                       the start): their vrange calls wait for a purge once
                       it reaches the high mark; memory allocated without a
                       vrange call can go past SIZE until the next reading.
  cgroup               vrange-run's own memory cgroup, if it has a limit.
  psi                  /proc/pressure/memory: memory stalls grow -> purge.
`kill -USR1 <vrange-run pid>` discards every volatile page now.  Only
resident pages are discarded; a page shared copy-on-write after fork only if
every process mapping it has it volatile (then from all of them).  The next
NONVOLATILE call on them answers purged.  Outside vrange-run the syscall
fails with ENOSYS.

Exit status: the program's own; 128+N if it was killed by signal N;
66 if --check-access found an access to volatile memory;
127 if it was not found, 126 if it could not be executed; 2 for a mistake
in the command line; 125 if vrange-run itself failed (ptrace or seccomp not
permitted, an output file refused).
SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to vrange-run go to the program;
one that comes before the program started ends vrange-run with 128+N.
"""


def _probability(text):
    try:
        p = float(text)
    except ValueError:
        p = -1.0
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: not a probability between 0 and 1")
    return p


def _calls(text):
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text}: not a number of calls (0 or more)")
    return n


def _size(text):
    from .supervisor.pressure import parse_size
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))
    if size < 1 << 20:
        raise argparse.ArgumentTypeError(f"{text}: too small (at least 1M)")
    return size


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line naming it (not argparse's usage block
    first), a pointer to --help, and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n"
                              f"Try '{self.prog} --help' for more information.\n")


def parse_args(argv):
    from .model.policy import POLICIES
    from .version import VersionAction
    parser = _Parser(
        prog="vrange-run", allow_abbrev=False,
        description="Run PROGRAM with the vrange() volatile-range syscall emulated: its "
                    "calls are trapped with seccomp and answered with the semantics of the "
                    "2013-2014 kernel patches; every other syscall goes to the kernel "
                    "untrapped.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--abi", choices=sorted(PROFILES), default="native",
                        help="which vrange ABI the program was built for (default: native)")
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--syscall-nr", type=int, metavar="N",
                        help="trap syscall number N instead of the profile's; a number "
                             "Linux assigns to a real call (e.g. 1, write) is refused "
                             "unless --force-syscall-nr is given")
    parser.add_argument("--force-syscall-nr", action="store_true",
                        help="let --syscall-nr N take over a real syscall: every call of "
                             "it by the traced program is answered as vrange instead")
    parser.add_argument("--trap", choices=("notify", "ptrace"), default="notify",
                        help="how calls are trapped: seccomp user notification (default, "
                             "about 9 us a call) or RET_TRACE + ptrace stop (about 80 us a "
                             "call; for kernels before 5.0)")
    parser.add_argument("--inproc", choices=("on", "off"), default="on",
                        help="answer calls made through libc's syscall() inside the program, "
                             "by a library vrange-run preloads (default on, about 0.7 us a "
                             "call); calls it cannot answer alone, inline syscall "
                             "instructions, static or setuid programs, and --trap ptrace "
                             "use the trap")
    parser.add_argument("--memory-limit", metavar="SIZE", type=_size,
                        help="run the program in a memory cgroup of SIZE (e.g. 64M, 2G) and "
                             "purge volatile memory to stay under it (where no cgroup can be "
                             "made: a best-effort budget on its RSS)")
    parser.add_argument("--pressure", choices=("auto", "cgroup", "psi", "budget", "none"),
                        default="auto",
                        help="where memory pressure is read from (default: auto; see below)")
    parser.add_argument("--purged-access", choices=("sigbus", "zero"), default="sigbus",
                        help="touching a purged page while its range is still volatile: "
                             "SIGBUS, as the kernel patches did (default; a syscall gets "
                             "EFAULT), or read zeros like MADV_DONTNEED")
    parser.add_argument("--fork-volatility", choices=("inherit", "clear"), default="inherit",
                        help="a fork child inherits its parent's volatile ranges (default, as "
                             "the v10 patches) or starts with none")
    parser.add_argument("--stats", action="store_true",
                        help="print per-process counts (calls, bytes made volatile, bytes "
                             "purged, purges: one per purge event of --trace) on stderr at exit")
    parser.add_argument("--stats-json", metavar="FILE",
                        help="write the same counts (and runs_discarded: the madvise runs of "
                             "those purges) and the pressure readings as JSON to FILE")
    check = parser.add_argument_group(
        "testing allocators", "Make bugs of vrange users show up at once, like a sanitizer. "
        "These options stop each vrange call in ptrace (--trap ptrace, 125-245 us a call).")
    check.add_argument("--purge-policy", choices=POLICIES, default="pressure",
                       help="when volatile ranges are discarded: under memory pressure "
                            "(default); always, the moment they become volatile; or random, "
                            "each with probability --purge-probability after a random delay of "
                            "0..--purge-delay of the process's later vrange calls")
    check.add_argument("--purge-probability", type=_probability, default=0.5, metavar="P",
                       help="for --purge-policy random (default 0.5)")
    check.add_argument("--purge-delay", type=_calls, default=4, metavar="CALLS",
                       help="for --purge-policy random: at most this many later calls (default 4)")
    check.add_argument("--seed", type=int, metavar="N",
                       help="seed for --purge-policy random (default: a random one; it is "
                            "printed, so any run can be repeated)")
    check.add_argument("--check-access", choices=("off", "report", "abort"), default="off",
                       help="make volatile ranges PROT_NONE and catch every access to them "
                            "(purged or not): report it (process, thread, address, ip, range, "
                            "when marked) and re-pin that page so the program goes on, or "
                            "abort the program.  Exit status 66 if any was found")
    parser.add_argument("--trace", metavar="FILE",
                        help="write every call, purge, fork/exec/exit, pressure reading, "
                             "SIGBUS and a per-process sample (RSS, volatile, purged; every "
                             "100 ms) to FILE as JSON lines (docs/trace.md); plot it with "
                             "vrange-report")
    parser.add_argument("--live", action="store_true",
                        help="draw a live view on stderr while PROGRAM runs (4 times a "
                             "second): per traced process its pid, program, threads, "
                             "anonymous RSS, volatile and purged bytes, ranges, calls and "
                             "purges; a strip of its volatile address span (volatile / "
                             "purged / not volatile); and the memory pressure (usage against "
                             "the high/low marks and the limit, or PSI stall time).  "
                             "PROGRAM's stdout is untouched, but what it writes to the same "
                             "terminal is overwritten by the redraws: send that elsewhere.  "
                             "If stderr is not a terminal (a file or a pipe), a plain text "
                             "frame is printed at most once a second instead, without cursor "
                             "movement")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say what the supervisor does (trap method, forks, execs, purges)")
    program = parser.add_argument("program", help="the program to run (searched in PATH)")
    rest = parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    # Checked below, to name the one thing missing (argparse lists both).
    program.required = rest.required = False
    opts = parser.parse_args(argv)
    if opts.program is None:
        parser.error("no PROGRAM given: name the program to run after the options "
                     "(vrange-run [OPTIONS] PROGRAM [ARGS...])")
    if opts.syscall_nr is not None:
        _check_syscall_nr(parser, opts)
    return opts


def _check_syscall_nr(parser, opts):
    from .linux.stub import DONE_NR as STUB_DONE_NR
    from .syscall_names import name_of
    nr = opts.syscall_nr
    if not 0 <= nr < 1 << 30:
        parser.error(f"--syscall-nr {nr}: must be between 0 and 2^30-1")
    if nr == STUB_DONE_NR:
        parser.error(f"--syscall-nr {nr}: vrange-run uses that number itself (its purges' "
                     f"end-of-batch call); pick another (e.g. {NATIVE_NR})")
    real = name_of(nr)
    # The profile's own number is claimed already (see --help); not a surprise.
    if real and nr != PROFILES[opts.abi].nr and not opts.force_syscall_nr:
        parser.error(f"--syscall-nr {nr} is {real}(): every {real}() call of the program "
                     f"would be answered as vrange. Pick a number no kernel assigns "
                     f"(e.g. {NATIVE_NR}), or add --force-syscall-nr to take {real}() over")


def main(argv=None):
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)   # first: see HELD_SIGNALS
    # A purge request before the supervisor reads its signals waits for it
    # (there is nothing to purge yet): SIGUSR1's default would end
    # vrange-run, e.g. while python-ptrace's import runs ldconfig -p.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    import platform

    from .linux.output import OutputRefused, open_output

    if opts.live:
        try:
            import rich  # noqa: F401  (the live view imports it only where used)
            from .observe.live import LiveView  # noqa: F401  (checked here, used in _run)
        except ImportError as exc:
            print(f"vrange-run: --live needs the rich package (pip install 'rich>=12'): {exc}",
                  file=sys.stderr)
            return EXIT_SETUP
    if platform.machine() != "x86_64":
        print(f"vrange-run: only x86_64 is supported, not {platform.machine()}", file=sys.stderr)
        return EXIT_SETUP
    # Opened now, before the program can touch their paths (linux/output.py).
    outputs = {}
    try:
        for option, path, buffering in (("--trace", opts.trace, 1 << 16),
                                        ("--stats-json", opts.stats_json, -1)):
            if path:
                outputs[option] = open_output(path, buffering)
        return _run(opts, outputs.get("--trace"), outputs.get("--stats-json"))
    except OutputRefused as exc:
        print(f"vrange-run: {option} {exc}", file=sys.stderr)
        return EXIT_SETUP
    finally:
        for out in outputs.values():
            with contextlib.suppress(OSError):   # written and flushed already, or reported
                out.close()


def _run(opts, trace_file, stats_file):
    """Set up, run the program, report; returns vrange-run's exit status."""
    # Imported late: --help must work even where the native part is missing.
    from .model.policy import PurgePolicy
    from .supervisor import Interrupted, SetupError, Supervisor, log_to_stderr
    from .supervisor.checks import EXIT_VIOLATION
    from .supervisor.pressure import SetupProblem, choose_source
    from .observe.events import End, EventBus
    from .observe.stats import StatsCollector, print_stats, write_json
    from .observe.trace import TraceWriter

    profile = PROFILES[opts.abi]
    if opts.syscall_nr is not None:
        profile = profile.with_nr(opts.syscall_nr)
    if profile.nr in CLAIMED and opts.verbose:
        log_to_stderr(f"--abi {profile.name}: syscall {profile.nr} ({CLAIMED[profile.nr]}) "
                      "is vrange for this program")
    os.environ["VRANGE_SYSCALL_NR"] = str(profile.nr)
    os.environ["VRANGE_ABI"] = profile.name
    os.environ["VRANGE_SUPERVISOR_PID"] = str(os.getpid())   # for `kill -USR1`
    log = log_to_stderr if opts.verbose else None
    seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "little")
    policy = PurgePolicy(opts.purge_policy, seed, opts.purge_probability, opts.purge_delay)
    trap = opts.trap
    if policy.forced or opts.check_access != "off":
        trap = "ptrace"   # purge or protect at the call's own stop
        if opts.purge_policy == "random":
            log_to_stderr(f"purge policy random, seed {seed} (repeat with --seed {seed})")
    bus = EventBus()
    collector = StatsCollector(bus)
    sup = Supervisor([opts.program, *opts.args], profile, trap, log=log,
                     purged_access=opts.purged_access, fork_volatility=opts.fork_volatility,
                     policy=policy, check_access=opts.check_access, bus=bus,
                     inproc=opts.inproc == "on" and os.environ.get("VRANGEEMU_INPROC", "1") != "0")
    try:
        source, procs = choose_source(opts.pressure, opts.memory_limit, sup.tasks,
                                      log or _quiet, log_to_stderr)
    except (SetupProblem, OSError) as exc:
        print(f"vrange-run: {exc}", file=sys.stderr)
        return EXIT_SETUP
    sup.use_pressure(source, procs)
    if opts.verbose:
        log_to_stderr(f"pressure: {source.name if source else 'none (SIGUSR1 only)'}")
    # The live view subscribes before the trace writer: the end line's time
    # is then taken after the last frame, as the events happened.
    if opts.live:
        from .observe.live import LiveView
        sup.live = LiveView(sys.stderr, sup.state, bus)
    writer = None
    if trace_file:
        writer = TraceWriter(trace_file)
        writer.attach(bus)
    stop = None
    try:
        stop = sup.run()
    except Interrupted as exc:   # before the program started: as Ctrl-C, silently
        return exc.status
    except SetupError as exc:
        print(f"vrange-run: {exc}", file=sys.stderr)
        return exc.status
    finally:
        bus.emit(End(how=stop.kind if stop else None, value=stop.value if stop else None))
        if sup.live:    # first: gives the terminal back before anything else is printed
            sup.live.close()
        if writer:
            writer.close()
        sup.checker.summary(sys.stderr)
        if opts.stats:
            print_stats(collector, sup.state, sys.stderr)
        if stats_file:
            try:
                write_json(collector, sup.state, stats_file)
                stats_file.flush()
            except OSError as exc:
                print(f"vrange-run: --stats-json: {exc}", file=sys.stderr)
    if sup.invariant_failed:
        print("vrange-run: a supervisor invariant was broken (VRANGEEMU_CHECK=1): see above",
              file=sys.stderr)
        return EXIT_INTERNAL
    if sup.checker.violations:
        return EXIT_VIOLATION
    if stop is None:
        return EXIT_SETUP
    return stop.value if stop.kind == "exited" else 128 + stop.value


def _quiet(msg):
    pass


if __name__ == "__main__":
    sys.exit(main())
