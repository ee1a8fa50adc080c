"""Dataset adapters: each reads one on-disk annotation format into the canonical tables.

Canonical clip table (one row per clip): ``clip_id, video_path, start, end, split, sentences``;
``end`` is NaN for "until the end of the file". Splits are normalised to train / val / test.
An adapter also reads the task lists its data set ships (``DatasetTables``, ``TASK_COLUMNS``);
``task_lists`` builds the missing ones. Nothing here imports torch: the workflow imports this
package while it plans.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vlpipe.datasets.base import (
    BLANK_MARKER,
    CLIP_COLUMNS,
    TASK_COLUMNS,
    AnnotationError,
    DatasetTables,
)
from vlpipe.datasets.lsmdc import lsmdc_files, read_lsmdc
from vlpipe.datasets.msrvtt import msrvtt_files, read_msrvtt
from vlpipe.datasets.subtitles import read_subtitles, subtitle_files


@dataclass(frozen=True)
class Adapter:
    """A format's reader and the annotation files it reads (root-relative, from the root and
    the options)."""

    read: Callable[..., DatasetTables]
    files: Callable[[Path, dict], list[str]]


ADAPTERS = {
    "msrvtt": Adapter(read_msrvtt, msrvtt_files),
    "lsmdc": Adapter(read_lsmdc, lsmdc_files),
    "subtitles": Adapter(read_subtitles, subtitle_files),
}


def _adapter(format: str) -> Adapter:
    if format not in ADAPTERS:
        raise KeyError(f"unknown dataset format {format!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[format]


def read_dataset(format: str, root: str | Path, **options) -> DatasetTables:
    """Read a data set with the adapter registered for ``format``."""
    return _adapter(format).read(Path(root), **options)


def annotation_files(format: str, root: str | Path, options: dict) -> list[str]:
    """Paths of every annotation file (clips and task lists) the adapter reads."""
    return [str(Path(root) / name) for name in _adapter(format).files(Path(root), options)]


__all__ = ["ADAPTERS", "BLANK_MARKER", "CLIP_COLUMNS", "TASK_COLUMNS", "AnnotationError",
           "DatasetTables", "annotation_files", "read_dataset"]
