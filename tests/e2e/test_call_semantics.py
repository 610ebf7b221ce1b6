"""Every argument rule and error of the vrange call, for every ABI profile,
checked through real C programs traced by vrange-run."""
import errno

import pytest

from conftest import ABIS, vrange_run

PAGE = 4096
VOL = {"native": 1, "v7": 0, "v10": 0, "v12": 1}
NONVOL = {"native": 0, "v7": 1, "v10": 1, "v12": 0}
BYTES_ABIS = ("native", "v10", "v12")


def assert_marked(abi, call, nbytes):
    assert call["errno"] == 0, call
    assert call["ret"] == (0 if abi == "v7" else nbytes), call


def purged_answer(abi, call, nbytes):
    """The purged flag of a successful NONVOLATILE call, in each ABI's way."""
    assert call["errno"] == 0, call
    if abi == "v7":
        assert call["ret"] in (0, 1) and call["purged"] == -1, call
        return call["ret"]
    assert call["ret"] == nbytes, call
    return call["purged"]


@pytest.mark.parametrize("abi", ABIS)
def test_mark_unmark_and_return_conventions(script, abi):
    out = script(abi).run("map A 8 anon\nfill A 1\nvol A 0 8\nnonvol A 0 8\nnonvol A 0 8\n"
                          "check A 1\n")
    assert_marked(abi, out.calls[0], 8 * PAGE)
    assert purged_answer(abi, out.calls[1], 8 * PAGE) == 0
    assert purged_answer(abi, out.calls[2], 8 * PAGE) == 0   # never volatile: fine
    assert out.checks["A"] == dict(good=8, zero=0, bad=0)


@pytest.mark.parametrize("abi", ABIS)
def test_bad_arguments_are_einval(script, abi):
    v = VOL[abi]
    out = script(abi).run(
        "map A 8 anon\n"
        f"raw A 1 4096 {v} 0 0\n"                      # start not page aligned
        f"raw A 0 100 {v} 0 0\n"                       # length rounds down to 0
        f"raw A 0 0xfffffffffffff000 {v} 0 0\n"        # start + len overflows
        f"raw - 0x800000000000 4096 {v} 0 0\n"         # beyond the user address space
        "raw A 0 4096 7 0 0\n")                        # unknown mode
    assert [c["errno"] for c in out.calls] == [errno.EINVAL] * 5


@pytest.mark.parametrize("abi, flags", [("native", 2), ("v12", 1), ("v7", 2)])
def test_unknown_flags_or_behavior_is_einval(script, abi, flags):
    out = script(abi).run(f"map A 4 anon\nraw A 0 4096 {VOL[abi]} {flags} 0\n")
    assert out.calls[0]["errno"] == errno.EINVAL


@pytest.mark.parametrize("abi", BYTES_ABIS)
def test_length_is_rounded_down_to_pages(script, abi):
    out = script(abi).run(f"map A 4 anon\nraw A 0 {2 * PAGE + 100} {VOL[abi]} 0 0\n")
    assert out.calls[0] == dict(ret=2 * PAGE, errno=0, purged=-1)


@pytest.mark.parametrize("abi", ABIS)
@pytest.mark.parametrize("kind", ["file", "shared", "locked"])
def test_file_shared_and_locked_mappings_are_einval(script, abi, kind):
    out = script(abi).run(f"map A 4 {kind}\nvol A 0 4\n")
    assert out.calls[0]["errno"] == errno.EINVAL


@pytest.mark.parametrize("abi", ABIS)
def test_locked_mapping_stops_the_walk_with_a_short_count(script, abi):
    out = script(abi).run("map A 8 anon\nfill A 1\nmlock A 4 4\nvol A 0 8\npurge\n"
                          "nonvol A 0 4\ncheck A 1 0 4\ncheck A 1 4 4\n")
    call = out.calls[0]
    assert call["errno"] == 0
    assert call["ret"] == (0 if abi == "v7" else 4 * PAGE)
    assert out.checks_list == [dict(good=0, zero=4, bad=0),    # marked, purged
                               dict(good=4, zero=0, bad=0)]    # locked: untouched


@pytest.mark.parametrize("abi", ABIS)
def test_hole_is_enomem_and_changes_nothing(script, abi):
    out = script(abi).run("map A 8 anon\nfill A 1\nunmap A 3 1\nvol A 0 8\npurge\n"
                          "check A 1 0 3\ncheck A 1 4 4\n")
    assert out.calls[0]["errno"] == errno.ENOMEM
    assert out.checks_list == [dict(good=3, zero=0, bad=0), dict(good=4, zero=0, bad=0)]


@pytest.mark.parametrize("abi", BYTES_ABIS)
def test_bad_purged_pointer_is_efault_and_changes_nothing(script, abi):
    out = script(abi).run(
        "map A 4 anon\nfill A 1\nvol A 0 4\nbadptr nonvol A 0 4\n"   # unmark refused
        "map B 4 anon\nfill B 2\nbadptr vol B 0 4\n"                  # mark refused
        "purge\nnonvol A 0 4\ncheck A 1\ncheck B 2\n")
    assert out.calls[1]["errno"] == errno.EFAULT
    assert out.calls[2]["errno"] == errno.EFAULT
    assert purged_answer(abi, out.calls[3], 4 * PAGE) == 1   # A stayed volatile
    assert out.checks["A"]["zero"] == 4
    assert out.checks["B"] == dict(good=4, zero=0, bad=0)     # B never became volatile


def test_without_vrange_run_the_call_is_enosys(script):
    out = script("native").run("map A 4 anon\nvol A 0 4\n", traced=False)
    assert out.calls[0]["errno"] == errno.ENOSYS


def test_syscall_nr_override_reaches_the_program(script):
    out = script("native", "--syscall-nr", "1234").run(
        "map A 4 anon\nfill A 1\nvol A 0 4\npurge\nnonvol A 0 4\n")
    assert out.calls[0]["ret"] == 4 * PAGE
    assert out.calls[-1]["purged"] == 1


# --- overlap, touch, split and merge, seen through purges ----------------------

def test_overlapping_marks_merge(script):
    out = script().run("map A 8 anon\nfill A 1\nvol A 0 4\nvol A 2 4\npurge\n"
                       "nonvol A 0 8\ncheck A 1 0 6\ncheck A 1 6 2\n")
    assert out.checks_list == [dict(good=0, zero=6, bad=0), dict(good=2, zero=0, bad=0)]
    assert out.calls[-1]["purged"] == 1


def test_nonvolatile_in_the_middle_splits_a_range(script):
    out = script().run("map A 8 anon\nfill A 1\nvol A 0 8\nnonvol A 2 2\npurge\n"
                       "nonvol A 0 2\nnonvol A 2 2\nnonvol A 4 4\ncheck A 1 2 2\n")
    assert out.calls[1]["purged"] == 0
    assert [c["purged"] for c in out.calls[2:]] == [1, 0, 1]
    assert out.checks_list == [dict(good=2, zero=0, bad=0)]


def test_touching_marks_and_a_straddling_unmark(script):
    out = script().run("map A 8 anon\nfill A 1\nvol A 0 4\nvol A 4 4\npurge\n"
                       "nonvol A 3 2\nnonvol A 0 3\nnonvol A 5 3\ncheck A 1\n")
    assert [c["purged"] for c in out.calls[2:]] == [1, 1, 1]
    assert out.checks["A"] == dict(good=0, zero=8, bad=0)


def test_purged_state_is_per_page_and_survives_a_merging_mark(script):
    out = script().run("map A 8 anon\nfill A 1\nvol A 0 4\npurge\nvol A 0 8\n"
                       "nonvol A 4 4\nnonvol A 0 2\nnonvol A 2 2\nnonvol A 0 4\n")
    # pages 4..7 were not volatile at the purge: not purged; 0..3 were.
    assert [c["purged"] for c in out.calls[2:]] == [0, 1, 1, 0]


def test_32bit_entry_with_the_same_number_is_not_trapped(script):
    # The filter checks seccomp_data.arch: an i386 call (int $0x80) with the
    # native number reaches the kernel, which has no such call: ENOSYS.
    out = script().run("map A 4 anon32\nint80 A 0 4\nvol A 0 4\n")
    assert out.calls[0]["errno"] == errno.ENOSYS
    assert out.calls[1] == dict(ret=4 * PAGE, errno=0, purged=0)   # the 64-bit call is


@pytest.mark.parametrize("trap,fastpath", [("notify", "1"), ("notify", "0"), ("ptrace", "1")])
def test_a_signal_never_makes_a_call_fail_with_eintr(build, trap, fastpath, monkeypatch):
    # 40000 calls from two threads under a 100 us SIGALRM without SA_RESTART:
    # before the fix 4-5% of them failed with EINTR in notify mode.
    monkeypatch.setenv("VRANGEEMU_FASTPATH", fastpath)
    proc = vrange_run("--trap", trap, build("calls_under_timer_signals"), timeout=120)
    assert "calls=40000 eintr=0 other=0" in proc.stdout, (proc.stdout, proc.stderr)
    signals = int(proc.stdout.split("signals=")[1])
    assert signals > 100, proc.stdout   # the signals really came meanwhile
    assert proc.returncode == 0


@pytest.mark.parametrize("abi", BYTES_ABIS)
def test_a_purged_pointer_straddling_into_a_read_only_page_writes_nothing(script, abi):
    # Bytes 4094-4097 of P: two writable, two read-only.  The kernel's
    # put_user writes all four or none; 2 bytes used to be written.
    out = script(abi).run("map P 2 rotail\nmap A 2 anon\nfill A 1\nvol A 0 2\n"
                          "nonvolat A 0 2 P 4094\ncheck A 1\n")
    assert out.calls[1]["errno"] == errno.EFAULT
    assert "at P 4094 bytes=5a5a5a5a" in out.text
    assert purged_answer(abi, out.calls[0], 2 * PAGE) == 0 and out.checks["A"]["good"] == 2


@pytest.mark.parametrize("trap", ["notify", "ptrace"])
@pytest.mark.parametrize("offset", [8, PAGE - 2])   # in one purged page; across two
def test_a_purged_pointer_inside_the_purged_range_it_repins_is_written(script, trap, offset):
    # The kernel re-pins, then writes *purged: the pages are ordinary zeros
    # by then.  Until the fix the write met the SIGBUS trap: EFAULT.
    out = script("native", "--trap", trap).run(
        f"map A 4 anon\nfill A 1\nvol A 0 4\npurge\nnonvolat A 0 4 A {offset}\ncheck A 1\n")
    assert out.calls[1] == dict(ret=4 * PAGE, errno=0, purged=-1)
    assert f"at A {offset} bytes=01000000" in out.text   # *purged == 1
    assert out.checks["A"] == dict(good=0, zero=3, bad=1)
