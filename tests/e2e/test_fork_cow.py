"""fork and copy-on-write: a shared page goes only if every sharer agrees."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import VRANGE_RUN, vrange_run


def scenario(build, mode, *options):
    proc = vrange_run(*options, build("fork_cow_scenarios"), mode, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_untouched_shared_pages_volatile_in_both_are_purged_in_both(build):
    # Really freed: neither process has the pages resident after the purge.
    assert scenario(build, "untouched") == ["child purged=1 resident=0 data=zero",
                                            "parent purged=1 resident=0 data=zero"]


def test_a_child_that_re_pinned_keeps_the_parents_copies_too(build):
    assert scenario(build, "repins") == ["child purged=0 resident=64 data=ok",
                                         "parent purged=0 resident=64 data=ok"]


def test_after_the_child_writes_both_exclusive_copies_are_purged(build):
    assert scenario(build, "writes") == ["child purged=1 resident=0 data=zero",
                                         "parent purged=1 resident=0 data=zero"]


def test_fork_volatility_clear_child_starts_pinned_so_shared_pages_stay(build):
    assert scenario(build, "untouched", "--fork-volatility", "clear") == [
        "child purged=0 resident=64 data=ok", "parent purged=0 resident=64 data=ok"]


@pytest.mark.parametrize("access", ["sigbus", "zero"])
def test_cow_purge_in_both_access_modes(build, access):
    assert scenario(build, "untouched", "--purged-access", access)[1] == \
        "parent purged=1 resident=0 data=zero"


def test_review_scenario_hog_child_is_killed_parent_keeps_its_data(build):
    """26 MiB, every other MiB volatile, fork; the child hogs memory inside the
    cgroup: the shared volatile MiBs go from both, then the limit hits the hog."""
    proc = vrange_run("--memory-limit", "48M", build("fork_hog_26mib"), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:-1] == [f"mib {i} purged=1 data=zero" if i % 2 == 0 else
                          f"mib {i} purged=0 data=ok" for i in range(26)]
    assert lines[-1] == "child killed by signal 9"
    assert "nothing volatile left to purge" in proc.stderr


def test_many_threads_on_one_range_tree_agree_with_a_sequential_oracle(build):
    proc = vrange_run(build("threads_shared_tree_oracle"), 8, 512, 300, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"thread {t} pages=64 mismatches=0" for t in range(8)]


def test_exec_clears_the_ranges(build):
    # New memory mapped at the old volatile address after exec must not be
    # treated as volatile: the purge leaves it alone.
    proc = vrange_run(build("exec_clears_ranges"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "after exec purged=0 intact=64\n"


def test_purged_bytes_are_accounted_to_each_sharer(build, tmp_path):
    report = tmp_path / "stats.json"
    proc = vrange_run("--stats-json", report, build("fork_cow_scenarios"), "untouched",
                      timeout=60)
    assert proc.returncode == 0, proc.stderr
    processes = json.loads(report.read_text())["processes"]
    assert sorted(p["purged_bytes"] for p in processes) == [64 * 4096, 64 * 4096]
    assert sorted(p["purged_answers"] for p in processes) == [1, 1]
    # Anonymous RSS right after the purge, as vrange-run recorded it, matches
    # what each process then read from /proc itself (within the few heap and
    # stack pages it touched meanwhile).
    seen = sorted(int(kb) * 1024
                  for kb in re.findall(r"anon_rss_after_purge_kb=(\d+)", proc.stderr))
    recorded = sorted(p["anon_rss_after_purge"] for p in processes)
    assert len(seen) == 2 and all(abs(a - b) <= 16 * 4096 for a, b in zip(seen, recorded)), \
        (seen, recorded)
    assert max(seen) < 64 * 4096   # and the purged 256 KiB really left both


@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is not installed")
def test_without_readable_pfns_shared_pages_are_kept_and_said(build):
    # Without CAP_SYS_ADMIN the kernel hides pagemap PFNs: sharers cannot be
    # identified, so a shared page must never go.
    proc = subprocess.run(["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--",
                           *VRANGE_RUN, "-v", build("fork_cow_scenarios"), "untouched"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["child purged=0 resident=64 data=ok",
                                        "parent purged=0 resident=64 data=ok"]
    assert "pagemap PFNs are not readable" in proc.stderr
