"""The trace writer and --stats as bus subscribers: the same bytes as the
writers they replaced (tests/data/*: recorded from vrangeemu/trace.py and
vrangeemu/report.py before the split, for the same events and rows)."""
import io
import json
import time
from types import SimpleNamespace

import pytest

from conftest import ROOT
from vrangeemu.model.ranges import PAGE, VolatileRanges
from vrangeemu.model.space import AddressSpace, Stats
from vrangeemu.observe import events as ev
from vrangeemu.observe import stats, trace
from vrangeemu.supervisor.pressure import Readings

T0 = 1000.0
MiB = 1 << 20


DATA = ROOT / "tests" / "data"


def space_end_stats():
    return Stats(calls=12, errors=1, marked_bytes=40 * PAGE, purged_bytes=8 * PAGE, purges=2,
                 runs_discarded=3, purged_answers=1, volatile_calls=9, volatile_peak=32 * PAGE)


# (new event, (kind, fields in today's order) for Trace.event; None: a Trace.call)
def cases():
    st = space_end_stats()
    return [
        (ev.Start(version=ev.VERSION, argv=["./prog", "a b"], pid=42, abi="native", nr=451, trap="notify",
                  native_loop=True, pressure="RSS budget 64 MiB", limit=64 * MiB,
                  high=57 * MiB, low=49 * MiB, t=T0),
         ("start", dict(version=ev.VERSION, argv=["./prog", "a b"], pid=42, abi="native",
                        nr=451, trap="notify", native_loop=True, pressure="RSS budget 64 MiB",
                        limit=64 * MiB, high=57 * MiB, low=49 * MiB))),
        (ev.Exec(42, "prog", t=T0 + 0.0123456789), ("exec", dict(pid=42, program="prog"))),
        (ev.Fork(42, 43, 43, False, 2, 8 * PAGE, PAGE, t=T0 + 0.2),
         ("fork", dict(parent=42, pid=43, tid=43, vfork=False, ranges=2, volatile=8 * PAGE,
                       purged_bytes=PAGE))),
        (ev.Clone(42, 42, 44, True, 2, 8 * PAGE, 0, t=T0 + 0.25),
         ("clone", dict(parent=42, pid=42, tid=44, vfork=True, ranges=2, volatile=8 * PAGE,
                        purged_bytes=0))),
        (ev.Call(42, 44, "volatile", 0x7F0000001000, 8 * PAGE, 8 * PAGE, 0, False, "native",
                 16 * PAGE, 0, t=T0 + 1.5), None),
        (ev.Call(42, 42, None, 0x1000, 0, -1, 22, False, "python", 0, 0, t=T0 + 1.6), None),
        (ev.Call(43, 43, "nonvolatile", 0x1000, PAGE, PAGE, 0, True, "python", 0, 0,
                 t=T0 + 1.7), None),
        (ev.Lock(42, 44, t=T0 + 1.75), ("lock", dict(pid=42, tid=44))),
        (ev.Pressure("cgroup v2 /sys/fs/cgroup/x", 60 * MiB, 57 * MiB, 49 * MiB, 64 * MiB,
                     11 * MiB, t=T0 + 2.0),
         ("pressure", dict(source="cgroup v2 /sys/fs/cgroup/x", usage=60 * MiB, high=57 * MiB,
                           low=49 * MiB, limit=64 * MiB, need=11 * MiB))),
        (ev.Purge(42, 42, "pressure", [(0x1000, 0x3000), (0x8000, 0x9000)], 3 * PAGE,
                  5 * MiB, 16 * PAGE, 3 * PAGE, None, t=T0 + 2.1),
         ("purge", dict(pid=42, tid=42, why="pressure", runs=[[0x1000, 0x3000], [0x8000, 0x9000]],
                        bytes=3 * PAGE, rss_anon=5 * MiB, volatile=16 * PAGE,
                        purged_bytes=3 * PAGE, usage=None))),
        (ev.Sigbus(42, 44, 0x1008, (0x1000, 0x3000), True, t=T0 + 2.2),
         ("sigbus", dict(pid=42, tid=44, addr=0x1008, range=[0x1000, 0x3000], purged=True))),
        (ev.Sigbus(42, 44, 0x9999, None, False, t=T0 + 2.25),
         ("sigbus", dict(pid=42, tid=44, addr=0x9999, range=None, purged=False))),
        (ev.Violation(42, 44, 0x1008, 0x401000, (0x1000, 0x3000), 1.23456789, False, "report",
                      t=T0 + 2.3),
         ("violation", dict(pid=42, tid=44, addr=0x1008, ip=0x401000, range=[0x1000, 0x3000],
                            marked_at=1.23456789, purged=False, action="report"))),
        (ev.Sample(42, 4 * MiB, 16 * PAGE, 3 * PAGE, 2, t=T0 + 2.4),
         ("sample", dict(pid=42, rss=4 * MiB, volatile=16 * PAGE, purged_bytes=3 * PAGE,
                         ranges=2))),
        (ev.Exit(43, "killed", 9, t=T0 + 2.5), ("exit", dict(tid=43, how="killed", value=9))),
        (ev.SpaceEnd(43, "prog", st, t=T0 + 2.5),
         ("space_end", dict(pid=43, program="prog", stats=st.as_dict()))),
        (ev.End("exited", 0, t=T0 + 3.0), ("end", dict(how="exited", value=0))),
    ]


def written(events):
    out = io.StringIO()
    writer = trace.TraceWriter(out)
    writer.t0 = T0
    bus = ev.EventBus()
    writer.attach(bus)
    for e in events:
        bus.emit(e)
    return out.getvalue()


def test_every_kind_is_written_as_the_replaced_trace_writer_wrote_it():
    assert written(e for e, _ in cases()) == (DATA / "trace_golden.jsonl").read_text()
    assert {type(e) for e, _ in cases()} == set(ev.KINDS)


def test_known_lines_and_their_order():
    lines = written(e for e, _ in cases()).splitlines()
    assert lines[0] == ('{"t":0.0,"ev":"start","version":1,"argv":["./prog","a b"],"pid":42,'
                        '"abi":"native","nr":451,"trap":"notify","native_loop":true,'
                        '"pressure":"RSS budget 64 MiB","limit":67108864,"high":59768832,'
                        '"low":51380224}')
    assert lines[1] == '{"t":0.012346,"ev":"exec","pid":42,"program":"prog"}'
    assert lines[5] == ('{"t":1.600000,"ev":"call","pid":42,"tid":42,"mode":null,"start":4096,'
                        '"len":0,"ret":-1,"errno":22,"purged":false,"path":"python",'
                        '"volatile":0,"purged_bytes":0}')
    end = json.loads(lines[-2])
    assert list(end) == ["t", "ev", "pid", "program", "stats"]
    assert end["stats"] == space_end_stats().as_dict()
    assert [json.loads(l)["ev"] for l in lines] == [type(e).KIND for e, _ in cases()]


def test_unstamped_events_get_the_time_they_are_written_and_close_drops_later_ones(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = trace.TraceWriter(path)
    bus = ev.EventBus()
    writer.attach(bus)
    time.sleep(0.05)
    bus.emit(ev.Lock(1, 1))
    bus.emit(ev.Call(1, 1, "volatile", 0, PAGE, PAGE, 0, False, "python", PAGE, 0))
    writer.close()
    bus.emit(ev.End("exited", 0))      # after close: dropped, no error
    lines = trace.read(path)
    assert [e["ev"] for e in lines] == ["lock", "call"]
    assert all(0.05 <= e["t"] < 5 for e in lines)
    assert trace.SAMPLE_EVERY == 0.1


def make_space(pid, name, marked):
    vr = VolatileRanges()
    if marked:
        vr.mark(0x10000, 0x10000 + marked * PAGE)
    space = AddressSpace(pid, name, vr, tids={pid})
    space.stats.calls = 3
    space.stats.marked_bytes = space.stats.volatile_peak = marked * PAGE
    return space


@pytest.mark.parametrize("with_pressure", [False, True])
def test_stats_of_the_bus_match_the_replaced_report(tmp_path, with_pressure):
    gone = [(10, "sh", space_end_stats()), (10, "a-very-long-program-name", Stats(calls=1)),
            (11, "child", Stats(errors=2, purges=1, runs_discarded=4,
                                purged_bytes=3 << 30))]
    live = [make_space(12, "worker", 5), make_space(13, "idle", 0)]
    pressure = None
    if with_pressure:
        pressure = SimpleNamespace(name="RSS budget 64 MiB", readings=Readings(
            "RSS budget 64 MiB", 64 * MiB, 57 * MiB, 49 * MiB))
        pressure.readings.saw(60 * MiB, True)
        pressure.readings.saw(10 * MiB, False)
    state = SimpleNamespace(argv=["sh"], spaces=lambda: list(live), pressure=pressure)
    bus = ev.EventBus()
    collector = stats.StatsCollector(bus)
    for pid, name, st in gone:
        bus.emit(ev.SpaceEnd(pid, name, st))
    golden = DATA / f"stats_{'pressure' if with_pressure else 'plain'}"

    new_out = io.StringIO()
    stats.print_stats(collector, state, new_out)
    assert new_out.getvalue() == golden.with_suffix(".txt").read_text()
    assert "a-very-long-prog " in new_out.getvalue() and "worker" in new_out.getvalue()

    stats.write_json(collector, state, tmp_path / "new.json")
    assert (tmp_path / "new.json").read_bytes() == golden.with_suffix(".json").read_bytes()
    doc = json.loads((tmp_path / "new.json").read_text())
    assert [p["pid"] for p in doc["processes"]] == [10, 10, 11, 12, 13]
    assert (doc["pressure"] is None) is not with_pressure
