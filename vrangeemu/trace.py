"""--trace FILE: what the supervisor saw and did, one JSON object per line.

Every event has "t" (seconds since the start) and "ev" (its kind); the
fields of each kind are documented in docs/trace.md, which vrange-report and
the tests follow.  Addresses and sizes are plain integers (bytes).

Writing is buffered and a call event is formatted without json.dumps
(~1 us), so tracing can stay on: calls the native loop answered are written
by its log worker, off the program's path.
"""
import json
import time

VERSION = 1          # of the schema in docs/trace.md, in the start event
SAMPLE_EVERY = 0.1   # seconds between "sample" events (RSS, volatile, purged per process)


class Trace:
    def __init__(self, path):
        self._out = open(path, "w", buffering=1 << 16)
        self.t0 = time.monotonic()
        self.sample_due = self.t0

    def event(self, ev, t=None, **fields):
        t = (time.monotonic() if t is None else t) - self.t0
        fields = {"t": round(t, 6), "ev": ev, **fields}
        self._out.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def call(self, space, tid, mode, start, length, ret, err, purged, path, t=None):
        """One answered vrange call (hot: formatted by hand)."""
        t = (time.monotonic() if t is None else t) - self.t0
        mode = f'"{mode}"' if mode else "null"
        self._out.write(
            f'{{"t":{t:.6f},"ev":"call","pid":{space.tgid},"tid":{tid},"mode":{mode},'
            f'"start":{start},"len":{length},"ret":{ret},"errno":{err},'
            f'"purged":{"true" if purged else "false"},"path":"{path}",'
            f'"volatile":{space.ranges.volatile_bytes},"purged_bytes":{space.ranges.purged_bytes}}}\n')

    def sample_due_in(self):
        """Seconds until the next sample is due (<= 0: now)."""
        return self.sample_due - time.monotonic()

    def sample(self, spaces, rss_of):
        self.sample_due = time.monotonic() + SAMPLE_EVERY
        for space in spaces:
            self.event("sample", pid=space.tgid, rss=rss_of(space.tgid),
                       volatile=space.ranges.volatile_bytes, purged_bytes=space.ranges.purged_bytes,
                       ranges=len(space.ranges))

    def close(self):
        if self._out:
            self._out.close()
            self._out = None


def read(path):
    """The events of a trace file, in order (a torn last line is skipped)."""
    events = []
    with open(path) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise
    return events
