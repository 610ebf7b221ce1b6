"""The native receive/answer loop (fastpath.c) answers exactly as Python does.

Calls that need no decision are answered in C; these tests check that the
answers, the purged flags and the data do not depend on which loop served
them, and that a program locking memory is seen before its next VOLATILE.
"""
import errno
import os
import random
import subprocess

import pytest

from conftest import VRANGE_RUN, Output

PAGE = 4096
BYTES_ABIS = ("native", "v10", "v12")


def random_script(seed, ops=160):
    """Calls over two regions, with purges and data checks in between.
    Page 40 of A is a hole: calls over it fail with ENOMEM."""
    rnd = random.Random(seed)
    lines = ["map A 48 anon", "map B 16 anon", "fill A 1", "fill B 2", "unmap A 40 1"]
    for _ in range(ops):
        region, pages = rnd.choice([("A", 48), ("B", 16)])
        off = rnd.randrange(pages)
        n = rnd.randint(1, pages - off)
        what = rnd.random()
        if what < 0.45:
            lines.append(f"vol {region} {off} {n} {rnd.choice([0, 1])}")
        elif what < 0.9:
            lines.append(f"nonvol {region} {off} {n}")
        elif what < 0.95:
            lines.append("purge")
        else:
            lines += ["nonvol B 0 16", "check B 2"]   # volatile purged pages raise SIGBUS
    lines += ["nonvol A 0 40", "nonvol A 41 7", "nonvol B 0 16", "check A 1 0 40",
              "check A 1 41 7", "check B 2"]
    return "\n".join(lines) + "\n"


def run_script(exe, abi, text, fast):
    env = dict(os.environ, VRANGEEMU_FASTPATH="1" if fast else "0")
    proc = subprocess.run([*VRANGE_RUN, "--abi", abi, exe], input=text, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.mark.parametrize("seed", range(4))
def test_native_and_python_loops_answer_alike(build, seed):
    abi = ("native", "v7", "v10", "v12")[seed]
    exe = build("vrange_script", abi)
    text = random_script(seed)
    fast, slow = run_script(exe, abi, text, True), run_script(exe, abi, text, False)
    assert fast == slow
    out = Output(fast)
    assert any(c["purged"] == 1 or (abi == "v7" and c["ret"] == 1) for c in out.calls), \
        "the script should re-pin something purged"
    assert sum(c["errno"] == 0 for c in out.calls) > 50


@pytest.mark.parametrize("abi", BYTES_ABIS)
def test_mlock_after_unlocked_calls_stops_the_next_volatile(script, abi):
    out = script(abi).run("map A 8 anon\nvol A 0 8\nnonvol A 0 8\n"
                          "mlock A 4 4\nvol A 0 8\n")
    assert out.calls[0]["ret"] == 8 * PAGE
    assert out.calls[2] == dict(ret=4 * PAGE, errno=0, purged=0)


@pytest.mark.parametrize("abi", ("native", "v7"))
def test_map_locked_mapping_is_einval(script, abi):
    out = script(abi).run("map A 4 anon\nvol A 0 4\nmap B 4 maplocked\nvol B 0 4\nvol A 0 4\n")
    assert [c["errno"] for c in out.calls] == [0, errno.EINVAL, 0]


def test_mlockall_future_locks_later_mappings(script):
    out = script("native").run("map A 4 anon\nvol A 0 4\nnonvol A 0 4\nmlockall\n"
                               "map B 4 anon\nvol B 0 4\nvol A 0 4\nmunlockall\nvol B 0 4\n")
    assert [c["errno"] for c in out.calls] == [0, 0, errno.EINVAL, errno.EINVAL, 0]
