"""Reading the pressure source on time and turning a need into purges."""
import os
import time

from ..observe.events import Pressure


class PressureWatch:
    """Asks `source` (pressure.py) when it is due, when one of its fds fired,
    and before a vrange call if the source says so (`at_call`); reports each
    reading on `bus`, and has `purger` relieve any need.  When nothing is
    left to purge the source is told (`nothing_to_purge`): then the kernel's
    limit applies.  A source that checks calls has its high mark and
    readings passed to `checkpoints` (the native loop, which then hands a
    call back unanswered once the readings reach the mark)."""

    def __init__(self, source, purger, bus, checkpoints=None):
        self.source = source
        self.purger = purger
        self.bus = bus
        self.checkpoints = checkpoints
        self.fds = list(source.fds)
        self._due = 0.0

    def due_in(self):
        """Seconds until the source wants to be read (<= 0: now)."""
        return self._due - time.monotonic()

    def after_poll(self, ready):
        """Called after each loop turn with the fds that were readable."""
        fired = [fd for fd in self.fds if fd in ready]
        for fd in fired:
            os.read(fd, 8)    # eventfd: clear it
        if fired or time.monotonic() >= self._due:
            self.check()

    def at_call(self, space):
        """A vrange call of `space` (a TracedSpace) is about to be answered:
        read the source first if it asks to, purging what it needs.  True
        if it was read (a purge may have been requested: await it before
        answering the call)."""
        if not self.source.at_call(space.tgid, space.memory.rss):
            return False
        self.check()
        return True

    def check(self):
        need = self.source.need()
        self._due = time.monotonic() + self.source.timeout()
        r = self.source.readings
        self.bus.emit(Pressure(source=r.source, usage=r.last_usage, high=r.high, low=r.low,
                               limit=r.limit, need=need))
        if self.source.prepares:   # a limit of ours: purger threads before they are needed
            for space in self.purger.tasks.spaces():
                if space.ranges:
                    self.purger.prepare(space)
        if need > 0:
            if self.purger.relieve(need):
                self.source.still_paused()
            else:
                self.source.nothing_to_purge()
        budget = self.source.call_budget()
        if budget is not None and self.checkpoints is not None:
            self.checkpoints.set_rss_budget(*budget)

    def close(self):
        self.source.close()
