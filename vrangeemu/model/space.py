"""One traced address space: its volatile ranges, its tasks and its counters."""
from dataclasses import dataclass, field, fields

from .ranges import VolatileRanges


@dataclass
class Stats:
    """Counters of one address space (one program image of one process)."""
    calls: int = 0            # vrange calls answered
    errors: int = 0           # of which refused with an errno
    marked_bytes: int = 0     # bytes made volatile, summed over calls
    purged_bytes: int = 0     # bytes discarded by purges
    purges: int = 0           # purges of this space: one per trace "purge" event
    runs_discarded: int = 0   # address runs discarded: one per injected madvise (a purge holds one or more)
    purged_answers: int = 0   # NONVOLATILE calls that answered "purged"
    volatile_calls: int = 0   # VOLATILE calls that marked something
    violations: int = 0       # accesses to volatile memory (--check-access)
    volatile_peak: int = 0    # most bytes volatile at once
    resident_volatile_peak: int = 0   # most volatile bytes resident when pressure was seen
    anon_rss_after_purge: int = 0  # RssAnon (/proc status) right after its last purge

    def add(self, other):
        """Sum `other` into this one (peaks and RSS add too: a total's peak is
        an upper bound, and a total RSS counts shared pages once per process)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(eq=False)
class AddressSpace:
    """The volatile state of one mm: shared by every task (thread, vfork
    child) that uses it.  Pure: the supervisor keeps the runtime handles
    (/proc files, userfaultfd, native-loop slot, purge request) beside it.

    `tids` are the live tasks using it; `name` the program for reports.
    """
    tgid: int
    name: str
    ranges: VolatileRanges = field(default_factory=VolatileRanges)
    tids: set = field(default_factory=set)
    stats: Stats = field(default_factory=Stats)

    def fork(self, tgid, inherit=True):
        """The child's space after fork: volatility is inherited (v10), or
        the child starts with none (`inherit=False`, --fork-volatility clear)."""
        ranges = self.ranges.copy()
        if not inherit:
            ranges.clear()
        return AddressSpace(tgid, self.name, ranges)
