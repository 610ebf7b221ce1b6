"""Helpers shared by the tests: model spaces, spawned children, help text.

* `new_space` is the one place the tests build an AddressSpace.
* `spawned` starts a child that is always reaped, its whole process group
  killed first, even when an assertion fails half way.  Its output streams
  are drained by threads into `Lines`, so a test waits for a line with a
  deadline and fails at end of output (or after the deadline) showing what
  the child printed, instead of hanging until pytest's timeout.
* `wait_for` polls a condition (a process state, a file, /proc) with a
  deadline, failing at once, with its output, if the child it concerns ends.
* `help_options` and `help_sections` parse argparse --help text, so tests
  check which options and sections exist rather than the sentences.
"""
import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from vrangeemu.model.ranges import VolatileRanges
from vrangeemu.model.space import AddressSpace

# How long a test waits for one line from a child or for it to end.  Short
# next to pytest's 120 s timeout, long enough for a loaded machine.
DEADLINE = 20.0


# --- model -----------------------------------------------------------------------

def new_space(tgid, name="p", clock=None):
    """An AddressSpace with no runtime handles; `clock` (e.g. a shared
    itertools.count(1).__next__) gives its ranges' LRU stamps."""
    return AddressSpace(tgid, name, VolatileRanges(clock))


# --- children --------------------------------------------------------------------

class Lines:
    """The lines of one text stream of a child, read by a thread as they come."""

    def __init__(self, stream, name):
        self.name = name
        self.seen = []          # every line read so far, handed out or not
        self._queue = queue.Queue()
        self._taken = 0         # how many of `seen` were handed out
        self._eof = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True,
                                        name=f"read {name}")
        self._thread.start()

    def _pump(self, stream):
        try:
            for line in iter(stream.readline, ""):
                self._queue.put(line)
        except (OSError, ValueError):   # closed under us
            pass
        finally:
            self._queue.put(None)

    def _get(self, deadline):
        """The next line, None at end of output, or raises queue.Empty."""
        if self._eof:
            return None
        line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        if line is None:
            self._eof = True
        else:
            self.seen.append(line)
        return line

    def _fail(self, why):
        pytest.fail(f"{why}; its {self.name} so far:\n" + ("".join(self.seen) or "(nothing)\n"),
                    pytrace=False)

    def next(self, timeout=DEADLINE):
        """The next line; fails if the stream ends or none comes in `timeout` s."""
        return self.until(lambda line: True, timeout, "another line")

    def until(self, match, timeout=DEADLINE, what=None):
        """Reads lines up to the first one that contains `match` (a str) or for
        which `match(line)` is true, and returns it.  Fails, showing all of
        the stream so far, at end of output or after `timeout` s; `what`
        names the line awaited in that message."""
        test = match if callable(match) else (lambda line: match in line)
        what = what or f"a line containing {match!r}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._get(deadline)
            except queue.Empty:
                break
            if line is None:
                self._fail(f"{self.name} ended without {what}")
            self._taken = len(self.seen)
            if test(line):
                return line
        self._fail(f"waited {timeout} s in vain for {what}")

    def rest(self, timeout=DEADLINE):
        """Everything not yet handed out, up to end of output (which must
        come within `timeout` s)."""
        deadline = time.monotonic() + timeout
        try:
            while self._get(deadline) is not None:
                pass
            ended = True
        except queue.Empty:
            ended = False
        if not ended:
            self._fail(f"{self.name} did not end within {timeout} s")
        text = "".join(self.seen[self._taken:])
        self._taken = len(self.seen)
        return text

    def join(self, timeout):
        self._thread.join(timeout)
        return not self._thread.is_alive()


class Child:
    """A spawned child: `proc` (the Popen), `stdout` and `stderr` (Lines,
    for the streams that are pipes), `send` and `finish` for its stdin."""

    def __init__(self, proc):
        self.proc = proc
        self.pid = proc.pid
        self.stdout = Lines(proc.stdout, "stdout") if proc.stdout else None
        self.stderr = Lines(proc.stderr, "stderr") if proc.stderr else None

    def output(self):
        return "".join(f"\n--- its {lines.name} so far:\n" + "".join(lines.seen)
                       for lines in (self.stdout, self.stderr) if lines)

    def send(self, text):
        """Write `text` to its stdin now."""
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout=DEADLINE):
        """Its exit status; fails (with its output so far) if it runs on."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        pytest.fail(f"pid {self.pid} still running after {timeout} s" + self.output(),
                    pytrace=False)

    def finish(self, text="", timeout=DEADLINE):
        """Like Popen.communicate: send `text`, close stdin, wait for the
        end; returns (the stdout, the stderr) not read yet ("" if no pipe)."""
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                if text:
                    self.send(text)
                self.proc.stdin.close()
        self.wait(timeout)
        return tuple(lines.rest(timeout) if lines else ""
                     for lines in (self.stdout, self.stderr))

    def reap(self):
        """Kill what is left of its process group (it was started in a new
        session) and the child itself, close its pipes, wait for it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The leader is not reaped yet (or was reaped with its group
            # still alive), so the group id cannot name anything else.
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self.proc.wait(DEADLINE)
        for lines, stream in ((self.stdout, self.proc.stdout), (self.stderr, self.proc.stderr)):
            # Closing a stream its thread still reads would block on the
            # stream's lock: close it only once the thread is done.
            if lines and lines.join(5):
                stream.close()


def wait_for(condition, what, timeout=DEADLINE, child=None):
    """Polls `condition()` until it is true; fails naming `what` after
    `timeout` s, or as soon as `child` (a Child) has ended without it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if child is not None and child.proc.poll() is not None:
            pytest.fail(f"pid {child.pid} ended (status {child.proc.returncode}) before "
                        f"{what}" + child.output(), pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s in vain for {what}"
                        + (child.output() if child else ""), pytrace=False)
        time.sleep(0.01)


@contextlib.contextmanager
def spawned(argv, **popen_kw):
    """`with spawned(argv, stdin=PIPE, ...) as child:` starts `argv` (a
    subprocess.Popen in text mode unless `encoding` is given) in a new
    session, and on leaving the block, however it is left, kills its whole
    process group and reaps it."""
    if "encoding" not in popen_kw:
        popen_kw.setdefault("text", True)
    proc = subprocess.Popen([str(a) for a in argv], start_new_session=True, **popen_kw)
    child = Child(proc)
    try:
        yield child
    finally:
        child.reap()


# --- --help text -----------------------------------------------------------------

# "  -o OUT, --output OUT  where to ...", "  program  the ...", "  v7      syscall 314"
_ENTRY_LINE = re.compile(r"^  (\S+(?: \S+)?(?:, -\S+(?: \S+)?)*)(?:  |$)")


def help_sections(text):
    """{heading: {entry: its description}} of argparse help `text`, in
    order.  Headings are the unindented lines ending in ':'; entries are
    what a section lists two spaces in: options (one with several spellings,
    -v, --verbose, is there under each), positional arguments, or the terms
    of an epilog's table."""
    sections, options, current = {}, None, []
    for line in text.splitlines():
        if line and not line[0].isspace():
            options = sections.setdefault(line[:-1], {}) if line.endswith(":") else None
            current = []
        elif options is not None and (m := _ENTRY_LINE.match(line)):
            current = [spelling.split()[0] for spelling in m.group(1).split(", ")]
            for name in current:
                options[name] = line[m.end():].strip()
        elif current and line.startswith(" " * 4) and line.strip():
            for name in current:
                options[name] = (options[name] + " " + line.strip()).strip()
        else:
            current = []
    return sections


def help_options(text):
    """{option string: its description} of argparse help `text`, from the
    first section listing it (an epilog may mention an option again)."""
    options = {}
    for listed in help_sections(text).values():
        for name, description in listed.items():
            if name.startswith("-"):
                options.setdefault(name, description)
    return options


def paragraphs(text):
    """`text` split at blank lines, each paragraph's whitespace collapsed."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
