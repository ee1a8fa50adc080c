"""TensorBoard event files of a training run (``runtime.tensorboard``), beside its
``train_log.jsonl``: each epoch's log entry as scalars at step = the epoch, tagged by its keys
joined with "/" (``loss``, ``lr``, ``selection``, ``val/t2v/R@1``, ``train_stats/lvc_fraction``),
so TensorBoard shows exactly what the log holds. They are an extra, not a Snakemake output: a run
that starts afresh removes those of an earlier run; a resumed run drops the earlier events from
its first epoch on (TensorBoard's ``purge_step``) and goes on.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path

EVENT_FILES = "events.out.tfevents.*"


def scalars(entry: dict, prefix: str = "") -> dict[str, float]:
    """A log entry's numbers by their "/"-joined keys; the epoch (the step) and anything not a
    number are left out."""
    found = {}
    for key, value in entry.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(scalars(value, f"{tag}/"))
        elif isinstance(value, Real) and not isinstance(value, bool) and tag != "epoch":
            found[tag] = float(value)
    return found


def remove_event_files(run_dir: str | Path) -> None:
    """Delete the event files in ``run_dir`` (those of an earlier run)."""
    for path in Path(run_dir).glob(EVENT_FILES):
        path.unlink()


class EpochEvents:
    """Writes each epoch's log entry into a new event file in ``run_dir``; a run resumed after
    ``done_epochs`` epochs drops the events an earlier process wrote from the next one on."""

    def __init__(self, run_dir: str | Path, done_epochs: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=done_epochs + 1 if done_epochs
                                    else None)

    def add(self, entry: dict) -> None:
        """Log one epoch's entry (its ``epoch`` is the step) and flush it to disk."""
        for tag, value in scalars(entry).items():
            self.writer.add_scalar(tag, value, entry["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
