"""Hollywood2 (Marszałek et al., CVPR 2009) as its eye-movement data set uses it (Hollywood2 EM,
Mathe & Sminchisescu): clips with gaze and no captions, in the data set's own split.

Layout under the data set's root: ``<video_dir>/actioncliptrain00001.avi``, …,
``actioncliptest00001.avi`` (the release's ``AVIClips``; ``video_extensions`` and
``video_dir`` are options). One clip per video, the whole file. The split is the release's,
read from the name: ``actioncliptrain*`` (and ``autotrain*``, the automatically annotated
training clips) are training clips, ``actioncliptest*`` test clips; a ``val_fraction`` of the
training clips, chosen by a stable hash of the name (adding clips moves no other), validates.
A video named otherwise is an error naming it. The clips have no sentences, so only tasks that
read no text (gaze prediction) can run on them; their fixations come through the
``per_subject`` gaze layout (`vlpipe.datasets.gaze`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vlpipe.datasets.base import (
    AnnotationError,
    DatasetTables,
    check_clip_table,
    safe_clip_id,
    stable_position,
    video_files,
)

VIDEO_EXTENSIONS = (".avi", ".mp4")
NAME_SPLITS = (("actioncliptrain", "train"), ("autotrain", "train"), ("actioncliptest", "test"))


def _split(name: str, val_fraction: float, path: Path) -> str:
    for prefix, split in NAME_SPLITS:
        if re.fullmatch(rf"{prefix}\d+", name):
            if split == "train" and stable_position(name) < val_fraction:
                return "val"
            return split
    raise AnnotationError(f"{path}: not a Hollywood2 clip name (actioncliptrain<n>, "
                          "autotrain<n> or actioncliptest<n>): its split is unknown")


def read_hollywood2(root: Path, video_dir: str = "AVIClips",
                    video_extensions: Sequence[str] = VIDEO_EXTENSIONS,
                    val_fraction: float = 0.1) -> DatasetTables:
    """The clip table of a Hollywood2 video directory (no task lists: they need captions)."""
    if not isinstance(val_fraction, int | float) or not 0 < val_fraction < 1:
        raise AnnotationError(f"dataset option val_fraction={val_fraction!r}: a fraction in "
                              "(0, 1) of the training clips")
    videos = video_files(root, video_dir, video_extensions)
    rows = [{"clip_id": safe_clip_id(video.stem, "clip id", str(video)),
             "video_path": str(video), "start": 0.0, "end": math.nan,
             "split": _split(video.stem, val_fraction, video), "sentences": []}
            for video in videos]
    return DatasetTables(check_clip_table(pd.DataFrame(rows), str(root / video_dir),
                                          captioned=False))


def hollywood2_files(root: Path, options: dict) -> list[str]:
    """No annotation file: the clips and their split are the video directory's names."""
    return []
