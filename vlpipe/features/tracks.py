"""Person tracks read through feature grids: CiSIN's Visual Track Embedding (thesis §6.3.2),
from a track's boxes over time and a clip's per-step (h, w, C) feature grids.

- **motion** ``i_m``: the grid of each step the track is in, mean-pooled over the box (cells
  weighted by the fraction of their area inside it), then averaged over those steps — the
  thesis's "mean-pooling over the cropped spatio-temporal tensor" of I3D — beside the mean
  absolute change of that pooled feature from step to step (2C wide): I3D's channels see
  motion, a per-frame CNN's grid does not, and the change is what tells a blink, a spin or a
  growth from standing still (zero for a track in one step);
- **appearance** ``h_m``: the same pooling at the track's representative step, the one of its
  largest box (the thesis's representative image; its "+ Human bbox" embedding);
- **metadata** ``m_m``: the representative box's centre (x, y) and area, and the track's length,
  as fractions of the frame and of the clip's duration;
- **face** ``f_m`` (tracks with faces, `vlpipe.features.person_tracks`): the mean of its faces'
  embeddings, L2-normalised;
- **body parts** (tracks with pose keypoints): at the representative step, the appearance grid's
  cell under each of the 17 keypoints the persons extractor kept (confidence above its
  threshold), the thesis's "keypoints indexing the ResNet grid of the representative image".

A track is in the steps within its time span (widened by half the spacing of its boxes), each
with its box nearest in time, if within half the spacing of the steps or of the boxes
(whichever is larger); a track in no step gets the step nearest its middle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlpipe.features.person_tracks import Track, spacing

META = 4  # x, y, area, length


@dataclass(frozen=True)
class TrackFeatures:
    motion: np.ndarray  # (2C,) mean, then mean absolute change
    appearance: np.ndarray  # (C,)
    meta: np.ndarray  # (META,)
    face: np.ndarray | None = None  # (D,) unit length; zeros for a track without faces
    has_face: bool = False
    parts: np.ndarray | None = None  # (K, C) the grid under each keypoint (zeros: not seen)
    part_seen: np.ndarray | None = None  # (K,) bool


def cell_weights(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width) weights summing to 1: each cell's area inside ``box`` (x1, y1, x2, y2
    as fractions of the frame), over the box's area in cells."""
    def overlap(lo: float, hi: float, cells: int) -> np.ndarray:
        edges = np.arange(cells + 1) / cells
        return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)

    weights = np.outer(overlap(box[1], box[3], height), overlap(box[0], box[2], width))
    total = weights.sum()
    if total <= 0:
        raise ValueError(f"box {box.tolist()} covers no cell of the frame")
    return weights / total


def pool_box(grid: np.ndarray, box: np.ndarray) -> np.ndarray:
    """grid (h, w, C), box (4,) → the box's mean feature (C,)."""
    weights = cell_weights(box, *grid.shape[:2])
    return np.einsum("hw,hwc->c", weights, grid)


def track_steps(step_times: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The steps (S,) the track is in and, per step, the index of its box there (S,)."""
    own = spacing(times)
    tolerance = max(spacing(step_times), own)
    nearest = np.abs(step_times[:, None] - times[None, :]).argmin(axis=1)  # (T,)
    inside = ((np.abs(step_times - times[nearest]) <= tolerance / 2 + 1e-6)
              & (step_times >= times[0] - own / 2 - 1e-6)
              & (step_times <= times[-1] + own / 2 + 1e-6))
    if not inside.any():
        middle = np.abs(step_times - (times[0] + times[-1]) / 2).argmin()
        return np.array([middle]), np.array([np.abs(times - step_times[middle]).argmin()])
    steps = np.flatnonzero(inside)
    return steps, nearest[steps]


def body_parts(grid: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """grid (h, w, C), keypoints (K, 3) x, y in [0, 1] and confidence (0: not kept) → the cell
    under each kept keypoint (K, C), zeros elsewhere, and which were kept (K,)."""
    height, width = grid.shape[:2]
    seen = keypoints[:, 2] > 0
    rows = np.minimum((keypoints[:, 1] * height).astype(int), height - 1)
    columns = np.minimum((keypoints[:, 0] * width).astype(int), width - 1)
    return np.where(seen[:, None], grid[rows, columns], 0.0).astype(np.float32), seen


def face_feature(faces: np.ndarray) -> tuple[np.ndarray, bool]:
    """faces (F, D) → their mean, unit length (zeros if F = 0), and whether there was one."""
    if not len(faces):
        return np.zeros(faces.shape[-1], np.float32), False
    mean = faces.astype(np.float32).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12), True


def track_features(motion: np.ndarray, appearance: np.ndarray, step_times: np.ndarray,
                   track: Track, duration: float) -> TrackFeatures:
    """One track's embedding from a clip's grids ``motion`` and ``appearance`` (T, h, w, C) at
    ``step_times`` (T,); ``duration``: the clip's (s). The face and body-part features are
    there when the track has ``faces`` and ``keypoints``."""
    times, boxes = track.times, track.boxes
    steps, rows = track_steps(step_times, times)
    pooled = np.stack([pool_box(motion[s], boxes[r]) for s, r in zip(steps, rows, strict=True)])
    areas = (boxes[rows, 2] - boxes[rows, 0]) * (boxes[rows, 3] - boxes[rows, 1])
    best = int(areas.argmax())
    box = boxes[rows[best]]
    interval = spacing(times) or spacing(step_times)
    length = min((times[-1] - times[0] + interval) / duration, 1.0) if duration > 0 else 1.0
    meta = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, areas[best], length],
                    np.float32)
    change = np.abs(np.diff(pooled, axis=0)).mean(axis=0) if len(pooled) > 1 else pooled[0] * 0
    face, has_face = face_feature(track.faces) if track.faces is not None else (None, False)
    parts, seen = (body_parts(appearance[steps[best]], track.keypoints[rows[best]])
                   if track.keypoints is not None else (None, None))
    return TrackFeatures(np.concatenate([pooled.mean(axis=0), change]).astype(np.float32),
                         pool_box(appearance[steps[best]], box).astype(np.float32), meta,
                         face, has_face, parts, seen)
