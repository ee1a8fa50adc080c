"""Progress lines of a long job: items done of the total and the rate so far, at most once per
interval, and once at the end. Every line goes to the job's log; lines marked ``PROGRESS`` or
``DONE`` also reach the console (`console_handler`), so that a user watching Snakemake sees a
long job move without opening its log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

PROGRESS = {"console": "progress"}  # `extra=` of a progress line: on the console at most
DONE = {"console": "done"}          # every interval; of a job's closing line: always


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
                          self.unit, self._rate(now), self.unit, extra=PROGRESS)

    def finish(self) -> None:
        now = self.clock()
        self.log.info("%s: %d/%d %s in %.1f s (%.1f %s/s)", self.what, self.done, self.total,
                      self.unit, now - self.started, self._rate(now), self.unit, extra=DONE)


class ConsoleLines(logging.Filter):
    """Passes the records marked for the console: a closing line (``DONE``) always, a progress
    line (``PROGRESS``) when ``every_s`` seconds have passed since the last one passed (a
    training run logs every epoch; the console gets a line every ``every_s``)."""

    def __init__(self, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self.last = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = getattr(record, "console", None)
        if kind == DONE["console"]:
            return True
        now = self.clock()
        if kind == PROGRESS["console"] and now - self.last >= self.every_s:
            self.last = now
            return True
        return False


def job_label(log_path: str | Path) -> str:
    """A job's name on the console, from its log's path: the part below the ``logs`` folder,
    without ``.log`` (``results/demo/logs/train/ret-JSFusion-0.log`` → ``train/ret-JSFusion-0``)."""
    parts = Path(log_path).with_suffix("").parts
    below = parts[len(parts) - parts[::-1].index("logs"):] if "logs" in parts else ()
    return "/".join(below or parts[-1:])


def console_handler(stream: TextIO, label: str, every_s: float = 30.0) -> logging.Handler:
    """A handler that writes a job's console lines to ``stream`` as ``    LABEL: message``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(f"    {label.replace('%', '%%')}: %(message)s"))
    handler.addFilter(ConsoleLines(every_s))
    return handler
