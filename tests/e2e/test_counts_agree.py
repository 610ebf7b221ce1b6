"""One word, one number: what --stats, --stats-json, the --trace report and
the last --live frame call "purges" and "calls" is the same count for the
same run.  "purges" are purge events (one `purge` line of the trace: one
purge of one process); the madvise runs they discard are "runs discarded"."""
import json
import re
import time

from conftest import VRANGE_RUN, vrange_run
from helpers import spawned
from vrangeemu.report import series

# Pages 0-1, 4-5 and 8-9 resident: the first VOLATILE (purged at once by
# --purge-policy always) discards 3 runs in one purge; the second 2 runs.
SCRIPT = ("map A 16 anon\nfill A 1 0 2\nfill A 1 4 2\nfill A 1 8 2\nvol A 0 16\nnonvol A 0 16\n"
          "fill A 2 0 1\nfill A 2 2 1\nvol A 0 16\nnonvol A 0 16\n")


def stats_rows(stderr):
    """{program: (calls, purges)} and the total's (calls, purges) of a --stats table."""
    cols = r"\s+(\d+)\s+(\d+)\s+\S+ \S+\s+\S+ \S+\s+(\d+)"   # calls errors volatile purged purges
    rows = {m[1]: (int(m[2]), int(m[4]))
            for m in re.finditer(rf"^\s+\d+ (\S+){cols}", stderr, re.M)}
    total = re.search(rf"^\s+total{cols}", stderr, re.M)
    assert total, stderr
    return rows, (int(total[1]), int(total[3]))


def test_stats_json_and_report_count_the_same_purges(build, tmp_path):
    exe = build("vrange_script")
    trace_path, json_path = tmp_path / "run.jsonl", tmp_path / "stats.json"
    proc = vrange_run("--purge-policy", "always", "--stats", "--stats-json", json_path,
                      "--trace", trace_path, exe, input=SCRIPT)
    assert proc.returncode == 0, proc.stderr
    answers = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("ret=")]
    assert answers == ["purged=0", "purged=1"] * 2, proc.stdout

    _, (calls, purges) = stats_rows(proc.stderr)
    doc = json.loads(json_path.read_text())
    report = series.totals(series.timeline(series.load(trace_path)))
    assert purges == doc["total"]["purges"] == sum(r["purges"] for r in report) == 2
    assert calls == doc["total"]["calls"] == sum(r["calls"] for r in report) == 4
    assert doc["total"]["runs_discarded"] == 5          # the other count, under its own name
    summary = [line for line in proc.stderr.splitlines() if "summary:" in line]
    assert summary and "2 purges (5 runs discarded" in summary[0], proc.stderr


def test_last_live_frame_shows_the_counts_at_exit(build):
    """Calls and a purge made after the last regular frame, just before the
    program exits: the last frame still shows them, as --stats does."""
    exe = build("vrange_script")
    env = {"COLUMNS": "120", "PYTHONIOENCODING": "utf-8"}
    with spawned([*VRANGE_RUN, "--live", "--stats", exe], stdin=-1, stdout=-1, stderr=-1,
                 encoding="utf-8", env={**__import__("os").environ, **env}) as child:
        child.send("map A 16 anon\nfill A 1\nvol A 0 16 0\n")   # ARG given: no wait for input
        child.stdout.until("ret=")
        time.sleep(1.2)     # frames of this state are drawn meanwhile
        # 202 more calls (one the purge's barrier) and a purge, then the end: faster than the next snapshot.
        _, err = child.finish("nonvol A 0 16\nvol A 0 16\n" * 100 + "purge\nnonvol A 0 16\n",
                              timeout=60)
        assert child.proc.returncode == 0, err
    live, stats = err.split("vrange-run: stats\n")
    frames = re.split(r"^(?=vrange-run --live)", live, flags=re.M)[1:]
    assert len(frames) >= 2 and "ended after" in frames[-1], live
    header = re.search(r"^\s*pid\s+program.*$", frames[-1], re.M)[0].split()
    row = re.search(r"^\s*\d+\s+vrange_script.*$", frames[-1], re.M)[0].split()
    shown = dict(zip(header[-2:], map(int, row[-2:])))    # ..., calls, purges
    rows, _ = stats_rows("vrange-run: stats\n" + stats)
    (counted,) = [v for k, v in rows.items() if k.startswith("vrange_scrip")]
    assert (shown["calls"], shown["purges"]) == counted == (203, 1), frames[-1]
