"""calls.serve against a fake address space (no ptrace, no /proc)."""
import errno

from vrangeemu.abi import PROFILES
from vrangeemu.supervisor.calls import serve
from vrangeemu.model.space import AddressSpace
from vrangeemu.supervisor.tasks import TracedSpace
from vrangeemu.model.vma import ANON, LOCKED, Vma

P = 4096
NATIVE = PROFILES["native"]


class FakeMemory:
    """Mapped [lo, hi) anonymous, with optional locked pages and bad pointers."""

    def __init__(self, lo, hi, locked=()):
        self.lo, self.hi, self.locked = lo, hi, set(locked)

    def vmas(self, start, end):
        out = []
        for page in range(max(start, self.lo), min(end, self.hi), P):
            kind = LOCKED if page in self.locked else ANON
            if out and out[-1].kind == kind:
                out[-1] = out[-1]._replace(end=page + P)
            else:
                out.append(Vma(page, page + P, kind))
        return out

    def mark_locked(self, vmas):
        return vmas


def space(lo=0x10000, hi=0x20000, locked=()):
    return TracedSpace(AddressSpace(1, "test"), FakeMemory(lo, hi, locked))


def writer(bad=()):
    written = []

    def write(addr, value):
        if addr in bad:
            return errno.EFAULT
        written.append((addr, value))
        return 0
    write.log = written
    return write


def test_model_changes_only_when_the_answer_is_committed():
    sp = space()
    answer = serve(sp, NATIVE, [0x10000, 4 * P, 1, 0, 0, 0], writer())
    assert (answer.value, answer.error) == (4 * P, 0)
    assert not sp.ranges            # not yet: the answer may not reach the caller
    answer.commit()
    assert [(r.start, r.end) for r in sp.ranges] == [(0x10000, 0x10000 + 4 * P)]
    assert sp.stats.calls == 1 and sp.stats.marked_bytes == 4 * P


def test_nonvolatile_writes_purged_and_commit_clears_it():
    sp = space()
    serve(sp, NATIVE, [0x10000, 4 * P, 1, 0, 0, 0], writer()).commit()
    sp.ranges.set_purged(0x10000 + P, 0x10000 + 2 * P)
    w = writer()
    answer = serve(sp, NATIVE, [0x10000, 4 * P, 0, 0, 0x5000, 0], w)
    assert answer.value == 4 * P and w.log == [(0x5000, 1)]
    answer.commit()
    assert not sp.ranges and sp.ranges.purged_bytes == 0
    assert sp.stats.purged_answers == 1


def test_bad_pointer_is_efault_even_when_the_range_is_unmapped():
    answer = serve(space(), NATIVE, [0x40000, P, 0, 0, 0x5000, 0], writer(bad={0x5000}))
    assert answer.error == errno.EFAULT


def test_unmapped_range_with_good_pointer_is_enomem_and_writes_zero():
    w = writer()
    answer = serve(space(), NATIVE, [0x40000, P, 0, 0, 0x5000, 0], w)
    assert answer.error == errno.ENOMEM and w.log == [(0x5000, 0)]


def test_locked_page_gives_a_short_count_and_marks_only_before_it():
    sp = space(locked={0x10000 + 2 * P})
    answer = serve(sp, NATIVE, [0x10000, 4 * P, 1, 0, 0, 0], writer())
    assert (answer.value, answer.error) == (2 * P, 0)
    answer.commit()
    assert [(r.start, r.end) for r in sp.ranges] == [(0x10000, 0x10000 + 2 * P)]


def test_refused_call_counts_as_an_error_and_changes_nothing():
    sp = space()
    answer = serve(sp, NATIVE, [0x10001, P, 1, 0, 0, 0], writer())
    assert answer.error == errno.EINVAL
    answer.commit()
    assert not sp.ranges and (sp.stats.calls, sp.stats.errors) == (1, 1)


def test_only_an_answered_nonvolatile_ends_a_trap_and_only_over_what_it_processed():
    # Answer.repinned: the span whose SIGBUS trap Purger.unpin ends before
    # the answer is sent, purged pages there or not.
    sp = space(hi=0x10000 + 2 * P)
    volatile = serve(sp, NATIVE, [0x10000, 2 * P, 1, 0, 0, 0], writer())
    assert volatile.repinned is None
    repin = serve(sp, NATIVE, [0x10000, 2 * P, 0, 0, 0, 0], writer())
    assert repin.repinned == (0x10000, 0x10000 + 2 * P) and repin.repinned_purged is None
    unmapped = serve(sp, NATIVE, [0x10000, 4 * P, 0, 0, 0, 0], writer())
    assert unmapped.error == errno.ENOMEM and unmapped.repinned is None
