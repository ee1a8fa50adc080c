"""Progress lines: done/total and the rate at most once per interval, and a closing line."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from vlpipe.progress import DONE, PROGRESS, ConsoleLines, Progress, job_label

from .helpers import subprocess_env


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


def _record(message: str, extra: dict | None = None) -> logging.LogRecord:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra or {})
    return record


def test_the_console_gets_closing_lines_always_and_progress_lines_once_per_interval():
    clock = Clock()
    console = ConsoleLines(every_s=30, clock=clock)
    shown = []
    for now, message, extra in [(10, "epoch 1", PROGRESS), (29, "epoch 2", PROGRESS),
                                (31, "epoch 3", PROGRESS), (40, "a file was written", None),
                                (50, "epoch 4", PROGRESS), (62, "epoch 5", PROGRESS),
                                (63, "done", DONE)]:
        clock.now = 100.0 + now
        if console.filter(_record(message, extra)):
            shown.append(message)
    assert shown == ["epoch 3", "epoch 5", "done"]


@pytest.mark.parametrize("path, label", [
    ("results/demo/logs/train/ret-JSFusion-0.log", "train/ret-JSFusion-0"),
    ("results/demo/logs/manifest.log", "manifest"),
    ("/tmp/logs/run/logs/extract/av-000.log", "extract/av-000"),
    ("step.log", "step"),
])
def test_a_job_is_named_by_its_log_below_the_logs_folder(path, label):
    assert job_label(path) == label


STEP = """
import logging, sys, warnings
from vlpipe import cli
from vlpipe.progress import DONE

def step(args):
    print("to stdout")
    warnings.warn("a library's warning")
    logging.getLogger("vlpipe.step").info("an ordinary line")
    logging.getLogger("vlpipe.step").info("3/3 clips in 1.0 s", extra=DONE)
    raise RuntimeError("the step failed")

cli._weights_list = step  # stands in for a step's body
cli.main(["--log", sys.argv[1], "weights", "list"])
"""


def test_log_takes_everything_the_step_prints_and_the_console_its_closing_line(tmp_path):
    """As ``> log 2>&1`` did: stdout, warnings and the traceback are in the log; the console
    (the process's stderr) gets only the lines marked for it, named by the log."""
    log = tmp_path / "logs" / "extract" / "av-000.log"
    result = subprocess.run([sys.executable, "-c", STEP, str(log)], capture_output=True,
                            text=True, env=subprocess_env(), timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "    extract/av-000: 3/3 clips in 1.0 s\n"
    text = log.read_text()
    for line in ["to stdout", "UserWarning: a library's warning", "vlpipe.step: an ordinary line",
                 "vlpipe.step: 3/3 clips in 1.0 s", "RuntimeError: the step failed"]:
        assert line in text, line
