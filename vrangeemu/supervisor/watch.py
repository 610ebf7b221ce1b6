"""Reading the pressure source on time and turning a need into purges."""
import os
import time

from ..observe.events import Pressure


class PressureWatch:
    """Asks `source` (pressure.py) when it is due or one of its fds fired,
    reports each reading on `bus`, and has `purger` relieve any need.  When
    nothing is left to purge the source is told (`exhausted`): then the
    kernel's limit applies."""

    def __init__(self, source, purger, bus):
        self.source = source
        self.purger = purger
        self.bus = bus
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

    def close(self):
        self.source.close()
