"""The files vrange-run writes (--trace, --stats-json), often as root: opened
before the program starts, never through a symlink, only if regular files,
created 0644."""
import json
import os
import stat
import subprocess

import pytest

from conftest import vrange_run

OUTPUTS = ["--stats-json", "--trace"]
PRECIOUS = "root's own, not to be overwritten\n"

# The program replaces FILE ($1) by a symlink to the victim ($3), keeping
# what was there as $2.
SWAP = 'if [ -e "$1" ]; then mv "$1" "$2"; fi; ln -s "$3" "$1"'


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text(PRECIOUS)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("option", OUTPUTS)
def test_program_swapping_its_output_for_a_symlink_writes_nothing_through_it(
        tmp_path, victim, option):
    out, kept = tmp_path / "out", tmp_path / "out.as-opened"
    out.write_text("x" * 100_000)      # stale content, longer than what is written
    proc = vrange_run(option, out, "sh", "-c", SWAP, "sh", out, kept, victim)
    assert proc.returncode == 0, proc.stderr
    assert out.is_symlink() and victim.read_text() == PRECIOUS
    # Everything went to the file opened before the program ran, emptied first.
    text = kept.read_text()
    if option == "--stats-json":
        assert {"sh", "ln"} <= {p["program"] for p in json.loads(text)["processes"]}
    else:
        events = [json.loads(line)["ev"] for line in text.splitlines()]
        assert events[0] == "start" and events[-1] == "end"


@pytest.mark.parametrize("option", OUTPUTS)
def test_a_symlink_given_as_output_is_refused(tmp_path, victim, option):
    link = tmp_path / "out"
    link.symlink_to(victim)
    proc = vrange_run(option, link, "sh", "-c", "echo ran")
    assert proc.returncode == 125 and proc.stdout == "", proc.stderr   # not started
    assert proc.stderr.startswith(f"vrange-run: {option} {link}: is a symbolic link")
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert victim.read_text() == PRECIOUS


@pytest.mark.parametrize("option", OUTPUTS)
@pytest.mark.parametrize("special", ["fifo", "fifo-with-a-reader", "directory", "device"])
def test_a_special_file_is_refused_at_once(tmp_path, option, special):
    path, kind = {"directory": (tmp_path, "a directory"),
                  "device": ("/dev/zero", "a character device")}.get(
                      special, (tmp_path / "fifo", "a FIFO"))
    reader = None
    if kind == "a FIFO":
        os.mkfifo(path)
        if special == "fifo-with-a-reader":
            reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = vrange_run(option, path, "sh", "-c", "echo ran", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"vrange-run {option} {path} hung", pytrace=False)
    finally:
        if reader is not None:
            os.close(reader)
    assert proc.returncode == 125 and proc.stdout == "", proc.stderr
    assert proc.stderr == f"vrange-run: {option} {path}: is {kind}, not a regular file\n"


def test_output_files_are_created_0644_whatever_the_umask(tmp_path):
    trace, stats = tmp_path / "t.jsonl", tmp_path / "s.json"
    proc = vrange_run("--trace", trace, "--stats-json", stats, "true", umask=0)
    assert proc.returncode == 0, proc.stderr
    assert [stat.S_IMODE(p.stat().st_mode) for p in (trace, stats)] == [0o644, 0o644]


@pytest.mark.parametrize("option", OUTPUTS)
def test_dev_null_takes_the_output_and_the_program_runs(option):
    # Writes to the null device go nowhere: nothing to clobber (--trace
    # /dev/null measures what tracing costs).
    proc = vrange_run(option, "/dev/null", "sh", "-c", "echo ran")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ran\n", "")
