"""Progress lines: done/total and the rate at most once per interval, and a closing line."""

from __future__ import annotations

import logging

from vlpipe.progress import Progress


class Clock:
    """A clock that reads ``now``, set by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_per_interval_with_the_rate_so_far_and_a_closing_line(caplog):
    clock, log = Clock(), logging.getLogger("test.progress")
    progress = Progress(log, "shard-000", 400, every_s=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for now, count in [(10, 50), (31, 50), (45, 100), (60, 50), (61, 50)]:
            clock.now = 100.0 + now  # seconds since the start
            progress.step(count)
        clock.now = 100.0 + 80
        progress.finish()
    assert caplog.messages == ["shard-000: 100/400 clips (3.2 clips/s)",  # 100 in 31 s
                               "shard-000: 300/400 clips (4.9 clips/s)",  # 30 s later
                               "shard-000: 300/400 clips in 80.0 s (3.8 clips/s)"]


def test_nothing_to_do_closes_with_a_zero_rate(caplog):
    clock = Clock()
    progress = Progress(logging.getLogger("test.progress"), "shard-001", 0, unit="pairs",
                        clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        progress.finish()
    assert caplog.messages == ["shard-001: 0/0 pairs in 0.0 s (0.0 pairs/s)"]
