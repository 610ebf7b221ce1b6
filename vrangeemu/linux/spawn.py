"""Starting the program: filtered, seized, and every failure made a clear error."""
import errno
import os
from typing import NamedTuple

from .._native import ffi, lib
from . import ptrace
from .errors import TaskGone

FAIL_STAGES = {1: "prctl(PR_SET_NO_NEW_PRIVS)", 2: "seccomp()", 3: "passing the listener fd",
               4: "exec", 5: "joining the memory cgroup"}


class SetupError(Exception):
    """The program could not be started under the supervisor.

    `status` is the exit status vrange-run should use (125, 126 or 127).
    """

    def __init__(self, message, status=125):
        super().__init__(message)
        self.status = status


class Interrupted(SetupError):
    """A signal vrange-run passes on (SIGINT & co) came before the program
    was started: it is not started; vrange-run exits 128+N, saying nothing."""

    def __init__(self, signo):
        super().__init__(f"interrupted by signal {signo}", 128 + signo)
        self.signo = signo


class Started(NamedTuple):
    pid: int
    listener: int   # user-notification fd, -1 when trapping with ptrace
    trap: str       # "notify" or "ptrace" (after any fallback)


def start(argv, nr, trap, log, cgroup_procs=None, env=None):
    """Fork, join the cgroup whose cgroup.procs file is given (if any),
    filter syscall `nr`, seize, exec `argv` (with the variables `env` added
    in notify mode: the in-process library); falls back to ptrace trapping
    if this kernel has no seccomp user notification.  Raises SetupError
    with the exit status vrange-run should use."""
    res = _spawn_once(argv, nr, trap, cgroup_procs, env if trap == "notify" else None)
    if res.fail_stage == 2 and trap == "notify" and res.fail_errno == errno.EINVAL:
        log("seccomp user notification unavailable: trapping with ptrace")
        trap = "ptrace"
        res = _spawn_once(argv, nr, trap, cgroup_procs)
    _check(res, argv, trap)
    if res.listener >= 0:
        log(f"trap: seccomp user notification{' with sync wake-up' if res.sync_wakeup else ''}, "
            f"syscall {nr}")
    else:
        log(f"trap: seccomp RET_TRACE + ptrace, syscall {nr}")
    return Started(res.pid, res.listener, trap)


def _spawn_once(argv, nr, trap, cgroup_procs, env=None):
    saved = {name: os.environ.get(name) for name in env or ()}
    os.environ.update(env or {})   # execvp() passes environ on
    try:
        return _spawn_with_environ(argv, nr, trap, cgroup_procs)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _spawn_with_environ(argv, nr, trap, cgroup_procs):
    res = ffi.new("struct vr_spawn_result *")
    keep = [ffi.new("char[]", os.fsencode(a)) for a in argv]
    c_argv = ffi.new("char *[]", keep + [ffi.NULL])
    action = lib.VR_TRAP_NOTIFY if trap == "notify" else lib.VR_TRAP_PTRACE
    options = ptrace.SEIZE_OPTIONS | ptrace.O_TRACESECCOMP   # the stub's batches end in one
    procs = ffi.new("char[]", os.fsencode(cgroup_procs)) if cgroup_procs else ffi.NULL
    rc = lib.vr_spawn(keep[0], c_argv, action, nr, procs, options, res)
    if rc < 0:
        raise SetupError(f"cannot start {argv[0]}: fork: {os.strerror(-rc)}")
    if res.fail_stage or not res.seized:
        _reap(res.pid)
        if res.listener >= 0:
            os.close(res.listener)
    return res


def _check(res, argv, trap):
    prog = argv[0]
    tracer = _tracer_of_self() if res.seize_errno == errno.EPERM else 0
    if tracer:   # and following forks, it took the child first
        raise SetupError(f"cannot trace the program: vrange-run is itself traced (by pid "
                         f"{tracer}: another vrange-run?), and its tracer took the program "
                         "first: nesting is not supported")
    if res.seize_errno:
        raise SetupError(
            f"ptrace is not permitted here ({os.strerror(res.seize_errno)}): vrange-run must "
            "trace the program. Run as the same user with ptrace allowed (check "
            "/proc/sys/kernel/yama/ptrace_scope and container seccomp/capabilities).")
    if res.fail_stage == 4:
        raise SetupError(*_exec_failure(prog, res.fail_errno))
    if res.fail_stage == 5:
        raise SetupError(f"cannot move the program into its memory cgroup: "
                         f"{os.strerror(res.fail_errno)}")
    if res.fail_stage == 2 and res.fail_errno == errno.EBUSY:
        # Only one filter with a listener per process: an outer one is there.
        raise SetupError("already running under a seccomp user-notification supervisor "
                         "(another vrange-run?): nesting is not supported")
    if res.fail_stage:
        what = FAIL_STAGES.get(res.fail_stage, "setup")
        raise SetupError(
            f"cannot install the seccomp filter: {what} failed: {os.strerror(res.fail_errno)}. "
            "vrange-run needs seccomp filters (CONFIG_SECCOMP_FILTER) and no policy that "
            "forbids them (container runtimes may); try --trap ptrace if only user "
            "notification is refused.")
    if trap == "notify" and res.listener < 0:
        raise SetupError("did not receive the seccomp listener fd from the child")


def _exec_failure(prog, err):
    """(message, exit status) for an exec of `prog` that failed with `err`,
    as a shell says it: 127 not found, 126 found but not runnable.  execvp
    searches PATH only for a name without a slash."""
    if "/" not in prog:
        if err in (errno.ENOENT, errno.ENOTDIR):
            return f"{prog}: command not found", 127
        return f"{prog}: {os.strerror(err)}", 126
    if err == errno.EACCES and os.path.isdir(prog):
        return f"{prog}: is a directory", 126
    if err == errno.ENOENT and os.path.exists(prog):   # #! names a missing interpreter
        return f"{prog}: bad interpreter: {_interpreter(prog)}: No such file or directory", 127
    if err in (errno.ENOENT, errno.ENOTDIR):
        return f"{prog}: {os.strerror(err)}", 127
    if err == errno.EACCES and os.path.isfile(prog) and not os.access(prog, os.X_OK):
        return f"{prog}: Permission denied (it is not executable: chmod +x it)", 126
    return f"{prog}: {os.strerror(err)}", 126


def _interpreter(prog):
    try:
        with open(prog, "rb") as f:
            line = f.readline(256)
    except OSError:
        line = b""
    words = line[2:].split() if line.startswith(b"#!") else []
    return os.fsdecode(words[0]) if words else "its interpreter"


def _tracer_of_self():
    """The pid tracing vrange-run itself, 0 if none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reap(pid):
    while True:
        try:
            _, status = os.waitpid(pid, ptrace.WALL)
        except ChildProcessError:
            return
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return
        try:
            ptrace.cont(pid)
        except TaskGone:
            pass
