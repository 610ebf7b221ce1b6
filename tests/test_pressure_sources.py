"""Pressure sources against the files they read and write.

cgroup v2 has no memory controller on our machines, so the v2 path is tested
here against a directory of the files it uses (memory.current, memory.high,
memory.max); v1 runs for real in tests/e2e/test_pressure.py and is also
checked here for the paused-at-the-limit relief, which is hard to reach on
purpose in a real run."""
import errno
import os

import pytest

from vrangeemu.linux import cgroup as cg
from vrangeemu.linux.cgroup import UNLIMITED, Cgroup
from vrangeemu.supervisor.pressure import (BudgetSource, CgroupSource, PsiSource,
                                           budget_warning, watermarks)

MiB = 1 << 20
LIMIT = 64 * MiB
HIGH, LOW = watermarks(LIMIT)


def fake_cgroup(tmp_path, version, **files):
    defaults = ({"memory.current": "0", "memory.high": "max", "memory.max": "max"}
                if version == 2 else
                {"memory.usage_in_bytes": "0", "memory.limit_in_bytes": str(UNLIMITED),
                 "memory.soft_limit_in_bytes": str(UNLIMITED), "cgroup.event_control": "",
                 "memory.pressure_level": "",
                 "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"})
    for name, text in {**defaults, **files}.items():
        (tmp_path / name).write_text(text)
    return Cgroup(str(tmp_path), version)


def usage_file(version):
    return "memory.current" if version == 2 else "memory.usage_in_bytes"


def read(tmp_path, name):
    return (tmp_path / name).read_text()


def set_usage(tmp_path, version, value, source):
    (tmp_path / usage_file(version)).write_text(str(value))
    source.cgroup.close()      # the usage fd is kept open: reopen for the new file


def test_v2_owned_cgroup_is_held_at_size_just_below_its_backstop_then_enforced(tmp_path):
    """No v2 memory controller here: the files a kernel would have, as plain files."""
    src = CgroupSource(fake_cgroup(tmp_path, 2, **{"memory.events": "low 0\nhigh 0\nmax 0\n"}),
                       LIMIT, owned=True, log=lambda m: None, warn=lambda m: None)
    assert read(tmp_path, "memory.high") == str(LIMIT)   # tasks wait at SIZE itself
    assert LIMIT < int(read(tmp_path, "memory.max")) <= LIMIT + max(LIMIT // 16, 2 * MiB)
    assert src.fds == []                                  # v2 is polled
    set_usage(tmp_path, 2, HIGH - 1, src)
    assert src.need() == 0
    set_usage(tmp_path, 2, HIGH + MiB, src)
    assert src.need() == HIGH + MiB - LOW
    # A task throttled at memory.high since the last poll: purge, even if
    # usage reads below the high mark by now.
    set_usage(tmp_path, 2, HIGH - MiB, src)
    (tmp_path / "memory.events").write_text("low 0\nhigh 3\nmax 0\n")
    assert src.need() == HIGH - MiB - LOW
    assert src.need() == 0                                # counted once
    src.exhausted()
    assert read(tmp_path, "memory.high") == "max" and read(tmp_path, "memory.max") == str(LIMIT)
    set_usage(tmp_path, 2, LOW, src)                      # room again: back to purging
    assert src.need() == 0 and read(tmp_path, "memory.high") == str(LIMIT)


def test_v2_limits_read_max_as_unlimited(tmp_path):
    group = fake_cgroup(tmp_path, 2, **{"memory.high": "max", "memory.max": "1073741824"})
    assert group.limits() == (UNLIMITED, 1 << 30)


def test_v1_owned_cgroup_holds_size_with_the_oom_killer_off_and_relieves_paused_tasks(
        tmp_path, monkeypatch):
    writes = []
    real_write = Cgroup.write

    def logged(self, name, value):
        writes.append((name, str(value)))
        real_write(self, name, value)
    monkeypatch.setattr(Cgroup, "write", logged)
    src = CgroupSource(fake_cgroup(tmp_path, 1), LIMIT, owned=True, log=lambda m: None,
                       warn=lambda m: None)
    hard = int(read(tmp_path, "memory.limit_in_bytes"))
    # Direct reclaim: tasks pause at SIZE itself until a purge makes room.
    assert hard == LIMIT and read(tmp_path, "memory.oom_control") == "1"
    usage_event, oom_event, level_event = [v.split() for n, v in writes
                                           if n == "cgroup.event_control"]
    assert len(usage_event) == 3 and usage_event[2] == str(HIGH)   # "<efd> <usage fd> <high>"
    assert len(oom_event) == 2                                      # "<efd> <oom_control fd>"
    assert level_event[2] == "low"                                  # first reclaim
    assert len(src.fds) == 3
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 1\nunder_oom 1\n")
    set_usage(tmp_path, 1, hard, src)
    assert src.need() == hard - LOW
    assert int(read(tmp_path, "memory.limit_in_bytes")) == hard    # the purge comes first
    src.still_paused()   # it could not reach them: room for a moment
    assert int(read(tmp_path, "memory.limit_in_bytes")) > hard     # raised: tasks can stop
    set_usage(tmp_path, 1, LOW, src)
    assert src.need() == 0 and int(read(tmp_path, "memory.limit_in_bytes")) == hard
    # Paused again and again: a few reliefs, then the kernel decides (OOM killer on).
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 1\nunder_oom 1\n")
    set_usage(tmp_path, 1, hard, src)
    limits = []
    for _ in range(3):
        src.need()
        src.still_paused()
        limits.append(int(read(tmp_path, "memory.limit_in_bytes")))
    assert hard < limits[0] < limits[1] < limits[2]                # more room each time
    assert "under_oom 1" in read(tmp_path, "memory.oom_control")   # killer still off
    src.need()
    src.still_paused()
    assert read(tmp_path, "memory.oom_control") == "0"
    src.close()


def test_foreign_cgroup_is_only_read(tmp_path):
    src = CgroupSource(fake_cgroup(tmp_path, 2, **{"memory.max": str(LIMIT)}), LIMIT,
                       owned=False, log=lambda m: None, warn=lambda m: None)
    set_usage(tmp_path, 2, HIGH + MiB, src)
    assert src.need() > 0
    src.exhausted()
    assert read(tmp_path, "memory.high") == "max" and read(tmp_path, "memory.max") == str(LIMIT)


def test_psi_source_purges_a_slice_when_stalls_grow(tmp_path):
    psi = tmp_path / "memory"
    line = "some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 total=0\n"
    psi.write_text(line.format(1000))
    src = PsiSource(str(psi), volatile_bytes=lambda: 400 * MiB)
    psi.write_text(line.format(1500))
    assert src.need() == 0                      # 0.5 ms more stall: fine
    psi.write_text(line.format(1900))
    assert src.need() == 0
    psi.write_text(line.format(60000))
    assert src.need() == 100 * MiB              # a quarter of the volatile memory
    psi.write_text(line.format(70000))
    src.volatile_bytes = lambda: 8 * MiB
    assert src.need() == 16 * MiB               # at least 16 MiB
    src.close()


@pytest.mark.parametrize("limit", [16 * MiB, 64 * MiB, 8 << 30])
def test_watermarks_leave_room_below_the_limit(limit):
    high, low = watermarks(limit)
    assert 0 < low < high < limit and limit - high >= 2 * MiB


def test_budget_calls_wait_once_the_summed_rss_reaches_the_high_mark():
    """The RSS budget's checkpoint: a call waits for a reading once its
    process's RSS now and the others' as last seen reach the high mark."""
    rss = {1: 30 * MiB, 2: 20 * MiB}
    src = BudgetSource(LIMIT, rss=lambda: dict(rss))
    assert src.need() == 0 and src.call_budget() == (HIGH, {1: 30 * MiB, 2: 20 * MiB})
    assert not src.at_call(1, lambda: 35 * MiB)          # 55 MiB: under 57.6
    assert src.at_call(2, lambda: 23 * MiB)              # 35 + 23: at the high mark
    rss.update({1: 35 * MiB, 2: 23 * MiB})
    assert src.need() == 58 * MiB - LOW
    src.nothing_to_purge()                               # nothing volatile left: calls go on
    assert src.call_budget() == (0, {1: 35 * MiB, 2: 23 * MiB})
    assert not src.at_call(1, lambda: 60 * MiB)
    rss.update({1: 10 * MiB})
    assert src.need() == 0 and src.call_budget()[0] == HIGH   # room again: checked again
    assert src.at_call(3, lambda: 40 * MiB)              # a new process is counted at once


def test_budget_warning_says_best_effort_and_how_to_get_a_real_limit():
    line = budget_warning(LIMIT, fallback=True)
    assert "\n" not in line and "no memory cgroup can be made here" in line
    assert "best-effort" in line and "--memory-limit 64M" in line
    assert "systemd-run --user --scope -p Delegate=yes" in line and "MemoryMax=64M" in line
    assert budget_warning(LIMIT, fallback=False).startswith("--pressure budget:")


# --- a delegated cgroup v2 subtree (no v2 memory controller here: a fake tree) ---

class FakeKernel:
    """Plays the cgroup v2 rules the delegated path meets on a directory of
    plain files: writing a pid to cgroup.procs moves it there from any
    other group of the tree; +memory/-memory in cgroup.subtree_control;
    a group whose processes all left has no cgroup.procs file (so a plain
    directory can be removed, as an empty cgroup can)."""

    def __init__(self, root, refuse=()):
        self.root, self.refuse, self.writes = root, set(refuse), []

    def write(self, path, value):
        path, value = str(path), str(value)
        self.writes.append((os.path.relpath(path, self.root), value))
        if value in self.refuse:
            raise OSError(errno.EBUSY, "refused")
        name = os.path.basename(path)
        if name == "cgroup.subtree_control":
            current = set(open(path).read().split()) if os.path.exists(path) else set()
            (current.add if value[0] == "+" else current.discard)(value[1:])
            open(path, "w").write(" ".join(sorted(current)))
        elif name == "cgroup.procs":
            for procs in self.root.rglob("cgroup.procs"):
                left = [p for p in procs.read_text().split() if p != value]
                if left:
                    procs.write_text("\n".join(left) + "\n")
                else:
                    procs.unlink()
            with open(path, "a") as f:
                f.write(value + "\n")


def delegated_scope(tmp_path, monkeypatch, controllers="cpu memory pids", subtree="",
                    writable=True, refuse=(), procs="4242\n"):
    """A user scope as systemd-run --user --scope vrange-run leaves it: its
    parent hands it memory (so it has memory.* files), its files are ours,
    and it holds vrange-run (pid 4242) alone."""
    scope = tmp_path / "user@1000.service" / "app.slice" / "run-u7.scope"
    scope.mkdir(parents=True)
    for name, text in {"cgroup.controllers": controllers, "cgroup.subtree_control": subtree,
                       "cgroup.procs": procs, "memory.max": "max",
                       "memory.current": "0"}.items():
        (scope / name).write_text(text)
    kernel = FakeKernel(tmp_path, refuse)
    monkeypatch.setattr(cg, "_write", kernel.write)
    if not writable:   # what a non-root user meets outside its own subtree
        real_access = os.access
        monkeypatch.setattr(cg.os, "access", lambda p, mode: False if str(p).startswith(
            str(scope)) and mode == os.W_OK else real_access(p, mode))
    return scope, kernel


def test_delegated_v2_scope_moves_its_processes_to_a_leaf_then_holds_the_program_group(
        tmp_path, monkeypatch):
    """cgroup v2 has no memory controller on this machine: the delegated
    subtree is a fake tree of plain files (see FakeKernel).  v2 lets only a
    group without processes give memory to its children, so vrange-run's
    group empties itself into a leaf before the program's group is made,
    and takes its processes back once that group is gone."""
    scope, kernel = delegated_scope(tmp_path, monkeypatch)
    assert cg.delegated(str(scope))
    group = cg.v2_child(str(scope), "vrange-run-4242", pid=4242)
    assert group.version == 2 and group.path == str(scope / "vrange-run-4242")
    assert group.leaf == str(scope / "vrange-run-4242-supervisor")
    with open(scope / "cgroup.procs", "a") as procs:
        procs.write("4243\n")     # its watchdog, started before the group is made
    assert group.make()
    leaf = os.path.relpath(group.leaf, tmp_path)
    assert kernel.writes == [(f"{leaf}/cgroup.procs", "4242"), (f"{leaf}/cgroup.procs", "4243"),
                             (os.path.relpath(scope, tmp_path) + "/cgroup.subtree_control",
                              "+memory")]
    assert (scope / "vrange-run-4242").is_dir() and not (scope / "cgroup.procs").exists()
    assert group.remove()
    assert not (scope / "vrange-run-4242").exists() and not os.path.exists(group.leaf)
    assert (scope / "cgroup.procs").read_text().split() == ["4242", "4243"]
    assert (scope / "cgroup.subtree_control").read_text() == ""


def test_v2_scope_that_cannot_hand_out_memory_gives_no_group(tmp_path, monkeypatch):
    scope, _ = delegated_scope(tmp_path, monkeypatch, controllers="cpu pids")
    assert not cg.delegated(str(scope)) and cg.v2_child(str(scope), "g", pid=4242) is None


def test_v2_scope_not_ours_gives_no_group(tmp_path, monkeypatch):
    scope, _ = delegated_scope(tmp_path, monkeypatch, writable=False)
    assert not cg.delegated(str(scope)) and cg.v2_child(str(scope), "g", pid=4242) is None


def test_v2_scope_shared_with_other_processes_is_left_alone(tmp_path, monkeypatch):
    """vrange-run started from a shell in the scope: moving the shell into a
    leaf is not ours to do."""
    scope, _ = delegated_scope(tmp_path, monkeypatch, procs="1000\n4242\n")
    assert cg.delegated(str(scope)) and cg.v2_child(str(scope), "g", pid=4242) is None


def test_v2_group_that_hands_out_memory_already_needs_no_leaf(tmp_path, monkeypatch):
    scope, _ = delegated_scope(tmp_path, monkeypatch, subtree="memory", writable=False,
                               procs="")
    group = cg.v2_child(str(scope), "g", pid=4242)
    assert group.leaf is None and group.make() and (scope / "g").is_dir()


def test_v2_leaf_is_undone_when_memory_cannot_be_handed_out(tmp_path, monkeypatch):
    scope, kernel = delegated_scope(tmp_path, monkeypatch, refuse={"+memory"})
    group = cg.v2_child(str(scope), "g", pid=4242)
    assert not group.make()
    assert not os.path.exists(group.leaf) and not (scope / "g").exists()
    assert (scope / "cgroup.procs").read_text().split() == ["4242"]
