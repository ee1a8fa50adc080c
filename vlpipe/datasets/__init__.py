"""Dataset adapters: each reads one on-disk annotation format into the canonical tables.

Canonical clip table (one row per clip): ``clip_id, video_path, start, end, split, sentences``;
``end`` is NaN for "until the end of the file". Splits are normalised to train / val / test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import CLIP_COLUMNS, AnnotationError
from vlpipe.datasets.msrvtt import read_msrvtt

ADAPTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "msrvtt": read_msrvtt,
}


def read_dataset(format: str, root: str | Path, **options) -> pd.DataFrame:
    """Read a data set with the adapter registered for ``format``."""
    if format not in ADAPTERS:
        raise KeyError(f"unknown dataset format {format!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[format](Path(root), **options)


__all__ = ["ADAPTERS", "CLIP_COLUMNS", "AnnotationError", "read_dataset"]
