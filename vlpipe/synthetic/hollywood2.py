"""The world in Hollywood2 EM's layout: clips named by split, pictures of several sizes, and the
viewers' gaze as per-subject eye-tracker exports (``WorldConfig.hollywood2``).

Hollywood2's eye-movement release (Mathe & Sminchisescu) has no captions and its own split, read
from the clip names; its movie clips differ in picture size, and each subject's SMI recording
of each clip is a file of its own. The world's clips, in index order, are written again as::

    hollywood2/AVIClips/actioncliptrain00001.mp4 …   the world's train and validate clips
    hollywood2/AVIClips/actioncliptest00001.mp4 …    its test clips (numbered from 1 per split,
                                                     as the release numbers them)
    hollywood2/gaze/s01/actioncliptrain00001.txt …   subject 1's samples on that clip: lines
                                                     ``time_ms x y`` in pixels of the clip's
                                                     picture, after a ``#`` comment header

Hollywood2 has no validation split: the adapter carves one from the training names by a stable
hash (``vlpipe.datasets.hollywood2``), so the world's validate clips are training clips here.
Each clip's picture is its rendered square frame pillarboxed (black bars left and right, the
content centred) to the width of ``ASPECTS[index % 3]``, as a film's frame is letterboxed into
its video: the gaze pixels are shifted by the left bar, so only a reader that divides each
clip's pixels by that clip's own size (``frame_size: video``) recovers the samples' fractions
of the picture. The gaze adapter reads this with ``hollywood2_gaze_settings()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlpipe.atomic import write_text
from vlpipe.synthetic.gaze import Fixation
from vlpipe.synthetic.writer import write_clip

HOLLYWOOD2_DIR = "hollywood2"
VIDEO_DIR = f"{HOLLYWOOD2_DIR}/AVIClips"
GAZE_DIR = f"{HOLLYWOOD2_DIR}/gaze"
ASPECTS = (1.0, 4 / 3, 16 / 9)  # picture width ÷ height, by clip index modulo 3


def clip_names(splits: Sequence[str]) -> list[str]:
    """Each clip's Hollywood2 name, given the world's split of every clip in index order:
    ``actioncliptest<n>`` for test clips, ``actioncliptrain<n>`` for the others, ``n`` counted
    from 1 within each and written with 5 digits."""
    counts = {"train": 0, "test": 0}
    names = []
    for split in splits:
        kind = "test" if split == "test" else "train"
        counts[kind] += 1
        names.append(f"actionclip{kind}{counts[kind]:05d}")
    return names


def picture_width(index: int, size: int) -> int:
    """Clip ``index``'s picture width: ``size`` × its aspect ratio, rounded to an even number
    (yuv420p); the height is ``size``."""
    return 2 * round(size * ASPECTS[index % len(ASPECTS)] / 2)


def pillarbox(frames: np.ndarray, width: int) -> np.ndarray:
    """T×S×S×3 frames centred in black T×S×``width``×3 pictures."""
    left = (width - frames.shape[2]) // 2
    out = np.zeros((*frames.shape[:2], width, 3), frames.dtype)
    out[:, :, left:left + frames.shape[2]] = frames
    return out


def hollywood2_videos(names: Sequence[str]) -> list[str]:
    """The clips' video files, relative to the world's root."""
    return [f"{VIDEO_DIR}/{name}.mp4" for name in names]


def subject_dir(subject: int) -> str:
    """Subject ``subject``'s (0-based) directory name: ``s01`` for subject 0."""
    return f"s{subject + 1:02d}"


def hollywood2_gaze_files(names: Sequence[str], n_subjects: int) -> list[str]:
    """Every subject's file of every clip, relative to the world's root."""
    return [f"{GAZE_DIR}/{subject_dir(subject)}/{name}.txt"
            for subject in range(n_subjects) for name in names]


def hollywood2_gaze_settings() -> dict:
    """The gaze adapter's settings (``vlpipe.datasets.gaze``) that read these files."""
    return {"layout": "per_subject", "dir": GAZE_DIR, "frame_size": "video"}


def write_hollywood2_clip(root: Path, index: int, name: str, frames: np.ndarray, fps: int,
                          waveform: np.ndarray | None, audio_rate: int) -> None:
    """Clip ``index`` (its rendered square ``frames``) pillarboxed, as ``name``."""
    width = picture_width(index, frames.shape[1])
    write_clip(root / VIDEO_DIR / f"{name}.mp4", pillarbox(frames, width), fps, waveform,
               audio_rate)


def write_hollywood2_gaze(root: Path, index: int, name: str, size: int, n_subjects: int,
                          samples: Sequence[Fixation]) -> None:
    """Clip ``index``'s samples (fractions of its square frame) as one file per subject, in
    pixels of its pillarboxed picture."""
    left = (picture_width(index, size) - size) / 2
    lines: dict[int, list[str]] = {subject: [] for subject in range(n_subjects)}
    for subject, time, x, y in samples:
        lines[subject].append(f"{1000 * time:.1f} {left + x * size:.2f} {y * size:.2f}\n")
    for subject, rows in lines.items():
        header = f"# vlpipe synthetic viewer {subject_dir(subject)}, {name}: time_ms x y\n"
        write_text(root / GAZE_DIR / subject_dir(subject) / f"{name}.txt",
                   header + "".join(rows))
