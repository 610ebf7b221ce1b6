"""TEMPORARY: old views on the new event bus until observe/ lands (issue 11)."""
from .trace import Trace


class _Space:
    def __init__(self, e):
        self.tgid = e.pid
        self.ranges = type("R", (), {"volatile_bytes": e.volatile, "purged_bytes": e.purged_bytes})()


def attach_trace(bus, path):
    trace = Trace(path)

    def on(e):
        kind = type(e).KIND
        if kind == "call":
            trace.call(_Space(e), e.tid, e.mode, e.start, e.len, e.ret, e.errno, e.purged, e.path, t=e.t)
            return
        d = e._asdict()
        t = d.pop("t")
        if kind == "space_end":
            d["stats"] = d["stats"].as_dict()
        trace.event(kind, t=t, **d)
    bus.subscribe(on)
    return trace


class Legacy:
    def __init__(self, sup):
        self.sup = sup
        self.argv = sup.argv

    def spaces(self):
        return self.sup.state.spaces()

    @property
    def finished(self):
        return self.sup.tasks.finished

    @property
    def pressure(self):
        return self.sup.state.pressure
