"""The cgroup watchdog (vrangeemu/linux/cgroup_watchdog.py) on plain files.

cgroup v2 has no memory controller on our machines, so the v2 path is tested
here against a directory of the files the watchdog writes (memory.high,
memory.max), the way tests/test_pressure_sources.py fakes a cgroup; v1 runs
for real in tests/e2e/test_pressure.py (vrange-run SIGKILLed under
pressure).  The watchdog itself is a real process: its owner, standing in for
vrange-run, is a child the test kills.  A plain directory answers rmdir with
ENOTEMPTY while it has files, as a populated cgroup answers EBUSY: deleting
the files plays "the group's processes are gone"."""
import errno
import contextlib
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT
from helpers import spawned
from vrangeemu.linux import cgroup_watchdog
from vrangeemu.linux.cgroup import Cgroup
from vrangeemu.supervisor.pressure import CgroupSource, watermarks

MiB = 1 << 20
LIMIT = 64 * MiB
HIGH, _ = watermarks(LIMIT)
HARD = LIMIT + 16 * MiB

# vrange-run's part: start the watchdog, print its pid, on a line from stdin
# say "done", then linger.
OWNER = """if True:
    import sys, time
    from vrangeemu.linux import cgroup_watchdog
    dog = cgroup_watchdog.start(sys.argv[1], 2, int(sys.argv[2]))
    print(dog.pid, flush=True)
    sys.stdin.readline()
    dog.done()
    print("done", flush=True)
    time.sleep(60)
"""


def fake_v2(path, **files):
    path.mkdir()
    for name, text in {"memory.high": str(HIGH), "memory.max": str(HARD),
                       "memory.current": str(40 * MiB), "cgroup.procs": "4242\n",
                       **files}.items():
        (path / name).write_text(text)
    return path


def fake_v1(path):
    path.mkdir()
    for name, text in {"memory.limit_in_bytes": str(HARD), "memory.oom_control": "1",
                       "cgroup.procs": "4242\n"}.items():
        (path / name).write_text(text)
    return path


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def running(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith(name + ":"))


def kill_if_running(pid):
    if running(pid):
        os.kill(pid, signal.SIGKILL)


# --- the rules ---------------------------------------------------------------------

def test_v2_restore_sets_the_limit_and_lifts_the_throttle(tmp_path):
    group = fake_v2(tmp_path / "g")
    assert cgroup_watchdog.restore(str(group), 2, LIMIT)
    assert (group / "memory.max").read_text() == str(LIMIT)
    assert (group / "memory.high").read_text() == "max"


def test_v1_restore_turns_the_oom_killer_on_and_sets_the_limit(tmp_path):
    group = fake_v1(tmp_path / "g")
    assert cgroup_watchdog.restore(str(group), 1, LIMIT)
    assert (group / "memory.oom_control").read_text() == "0"
    assert (group / "memory.limit_in_bytes").read_text() == str(LIMIT)


def test_v1_limit_refused_with_ebusy_is_retried_until_the_group_goes(tmp_path, monkeypatch):
    group = fake_v1(tmp_path / "g")
    real_write = cgroup_watchdog._write
    busy = [True]

    def write(path, name, value):
        if name == "memory.limit_in_bytes" and busy[0]:
            raise OSError(errno.EBUSY, "usage above the limit")
        real_write(path, name, value)
    monkeypatch.setattr(cgroup_watchdog, "_write", write)
    assert not cgroup_watchdog.restore(str(group), 1, LIMIT)   # the OOM killer acts meanwhile
    assert (group / "memory.oom_control").read_text() == "0"
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            busy[0] = False            # usage fell below: the limit takes
        if len(sleeps) == 4:
            assert (group / "memory.limit_in_bytes").read_text() == str(LIMIT)
            for f in group.iterdir():   # the processes are gone
                f.unlink()
    assert cgroup_watchdog.remove_when_empty(str(group), 1, LIMIT, limit_set=False, sleep=sleep)
    assert not group.exists()
    assert sleeps == sorted(sleeps) and sleeps[-1] <= cgroup_watchdog.POLL_MAX


def test_restoring_a_group_that_is_gone_does_nothing(tmp_path):
    assert cgroup_watchdog.restore(str(tmp_path / "gone"), 2, LIMIT)
    assert cgroup_watchdog.remove_when_empty(str(tmp_path / "gone"), 2, LIMIT)


# --- the process -------------------------------------------------------------------

@contextlib.contextmanager
def owner_and_watchdog(group):
    """(the owner process, its watchdog's pid) for the fake `group`; the
    watchdog is killed at the end if it is still running."""
    dog = None
    try:
        with spawned([sys.executable, "-c", OWNER, group, LIMIT], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, cwd=ROOT) as owner:
            dog = int(owner.stdout.next())
            yield owner, dog
    finally:
        if dog:
            kill_if_running(dog)


def test_v2_group_is_restored_and_removed_when_its_owner_is_killed(tmp_path):
    group = fake_v2(tmp_path / "vrange-run-1")
    with owner_and_watchdog(group) as (owner, dog):
        # Out of the owner's session and process group (no Ctrl-C, no
        # hang-up reaches it), nothing of its output held.
        assert os.getsid(dog) == dog != os.getsid(owner.pid)
        assert {os.readlink(f"/proc/{dog}/fd/{fd}") for fd in (0, 1, 2)} == {os.devnull}
        ignored = 1 << signal.SIGINT - 1 | 1 << signal.SIGHUP - 1
        assert wait_until(lambda: int(status_field(dog, "SigIgn"), 16) & ignored == ignored)
        time.sleep(0.2)
        assert (group / "memory.max").read_text() == str(HARD)   # untouched while it lives
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        assert wait_until(lambda: (group / "memory.high").read_text() == "max"), \
            "the watchdog did not restore the group"
        assert (group / "memory.max").read_text() == str(LIMIT)
        time.sleep(0.2)
        assert running(dog) and group.exists()        # still "populated": it waits
        for f in group.iterdir():
            f.unlink()
        assert wait_until(lambda: not group.exists()), "the watchdog did not remove the group"
        assert wait_until(lambda: not running(dog)), "the watchdog did not exit"


def test_watchdog_told_done_exits_at_once_touching_nothing(tmp_path):
    group = fake_v2(tmp_path / "vrange-run-1")
    with owner_and_watchdog(group) as (owner, dog):
        owner.send("\n")
        owner.stdout.until("done")
        assert not running(dog)       # done() waited for it
    assert (group / "memory.max").read_text() == str(HARD)
    assert (group / "memory.high").read_text() == str(HIGH)
    assert (group / "cgroup.procs").exists()


# --- vrange-run's side -----------------------------------------------------------

class FakeDog:
    def __init__(self):
        self.told = []

    def done(self):
        self.told.append("done")

    def release(self):
        self.told.append("release")


def test_source_tells_the_watchdog_done_once_it_removed_the_group(tmp_path):
    path = fake_v2(tmp_path / "g")
    dog = FakeDog()
    src = CgroupSource(Cgroup(str(path), 2), LIMIT, owned=True, log=lambda m: None,
                       warn=lambda m: None, watchdog=dog)
    for f in path.iterdir():
        f.unlink()
    src.close()
    assert not path.exists() and dog.told == ["done"]


def test_source_hands_a_group_with_processes_left_to_the_watchdog(tmp_path, monkeypatch):
    path = fake_v2(tmp_path / "g")
    dog, warnings = FakeDog(), []
    src = CgroupSource(Cgroup(str(path), 2), LIMIT, owned=True, log=lambda m: None,
                       warn=warnings.append, watchdog=dog)
    monkeypatch.setattr(Cgroup, "remove", lambda self, timeout=2.0: False)
    src.close()
    assert dog.told == ["release"]
    assert (path / "memory.max").read_text() == str(LIMIT)      # the kernel's limit now
    assert (path / "memory.high").read_text() == "max"
    assert "still has processes" in warnings[0]
