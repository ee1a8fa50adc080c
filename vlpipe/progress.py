"""Progress lines of a long job (its log: stderr): items done of the total and the rate so
far, at most once per interval, and once at the end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Progress:
    """``step()`` once per item; logs "WHAT: done/total UNIT (rate UNIT/s)" when ``every_s``
    seconds have passed since the last line, and ``finish()`` the closing line with the time."""

    def __init__(self, log: logging.Logger, what: str, total: int, unit: str = "clips",
                 every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.what, self.total, self.unit = log, what, total, unit
        self.every_s, self.clock = every_s, clock
        self.done = 0
        self.started = self.last = clock()

    def _rate(self, now: float) -> float:
        return self.done / (now - self.started) if now > self.started else 0.0

    def step(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self.log.info("%s: %d/%d %s (%.1f %s/s)", self.what, self.done, self.total,
                          self.unit, self._rate(now), self.unit)

    def finish(self) -> None:
        now = self.clock()
        self.log.info("%s: %d/%d %s in %.1f s (%.1f %s/s)", self.what, self.done, self.total,
                      self.unit, now - self.started, self._rate(now), self.unit)
