"""The in-process path (native/inproc/inproc.c, supervisor/inproc.py).

The same scripts give the same answers and data on every path; re-pins
racing purges get no false "not purged" and lose no write; the library
answers the calls it should (counted by vrange-run -v) and steps aside
where it must (fork children, vfork, exec, static programs, a dead or
failed supervisor).
"""
import os
import re
import subprocess

import pytest

from conftest import VRANGE_RUN, Output, vrange_run
from test_native_loop import random_script

from vrangeemu import cbuild
from vrangeemu.linux import inproc

pytestmark = pytest.mark.skipif(inproc.library_path() is None,
                                reason="vrangeemu._inproc is not built (python3 setup.py build_ext)")

PATHS = {   # path -> (vrange-run options, environment)
    "inproc": ((), {"VRANGEEMU_INPROC": "1", "VRANGEEMU_FASTPATH": "1"}),
    "native": (("--inproc", "off"), {"VRANGEEMU_FASTPATH": "1"}),
    "python": ((), {"VRANGEEMU_FASTPATH": "0"}),
    "ptrace": (("--trap", "ptrace"), {}),
}
COUNTS = re.compile(r"in-process library of (\d+): (\d+) calls answered there, "
                    r"(\d+) left to the supervisor, (\d+) re-pins taken back")


def run(exe, path, *args, abi="native", input=None, timeout=120, options=()):
    path_options, env = PATHS[path]
    proc = subprocess.run([*VRANGE_RUN, "-v", "--abi", abi, *path_options, *options, exe,
                           *map(str, args)],
                          input=input, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)
    return proc


def answered_here(stderr):
    """Calls the libraries answered in the program, summed over processes."""
    return sum(int(m.group(2)) for m in COUNTS.finditer(stderr))


@pytest.mark.parametrize("seed", range(4))
def test_every_path_answers_a_random_script_alike(build, seed):
    abi = ("native", "v7", "v10", "v12")[seed]
    exe = build("vrange_script", abi)
    text = random_script(seed + 100)
    outs = {}
    for path in PATHS:
        proc = run(exe, path, abi=abi, input=text)
        assert proc.returncode == 0, (path, proc.stdout, proc.stderr)
        outs[path] = proc.stdout
        if path == "inproc":
            assert answered_here(proc.stderr) > 20, proc.stderr
        else:
            assert answered_here(proc.stderr) == 0, (path, proc.stderr)
    assert outs["inproc"] == outs["native"] == outs["python"] == outs["ptrace"]
    calls = Output(outs["inproc"]).calls
    assert any(c["purged"] == 1 or (abi == "v7" and c["ret"] == 1) for c in calls)


@pytest.mark.parametrize("access", ["sigbus", "zero"])
def test_repins_racing_purges_get_no_false_answer_and_lose_no_write(build, access):
    """Without the claim check in the library this fails: SIGBUS on a page
    answered "not purged" (sigbus), or false answers and lost writes (zero)."""
    proc = run(build("inproc_repin_race"), "inproc", 4, 3, timeout=180,
               options=("--purged-access", access))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    got = dict(re.findall(r"(\w+)=(\d+)", proc.stdout))
    assert got["false_not_purged"] == "0" and got["lost_writes"] == "0", proc.stdout
    assert int(got["rounds"]) > 20, proc.stdout
    assert int(got["purged"]) > 50, proc.stdout           # the purges really raced
    counts = COUNTS.search(proc.stderr)
    assert counts and int(counts.group(2)) > 1000, proc.stderr   # in the program


def test_a_forked_child_gets_a_region_of_its_own(build):
    """fork_and_spawn's parent and child both make calls: each process's
    library says hello for itself, and the answers match the trap path."""
    exe = build("fork_cow_scenarios")
    here, there = run(exe, "inproc"), run(exe, "native")
    assert here.returncode == there.returncode == 0, (here.stdout, here.stderr)
    assert here.stdout == there.stdout
    pids = {m.group(1) for m in COUNTS.finditer(here.stderr)}
    assert len(pids) >= 2, here.stderr


def test_a_static_program_is_served_by_the_trap(build, tmp_path):
    exe = tmp_path / "vrange_script_static"
    try:
        cbuild.build(cbuild.repo_root() / "native" / "progs" / "vrange_script.c", exe,
                     ("-O2", "-static"), abi="native")
    except Exception as exc:   # no static libc here
        pytest.skip(f"cannot link statically: {exc}")
    proc = run(exe, "inproc", input="map A 4 anon\nfill A 1\nvol A 0 4 0\npurge\n"
                                    "nonvol A 0 4\ncheck A 1\n")
    assert proc.returncode == 0, proc.stderr
    assert "purged=1" in proc.stdout and "check A good=0 zero=4" in proc.stdout
    assert answered_here(proc.stderr) == 0 and "attached" not in proc.stderr


def test_the_programs_own_preload_still_loads(build, tmp_path):
    lib = tmp_path / "hello.so"
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void hi(void)'
                   ' { fputs("their preload\\n", stderr); }\n')
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    proc = subprocess.run([*VRANGE_RUN, "-v", build("vrange_script")], input="map A 4 anon\n"
                          "vol A 0 4 0\nnonvol A 0 4\n",
                          env={**os.environ, "LD_PRELOAD": str(lib), **PATHS["inproc"][1]},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "their preload" in proc.stderr
    assert answered_here(proc.stderr) == 2, proc.stderr


def test_inproc_off_leaves_no_library_in_the_program(build):
    proc = vrange_run("--inproc", "off", "sh", "-c", 'echo "[$LD_PRELOAD]"', timeout=30)
    assert proc.returncode == 0 and proc.stdout == "[]\n", (proc.stdout, proc.stderr)
    proc = vrange_run("sh", "-c", 'echo "[$LD_PRELOAD]"', timeout=30,
                      env={**os.environ, **PATHS["inproc"][1]})
    assert "_inproc" in proc.stdout, proc.stdout
