"""The test helpers themselves: a wait for a line ends at end of output or at
a deadline, with the output seen so far; a spawned child's whole process
group is killed and the child reaped however its block is left; --help
parsing finds options and sections."""
import argparse
import os
import subprocess
import time

import pytest

from helpers import help_options, help_sections, paragraphs, spawned

SH_PIPES = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_waiting_for_a_line_fails_at_end_of_output_showing_it():
    with spawned(["sh", "-c", "echo one; echo two; echo oops >&2"], **SH_PIPES) as child:
        t0 = time.monotonic()
        with pytest.raises(pytest.fail.Exception) as failed:
            child.stdout.until("three", timeout=30)
        assert time.monotonic() - t0 < 10
        assert "stdout ended without a line containing 'three'" in str(failed.value)
        assert "one\ntwo\n" in str(failed.value)
        assert child.stderr.until("oops") == "oops\n"


def test_waiting_for_a_line_fails_after_the_deadline_showing_the_output():
    with spawned(["sh", "-c", "echo started; exec sleep 60"], **SH_PIPES) as child:
        assert child.stdout.next() == "started\n"
        t0 = time.monotonic()
        with pytest.raises(pytest.fail.Exception) as failed:
            child.stdout.next(timeout=0.5)
        assert 0.4 < time.monotonic() - t0 < 10
        assert "waited 0.5 s in vain for another line" in str(failed.value)
        assert "started\n" in str(failed.value)
        with pytest.raises(pytest.fail.Exception, match="still running after 0.2 s"):
            child.wait(0.2)


def test_finish_returns_what_was_not_read_yet():
    with spawned(["sh", "-c", "echo a; read x; echo \"got $x\"; echo err >&2; exit 3"],
                 **SH_PIPES) as child:
        assert child.stdout.next() == "a\n"
        assert child.finish("hello\n") == ("got hello\n", "err\n")
        assert child.proc.returncode == 3
        assert child.stdout.seen == ["a\n", "got hello\n"]


def _gone(pid, timeout=10):
    """True once `pid` no longer runs (gone, or a zombie not yet reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] in "ZX":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_a_failing_test_still_kills_the_group_and_reaps_the_child():
    with pytest.raises(AssertionError, match="as a test would"):
        with spawned(["sh", "-c", "sleep 300 & echo $!; wait"], **SH_PIPES) as child:
            grandchild = int(child.stdout.next())
            assert os.getpgid(grandchild) == child.pid      # a group of its own
            assert False, "as a test would"
    assert child.proc.returncode is not None                # reaped
    assert _gone(grandchild), "the grandchild outlived the test"


def test_a_child_gone_before_the_block_ends_is_fine():
    with spawned(["true"]) as child:
        assert child.wait() == 0
    assert child.proc.returncode == 0


def test_help_parsing_finds_options_sections_and_tables():
    parser = argparse.ArgumentParser(
        prog="tool", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Kinds:\n  fast    quick and\n          loose\n  slow    careful\n\n"
               "Exit status: 0 on success,\n2 for a usage error.")
    parser.add_argument("-o", "--output", metavar="OUT", help="where to write")
    parser.add_argument("--kind", choices=("fast", "slow"), help="which kind")
    group = parser.add_argument_group("expert", "For experts only.")
    group.add_argument("--seed", type=int, metavar="N", help="a seed " * 12)
    parser.add_argument("file", help="the input")
    text = parser.format_help()
    options = help_options(text)
    assert set(options) == {"-h", "--help", "-o", "--output", "--kind", "--seed"}
    assert options["-o"] == options["--output"] == "where to write"
    assert options["--kind"] == "which kind"                  # its description on the next line
    assert options["--seed"] == " ".join(["a seed"] * 12)     # wrapped lines joined
    sections = help_sections(text)
    assert list(sections["expert"]) == ["--seed"]
    assert any("file" in listed for listed in sections.values())
    assert sections["Kinds"] == {"fast": "quick and loose", "slow": "careful"}
    assert "Exit status: 0 on success, 2 for a usage error." in paragraphs(text)
