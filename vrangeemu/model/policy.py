"""Forced purges for testing allocators (--purge-policy), pure.

Under real pressure a page of a volatile range may go at any moment; a
program that keeps using a range after marking it, or ignores the purged
answer, works until the day memory is short.  These policies make that day
every run:

* ``always``: a range is discarded the moment it becomes volatile;
* ``random``: with probability P it is discarded after a random delay,
  counted in the process's later vrange calls (not seconds), so a seeded run
  of a deterministic program is reproducible.

>>> p = PurgePolicy("random", seed=3, probability=1.0, max_delay=2)
>>> p.on_volatile(1, 0x1000, 0x3000)
[]
>>> [p.on_call(1) for _ in range(3)]
[[], [(4096, 12288)], []]
"""
import random

POLICIES = ("pressure", "always", "random")


class PurgePolicy:
    """Which ranges to purge now, asked at each call of a process (`key`)."""

    def __init__(self, name, seed=0, probability=0.5, max_delay=4):
        if name not in POLICIES:
            raise ValueError(f"unknown purge policy {name!r}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} not in [0, 1]")
        self.name = name
        self.seed = seed
        self.probability = probability
        self.max_delay = max_delay
        self._random = random.Random(seed)
        self._due = {}   # key -> [[calls left, start, end], ...]

    @property
    def forced(self):
        return self.name != "pressure"

    def on_volatile(self, key, start, end):
        """[start, end) just became volatile in `key`: runs to purge now."""
        if self.name == "always":
            return [(start, end)]
        if self.name == "random" and self._random.random() < self.probability:
            delay = self._random.randint(0, self.max_delay)
            if delay == 0:
                return [(start, end)]
            self._due.setdefault(key, []).append([delay, start, end])
        return []

    def on_call(self, key):
        """A call of `key` is being served: runs whose delay ran out (the
        caller purges only what is still volatile then)."""
        pending = self._due.get(key)
        if not pending:
            return []
        due = []
        for entry in pending:
            entry[0] -= 1
            if entry[0] <= 0:
                due.append((entry[1], entry[2]))
        self._due[key] = [e for e in pending if e[0] > 0]
        return due

    def forget(self, key):
        self._due.pop(key, None)
