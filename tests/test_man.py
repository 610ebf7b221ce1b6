"""The man pages: made from their sources (tools/mkman.py), rendered by
groff without a warning, and installed with the package where man finds
them (`man vrange-run`, `man 2 vrange`)."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, vrange_run

MAN = ROOT / "man"
needs_man = pytest.mark.skipif(not (shutil.which("man") and shutil.which("groff")),
                               reason="man-db and groff not installed (.ci/run installs them)")


def mkman():
    spec = importlib.util.spec_from_file_location("mkman", ROOT / "tools" / "mkman.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pages_are_what_the_generator_makes_now():
    made = mkman().pages()
    assert sorted(made) == sorted(p.name for p in MAN.iterdir())
    for name, text in made.items():
        assert (MAN / name).read_text() == text, \
            f"man/{name} differs from its source: run python3 tools/mkman.py"


def rendered(page):
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", MAN / page], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr     # no warning at all
    return re.sub(r".\x08", "", proc.stdout)                          # no overstriking


@needs_man
def test_vrange_2_renders_every_section_of_its_markdown():
    text = rendered("vrange.2")
    md = (ROOT / "docs" / "vrange.2.md").read_text()
    for heading in re.findall(r"^#{2,3} (.*)", md, re.M):
        assert re.search(rf"^ *{re.escape(heading)}$", text, re.M), heading
    assert "vrange - mark memory volatile (discardable)" in text
    assert 'printf("purged=%d cache[0]=%c\\n", purged, cache[0]);' in text   # code kept as is
    assert "`" not in text and "**" not in text                            # no markdown left


@needs_man
def test_vrange_run_1_lists_every_option_of_the_help():
    text = rendered("vrange-run.1")
    help_text = vrange_run("--help").stdout
    options = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", help_text.split("\n\n", 1)[0]))
    assert {"--trap", "--live", "-v"} <= options
    for option in options:
        assert re.search(rf"^ {{7}}{re.escape(option)}\b", text, re.M) or option == "-v", option
    assert re.search(r"^ {7}-v, --verbose$", text, re.M)
    assert "vrange-run - run a program with the vrange() syscall emulated" in text


@needs_man
def test_whatis_reads_the_name_lines():
    if not shutil.which("lexgrog"):
        pytest.skip("lexgrog (man-db) not installed")
    for page, line in (("vrange.2", "vrange - mark memory volatile"),
                       ("vrange-run.1", "vrange-run - run a program with the vrange()")):
        proc = subprocess.run(["lexgrog", MAN / page], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and line in proc.stdout, proc.stdout + proc.stderr


@needs_man
def test_man_finds_the_pages_of_an_installed_package(tmp_path):
    """pip install of this tree into a fresh venv (the C extension is built:
    about 10-20 s), then man as a user of that venv runs it: man-db finds
    <venv>/share/man from <venv>/bin on PATH."""
    tree = tmp_path / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "*.so", "__pycache__", ".pytest_cache",
        ".hypothesis", ".benchmarks"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    proc = subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", tree],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("MANPATH", "MANOPT")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", MANPAGER="cat",
               PAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8")
    for args, installed in ((["vrange-run"], "man1/vrange-run.1"), (["2", "vrange"], "man2/vrange.2")):
        where = subprocess.run(["man", "-w", *args], capture_output=True, text=True, env=env,
                               timeout=60)
        assert where.stdout.strip() == str(venv / "share" / "man" / installed), where.stderr
        page = subprocess.run(["man", *args], capture_output=True, text=True, env=env, timeout=60)
        assert page.returncode == 0 and "SYNOPSIS" in page.stdout, page.stderr
        assert page.stdout.startswith(installed.split("/")[1].upper().replace(".", "(") + ")")
