"""--trace FILE: every event on the bus, one JSON object per line (docs/trace.md).

Each line is "t" (seconds since the writer started), "ev" (the event's KIND),
then its fields in the order of events.py (`t` aside; SpaceEnd's stats as a
dict).  Writing is buffered and a Call is formatted by hand, not with
json.dumps (~1 us), so tracing can stay on: calls the native loop answered
are written by its log worker, off the program's path.

>>> import io
>>> from .events import EventBus, Exec, Call
>>> out = io.StringIO(); w = TraceWriter(out); w.t0 = 100.0; bus = EventBus(); w.attach(bus)
>>> bus.emit(Exec(pid=7, program="sh", t=100.5))
>>> bus.emit(Call(7, 7, "volatile", 4096, 8192, 8192, 0, False, "native", 8192, 0, t=101.0))
>>> print(out.getvalue(), end="")
{"t":0.5,"ev":"exec","pid":7,"program":"sh"}
{"t":1.000000,"ev":"call","pid":7,"tid":7,"mode":"volatile","start":4096,"len":8192,"ret":8192,"errno":0,"purged":false,"path":"native","volatile":8192,"purged_bytes":0}
"""
import json
import time

from . import events

SAMPLE_EVERY = events.SAMPLE_EVERY   # the supervisor emits Sample events on this period


def _order(kind):
    """The fields of a kind as the trace writes them: schema order, `t` aside."""
    names = tuple(f for f in kind._fields if f != "t")
    return names


_FIELDS = {kind: _order(kind) for kind in events.KINDS}


def _discard(text):
    pass


class TraceWriter:
    """Writes the events of a bus to `path` (or to an open text file)."""

    def __init__(self, path):
        self._out = path if hasattr(path, "write") else open(path, "w", buffering=1 << 16)
        self._write = self._out.write
        self.t0 = time.monotonic()

    def attach(self, bus):
        """Subscribe to every kind of event on `bus`."""
        for kind in events.KINDS:
            bus.subscribe(self._call if kind is events.Call else self.write, kind)

    def write(self, ev):
        """One line for `ev` (any kind but Call, which has its fast path)."""
        t = ev.t
        t = (time.monotonic() if t is None else t) - self.t0
        line = {"t": round(t, 6), "ev": ev.KIND}
        for name in _FIELDS[type(ev)]:
            line[name] = getattr(ev, name)
        if type(ev) is events.SpaceEnd:
            line["stats"] = ev.stats.as_dict()
        self._write(json.dumps(line, separators=(",", ":")) + "\n")

    def _call(self, ev):
        """One answered vrange call (hot: formatted by hand)."""
        pid, tid, mode, start, length, ret, err, purged, path, volatile, purged_bytes, t = ev
        t = (time.monotonic() if t is None else t) - self.t0
        mode = f'"{mode}"' if mode else "null"
        self._write(
            f'{{"t":{t:.6f},"ev":"call","pid":{pid},"tid":{tid},"mode":{mode},'
            f'"start":{start},"len":{length},"ret":{ret},"errno":{err},'
            f'"purged":{"true" if purged else "false"},"path":"{path}",'
            f'"volatile":{volatile},"purged_bytes":{purged_bytes}}}\n')

    def close(self):
        """Flush and close; events emitted later are dropped."""
        out, self._out = self._out, None
        self._write = _discard
        if out is not None:
            out.close()


def read(path):
    """The events of a trace file, in order (a torn last line is skipped)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise
    return out
