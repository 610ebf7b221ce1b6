"""CI runs the README's two set-up commands exactly as written: .ci/run takes
them from README.md (the one-line fenced blocks after `<!-- ci: NAME -->`)."""
import re
import shlex
import subprocess

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def quick_start_blocks():
    """The fenced blocks of the README's Quick start section, with the line
    before each."""
    section = re.search(r"^## Quick start.*?(?=^## )", README, re.S | re.M).group(0)
    return re.findall(r"^([^\n]*)\n```\n(.*?)```$", section, re.M | re.S)


def test_readme_gives_two_setup_commands_that_install_into_a_venv():
    blocks = quick_start_blocks()
    assert [marker for marker, _ in blocks] == ["<!-- ci: main-job -->", "<!-- ci: tests -->"]
    assert README.count("<!-- ci:") == 2
    main_job, tests = (body.rstrip("\n") for _, body in blocks)
    assert "\n" not in main_job and "\n" not in tests
    for cmd in (main_job, tests):
        steps = [shlex.split(step) for step in cmd.split(" && ")]
        # A venv first, then only its own pip and python: no "externally-managed-environment".
        assert steps[0] == ["python3", "-m", "venv", ".venv"], cmd
        assert all(step[0] in (".venv/bin/pip", ".venv/bin/python") for step in steps[1:]), cmd
    assert main_job.endswith(".venv/bin/python demos/2_memory_limit.py")
    assert ".venv/bin/pip install -e '.[test]'" in tests and tests.endswith("-m pytest")


def test_ci_runs_exactly_the_readme_commands():
    proc = subprocess.run(["bash", ROOT / ".ci" / "run", "--dry-run"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    main_job, tests = (body.rstrip("\n") for _, body in quick_start_blocks())
    assert proc.stdout.splitlines() == [f"== README tests: VRANGEEMU_CHECK=1 {tests}",
                                        f"== README main-job: {main_job}"]


def test_extraction_refuses_a_readme_without_exactly_the_two_blocks(tmp_path):
    def extract(text):
        (tmp_path / "README.md").write_text(text)
        return subprocess.run(["python3", ROOT / ".ci" / "readme_commands.py", "tests",
                               tmp_path / "README.md"], capture_output=True, text=True, timeout=60)
    block = "<!-- ci: {} -->\n```\n{}\n```\n"
    good = block.format("main-job", "true main") + block.format("tests", "true tests")
    assert extract(good).stdout == "true tests\n"
    for bad in (block.format("main-job", "true"),                          # one missing
                good + block.format("tests", "again"),                      # twice
                good.replace("true tests", "one\ntwo")):                    # two lines
        proc = extract(bad)
        assert proc.returncode == 1 and "README:" in proc.stderr and not proc.stdout
