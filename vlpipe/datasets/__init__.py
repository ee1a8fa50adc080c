"""Dataset adapters: each reads one on-disk annotation format into the canonical tables.

Canonical clip table (one row per clip): ``clip_id, video_path, start, end, split, sentences``;
``end`` is NaN for "until the end of the file". Splits are normalised to train / val / test.
An adapter also reads the task lists its data set ships (``DatasetTables``, ``TASK_COLUMNS``);
``task_lists`` builds the missing ones. Nothing here imports torch: the workflow imports this
package while it plans.
"""

from __future__ import annotations

import inspect
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
from vlpipe.datasets.hollywood2 import hollywood2_files, read_hollywood2
from vlpipe.datasets.lsmdc import lsmdc_files, read_lsmdc
from vlpipe.datasets.msrvtt import msrvtt_files, read_msrvtt
from vlpipe.datasets.subtitles import read_subtitles, subtitle_files
from vlpipe.datasets.vist import read_vist, vist_files


@dataclass(frozen=True)
class Adapter:
    """A format's reader and the annotation files it reads (root-relative, from the root and
    the options)."""

    read: Callable[..., DatasetTables]
    files: Callable[[Path, dict], list[str]]
    captioned: bool = True  # False: no clip has sentences (only tasks without text run)


ADAPTERS = {
    "msrvtt": Adapter(read_msrvtt, msrvtt_files),
    "lsmdc": Adapter(read_lsmdc, lsmdc_files),
    "subtitles": Adapter(read_subtitles, subtitle_files),
    "hollywood2": Adapter(read_hollywood2, hollywood2_files, captioned=False),
    "vist": Adapter(read_vist, vist_files),
}


def _adapter(format: str) -> Adapter:
    if format not in ADAPTERS:
        raise KeyError(f"unknown dataset format {format!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[format]


def has_captions(format: str) -> bool:
    """Whether the clips of data sets in ``format`` come with sentences."""
    return _adapter(format).captioned


def read_dataset(format: str, root: str | Path, **options) -> DatasetTables:
    """Read a data set with the adapter registered for ``format``."""
    return _adapter(format).read(Path(root), **options)


def annotation_files(format: str, root: str | Path, options: dict) -> list[str]:
    """Paths of every annotation file (clips and task lists) the adapter reads."""
    return [str(Path(root) / name) for name in _adapter(format).files(Path(root), options)]


def check_dataset(format: str, root: str | Path, options: dict) -> None:
    """What the workflow checks before it plans: the format is known, ``options`` are the
    adapter's (``dataset.options.<key>`` named), and the root, the video directory and every
    annotation file exist. Raises ValueError naming the key or the path."""
    root = Path(root)
    parameters = inspect.signature(_adapter(format).read).parameters
    accepted = [name for name in parameters if name != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"config dataset.options: unknown key(s) {unknown} for format "
                         f"{format!r}; it accepts {accepted}")
    required = [name for name in accepted
                if parameters[name].default is inspect.Parameter.empty and name not in options]
    if required:
        raise ValueError(f"config dataset.options: format {format!r} needs {required}")
    if not root.is_dir():
        raise ValueError(f"config dataset.root: {root} is not a directory")
    video_dir = root / options.get("video_dir", parameters["video_dir"].default)
    if not video_dir.is_dir():
        raise ValueError(f"config dataset.options.video_dir: {video_dir} is not a directory")
    missing = [name for name in annotation_files(format, root, options) if not Path(name).is_file()]
    if missing:
        raise ValueError(f"config dataset: annotation file(s) not found: {missing}")


__all__ = ["ADAPTERS", "BLANK_MARKER", "CLIP_COLUMNS", "TASK_COLUMNS", "AnnotationError",
           "DatasetTables", "annotation_files", "check_dataset", "has_captions", "read_dataset"]
