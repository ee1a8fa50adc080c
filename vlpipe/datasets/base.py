"""Shared pieces of the dataset adapters: the canonical columns and row-numbered errors."""

from __future__ import annotations

import math

import pandas as pd

CLIP_COLUMNS = ["clip_id", "video_path", "start", "end", "split", "sentences"]
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validate": "val", "validation": "val", "test": "test", "public_test": "test"}


class AnnotationError(ValueError):
    """A malformed annotation: the message names the file and the row."""


def normalise_split(value: object, where: str) -> str:
    split = SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise AnnotationError(f"{where}: unknown split {value!r}; expected one of "
                              f"{sorted(set(SPLIT_ALIASES))}")
    return split


def check_clip_table(clips: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validate the canonical table an adapter built; errors name the source and clip."""
    duplicated = clips["clip_id"][clips["clip_id"].duplicated()]
    if len(duplicated):
        raise AnnotationError(f"{source}: duplicate clip id(s) {sorted(set(duplicated))[:5]}")
    for row in clips.itertuples():
        if row.start < 0 or (not math.isnan(row.end) and row.end <= row.start):
            raise AnnotationError(f"{source}: clip {row.clip_id!r} has start={row.start} "
                                  f"end={row.end}; need 0 <= start < end")
        if not row.sentences or any(not s.strip() for s in row.sentences):
            raise AnnotationError(f"{source}: clip {row.clip_id!r} has an empty sentence")
    return clips[CLIP_COLUMNS].reset_index(drop=True)
