"""Which volatile pages may go, given copy-on-write sharing between traced processes.

This module reads the facts (pagemap, /proc/kpagecount); model.cow decides.
"""
from ..linux import procfs
from ..linux.procfs import PM_PFN_MASK, PM_PRESENT
from ..model.cow import sharers_if_discardable

PAGE = 4096


class Sharing:
    """Copy-on-write checks across the spaces of `tasks` (a TaskTable)."""

    def __init__(self, tasks, log):
        self.tasks = tasks
        self.log = log
        self._pfn_warned = False

    def alone(self, space):
        """No other traced space exists, so no page of `space` can be shared
        copy-on-write with one (KSM aside: discarding frees nothing, harmless)
        and the cheaper PAGEMAP_SCAN walk finds what may go."""
        return all(sp is space for sp in self.tasks.spaces())

    def blocked(self, space, lo, hi):
        """True if a resident page of [lo, hi) must stay: shared copy-on-write
        with a process that still needs it (the zero page aside)."""
        if self.alone(space):
            return False
        return bool(self._shared_verdicts(space, lo, hi)[1])

    def discardable(self, space, lo, hi, companions=None):
        """Runs of [lo, hi) that `space` may discard now: its exclusive
        resident pages, plus pages shared copy-on-write whose every sharer
        is traced and has them volatile (model.cow).  With `companions`, the
        sharers' matching pages are added there so they are purged too."""
        if self.alone(space):
            return space.memory.resident(lo, hi)
        runs = space.memory.discardable(lo, hi)
        if not any(sp.ranges for sp in self.tasks.spaces() if sp is not space):
            return runs
        approved, _ = self._shared_verdicts(space, lo, hi)
        for addr, sharers in approved:
            runs.append((addr, addr + PAGE))
            if companions is not None:
                for sp in sharers:
                    if sp is not space:
                        companions.setdefault(sp, []).append((addr, addr + PAGE))
        return merge_runs(runs)

    def _shared_verdicts(self, space, lo, hi):
        """The resident pages of [lo, hi) that `space` shares with others:
        ([(addr, sharers)] that may go from all sharers, [addr] that must
        stay).  Sharers are traced spaces mapping the same PFN at the same
        address; their number must match /proc/kpagecount."""
        shared = space.memory.shared_pages(lo, hi)
        if not shared:
            return [], []
        if not shared[0][1]:   # PFNs hidden (no CAP_SYS_ADMIN): keep every shared page
            if not self._pfn_warned:
                self._pfn_warned = True
                self.log("pagemap PFNs are not readable: pages shared copy-on-write "
                         "are never purged")
            return [], [addr for addr, _ in shared]
        others = [sp for sp in self.tasks.spaces() if sp is not space and sp.ranges]
        entries = {id(sp): sp.memory.pagemap(lo, hi) for sp in others}
        approved, kept = [], []
        for addr, pfn in shared:
            i = (addr - lo) >> 12
            found = [sp for sp in others
                     if entries[id(sp)][i] & PM_PRESENT and entries[id(sp)][i] & PM_PFN_MASK == pfn]
            count = procfs.map_count(pfn)
            sharers = sharers_if_discardable(addr, space, found, count)
            if sharers:
                approved.append((addr, sharers))
            elif count:   # count 0: the zero page, no data to keep
                kept.append(addr)
        return approved, kept


def merge_runs(runs):
    """Sorted runs with touching or overlapping ones joined.

    >>> merge_runs([(8, 12), (0, 4), (4, 6)])
    [(0, 6), (8, 12)]
    """
    out = []
    for start, end in sorted(runs):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
