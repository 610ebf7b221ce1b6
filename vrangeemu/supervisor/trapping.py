"""The SIGBUS trap of purged pages: made in the program, spans registered
before a discard, ended at a re-pin.  What to register and fill is decided
in the pure model (model/trap.py); linux/uffd.py talks to the kernel."""
import os

from ..linux.errors import TaskGone
from ..linux.process import pidfd_getfd
from ..linux.syscalls import SYS_CLOSE, SYS_USERFAULTFD
from ..linux.uffd import SigbusTrap
from ..model.trap import spans_to_trap
from ..model.vma import ANON
from .tasks import NO_TRAP


def max_map_count(path="/proc/sys/vm/max_map_count"):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530   # the kernel's default


class Trapping:
    """The trap of each space (`space.trap`, `space.trapped`); `mirror` (the
    native loop) learns the spans registered, `log` what failed.

    A span splits its mapping at both ends, and the mappings of a process
    are capped (vm.max_map_count): at most `max_spans` spans per space, a
    quarter of the cap, so the program keeps at least half of it for its
    own mappings; purged pages beyond read as zeros."""

    def __init__(self, mirror, log):
        self.mirror, self.log = mirror, log
        self.max_spans = max_map_count() // 4

    def make(self, session, space):
        """Create the userfaultfd that makes purged pages raise SIGBUS: made in
        the program (it binds to its mm), copied out with pidfd_getfd, then
        closed there.  On failure the space falls back to zero-fill."""
        fd = session.run([(SYS_USERFAULTFD, (os.O_CLOEXEC | os.O_NONBLOCK,))])[0]
        space.trap = NO_TRAP
        try:
            if fd < 0:
                raise OSError(-fd, f"userfaultfd: {os.strerror(-fd)}")
            copy = pidfd_getfd(space.tgid, fd)
            try:
                space.trap = SigbusTrap(copy)
            except OSError:
                os.close(copy)
                raise
        except (OSError, TaskGone) as exc:
            self.log(f"no SIGBUS for purged pages of {space.tgid} ({exc}): they read as zeros")
        if fd >= 0:
            session.run([(SYS_CLOSE, (fd,))])

    def before_discard(self, space, plan):
        """Before the discard (no access may slip in between): purged pages
        of `plan` will fault.  Whole volatile ranges are registered, so a
        range costs at most two more mappings, not two per purged run; the
        pages of a new span that are missing now (never touched, mostly)
        get the zero page at once, so they read as zeros, as under the
        patches."""
        if space.trap in (None, NO_TRAP):
            return

        def anon(lo, hi):
            return [(v.start, v.end) for v in space.memory.vmas(lo, hi) if v.kind == ANON]
        try:
            spans = spans_to_trap(space.ranges, plan, space.trapped, anon)
        except OSError as exc:   # /proc unreadable: the program is exiting
            self._failed(space, exc)
            return
        room = max(self.max_spans - len(space.trapped), 0)
        if len(spans) > room:
            self._failed(space, f"more than {self.max_spans} separate ranges to trap (each "
                                "costs mappings, which vm.max_map_count caps)")
            spans = spans[:room]
        filled, trapped = 0, []
        for start, end in spans:
            try:
                space.trap.register(start, end)
            except OSError as exc:
                self._failed(space, exc)
                continue
            try:   # its holes (model/trap.py): every page missing before the discard
                filled += space.trap.zero_fill(space.memory.missing(start, end))
            except OSError as exc:   # its holes would fault: give the span up
                self._failed(space, exc)
                self._unregister(space, start, end)
                continue
            space.trapped.add(start, end)
            trapped.append((start, end))
        self.mirror.add_purged(space, trapped)
        if spans:
            self.log(f"{space.tgid}: {len(spans)} span(s) trapped, "
                     f"{filled} untouched page(s) zero-filled")

    def _failed(self, space, exc):
        """Registering failed: purged pages there read as zeros, not SIGBUS."""
        if not space.trap_warned:
            space.trap_warned = True
            self.log(f"purged pages of {space.tgid} may read as zeros: {exc}")

    def _unregister(self, space, start, end):
        try:
            space.trap.unregister(start, end)
        except OSError as exc:   # e.g. unmapped meanwhile: nothing left to trap
            self.log(f"pages of {space.tgid} may raise SIGBUS where they should not: {exc}")

    def unpin(self, space, span):
        """Pages of `span` are pinned again: end their trap, so purged pages
        read as zeros from now on, not SIGBUS, and the mapping merges back
        once its whole range is pinned.  Called before the answer is sent."""
        for start, end in space.trapped.remove(*span):
            self._unregister(space, start, end)
