"""The README's two set-up commands, which .ci/run runs exactly as written.

Each is the one line of the fenced block right after a marker line
`<!-- ci: NAME -->` in README.md: NAME `main-job` (install, run the main
demo) or `tests` (install, run the tests).

    python3 .ci/readme_commands.py NAME [README]   prints that command
"""
import re
import sys
from pathlib import Path

NAMES = ("main-job", "tests")
README = Path(__file__).resolve().parents[1] / "README.md"
# The marker, then a fenced block of any number of lines (checked below).
BLOCK = re.compile(r"^<!-- ci: (\S+) -->\n```\n(.*?)^```$", re.M | re.S)


def commands(text):
    """{name: command} of the marked blocks of `text`; ValueError unless it
    has exactly one block for each of NAMES, each of one line."""
    found = {}
    for name, block in BLOCK.findall(text):
        if name in found or name not in NAMES:
            raise ValueError(f"README: a second or unknown `ci: {name}` block")
        lines = block.splitlines()
        if len(lines) != 1 or not lines[0].strip():
            raise ValueError(f"README: the `ci: {name}` block is not one command line")
        found[name] = lines[0]
    if set(found) != set(NAMES):
        raise ValueError(f"README: no `ci: {'/'.join(sorted(set(NAMES) - set(found)))}` block")
    return found


def main(argv):
    if len(argv) not in (1, 2) or argv[0] not in NAMES:
        sys.exit(f"usage: readme_commands.py {{{','.join(NAMES)}}} [README]")
    try:
        print(commands(Path(argv[1] if len(argv) > 1 else README).read_text())[argv[0]])
    except (OSError, ValueError) as exc:
        sys.exit(f"readme_commands.py: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
