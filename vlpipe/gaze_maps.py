"""Ground-truth gaze maps (RGP, thesis ch. 3) and the gaze store that holds them.

Following the thesis (after Mathe & Sminchisescu), a frame's ground truth is built from its
fixation samples: a ``grid``×``grid`` (49×49) binary fixation map (a cell is 1 if any sample
falls in it), smoothed with a Gaussian of σ = 2 cells (``scipy.ndimage.gaussian_filter``,
``mode="constant"``: nothing outside the frame) and ℓ1-normalised, a probability distribution
over the cells. Maps are indexed ``[row, column]`` = ``[y, x]``, row 0 at the top; a point
(x, y) in [0, 1]² falls in cell ``(min(⌊y·grid⌋, grid−1), min(⌊x·grid⌋, grid−1))``.

Gaze store (``write_gaze_store``; a feature store, ``vlpipe.features.store``), per clip of the
clip table, one step per sampled frame at ``k / fps`` s for every k with that time before the
clip's end; frame k's fixations are the samples with time in ``[k/fps, (k+1)/fps)``::

    step/map        (S, grid, grid) float32   the GT map; all zeros for a frame without gaze
    step/has_gaze   (S,) uint8                1 where the frame has at least one sample
    step/frame      (S,) int32                k, the frame's index within its clip
    instance/point  (I, 2) float32            each sample's normalised (x, y)
    instance/subject (I,) int32               index into attrs["subjects"] (sorted names)
    instance/step   (I,) int32                the frame (step of its clip) the sample is in

attrs: ``provenance`` shaped like an extractor store's (extractor ``"gaze"``, ``weights``
``"fixations"``: made from human/simulated fixations, no network), ``subjects``, ``counts``
(clips, clips without any gaze, frames, frames with gaze, samples stored, samples dropped
because they fall after the clip's end or belong to a clip not in the table) and
``clips_without_gaze`` (ids). A clip's identity hashes its duration and samples.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from vlpipe import __version__
from vlpipe.features.store import ClipFeatures, StoreWriter

log = logging.getLogger(__name__)

GRID = 49
SIGMA = 2.0
STORE_VERSION = 1
WEIGHTS = "fixations"  # not a network's weights: the maps are made from recorded fixations
EPS = 1e-6  # times this close below a frame boundary count as on it (decimal rounding)


def fixation_grid(points: np.ndarray, grid: int = GRID) -> np.ndarray:
    """The ``(grid, grid)`` uint8 binary fixation map of ``points`` ``(K, 2)`` = normalised
    (x, y) in [0, 1]; K = 0 gives all zeros. A point outside [0, 1]² is a ValueError."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not (np.isfinite(points).all() and (points >= 0).all() and (points <= 1).all()):
        raise ValueError("fixation points must be normalised (x, y) in [0, 1]")
    cells = np.minimum((points * grid).astype(np.int64), grid - 1)
    binary = np.zeros((grid, grid), np.uint8)
    binary[cells[:, 1], cells[:, 0]] = 1
    return binary


def gaze_map(points: np.ndarray, grid: int = GRID, sigma: float = SIGMA) -> np.ndarray | None:
    """The ground-truth gaze map of one frame's fixation ``points`` ``(K, 2)``: the binary
    fixation map, Gaussian-smoothed (σ in cells, zero outside the grid) and ℓ1-normalised,
    ``(grid, grid)`` float32 summing to 1. None when there are no points (no map to
    normalise: the store writes zeros and ``has_gaze`` 0)."""
    binary = fixation_grid(points, grid)
    if not binary.any():
        return None
    smooth = gaussian_filter(binary.astype(np.float64), sigma, mode="constant")
    return (smooth / smooth.sum()).astype(np.float32)


def _durations(clips: pd.DataFrame, durations: dict[str, float] | None,
               last_sample: dict[str, float]) -> dict[str, float]:
    """Each clip's duration: ``durations`` where given, else the table's ``duration`` column,
    else ``end - start``; where the table does not know the end (NaN: until the end of the
    file, as the MSR-VTT and LSMDC adapters give whole-file clips), just past its last gaze
    sample (0 for a clip without any). A non-positive known duration is a ValueError."""
    out = {}
    for row in clips.itertuples(index=False):
        clip_id = str(row.clip_id)
        value = (durations or {}).get(clip_id, math.nan)
        if math.isnan(value) and "duration" in clips.columns:
            value = float(row.duration)
        if math.isnan(value) and "end" in clips.columns:
            value = float(row.end) - float(getattr(row, "start", 0.0))
        if math.isnan(value):
            value = last_sample[clip_id] + 2 * EPS if clip_id in last_sample else 0.0
        elif not value > 0:
            raise ValueError(f"clip {clip_id!r}: duration {value} <= 0")
        out[clip_id] = value
    return out


def _identity(duration: float, samples: pd.DataFrame) -> str:
    digest = hashlib.sha256(f"{duration!r}|".encode())
    digest.update("\0".join(samples["subject"].astype(str)).encode())
    digest.update(samples[["time", "x", "y"]].to_numpy(np.float64).tobytes())
    return digest.hexdigest()[:16]


def _clip(clip_id: str, duration: float, samples: pd.DataFrame, fps: float, grid: int,
          sigma: float, subjects: dict[str, int]) -> tuple[ClipFeatures, int]:
    """One clip's rows, and how many of its samples fall after its end."""
    steps = math.ceil(duration * fps - EPS)
    frame = np.floor(samples["time"].to_numpy(np.float64) * fps + EPS).astype(np.int64)
    inside = frame < steps
    samples, frame = samples[inside], frame[inside]
    points = samples[["x", "y"]].to_numpy(np.float32)
    maps = np.zeros((steps, grid, grid), np.float32)
    has_gaze = np.zeros(steps, np.uint8)
    for k in np.unique(frame):
        maps[k] = gaze_map(points[frame == k], grid, sigma)
        has_gaze[k] = 1
    arrays = {"map": maps, "has_gaze": has_gaze, "frame": np.arange(steps, dtype=np.int32),
              "point": points, "subject": samples["subject"].map(subjects).to_numpy(np.int32),
              "step": frame.astype(np.int32)}
    features = ClipFeatures(clip_id, _identity(duration, samples),
                            (np.arange(steps) / fps).astype(np.float32), arrays)
    return features, int((~inside).sum())


def write_gaze_store(path: str | Path, fixations: pd.DataFrame, clips: pd.DataFrame,
                     fps: float, grid: int = GRID, sigma: float = SIGMA,
                     durations: dict[str, float] | None = None,
                     code: dict | None = None) -> dict:
    """Write the gaze store (module docstring) of every clip of ``clips`` from ``fixations``
    (the gaze adapter's canonical table) at ``fps`` sampled frames per second; return its
    attrs. ``clips`` needs ``clip_id`` and a duration (``durations``, a ``duration`` column,
    or ``start`` and ``end``); ``code`` (``vlpipe.provenance.code_identity``) is recorded
    when given."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    lengths = _durations(clips, durations, fixations.groupby("clip_id")["time"].max().to_dict())
    subjects = {name: k for k, name in enumerate(sorted(set(fixations["subject"].astype(str))))}
    ordered = fixations.assign(subject=fixations["subject"].astype(str)).sort_values(
        ["clip_id", "time"], kind="stable")
    by_clip = dict(tuple(ordered.groupby("clip_id", sort=False)))
    empty = ordered.iloc[:0]
    counts = {"clips": len(lengths), "clips_without_gaze": 0, "frames": 0,
              "frames_with_gaze": 0, "samples": 0, "samples_after_end": 0,
              "samples_unknown_clip": int(sum(len(v) for c, v in by_clip.items()
                                              if c not in lengths))}
    arrays = {"map": ((grid, grid), "float32", "step"), "has_gaze": ((), "uint8", "step"),
              "frame": ((), "int32", "step"), "point": ((2,), "float32", "instance"),
              "subject": ((), "int32", "instance"), "step": ((), "int32", "instance")}
    settings = {"fps": float(fps), "grid": int(grid), "sigma": float(sigma)}
    provenance = {"extractor": "gaze", "extractor_version": STORE_VERSION, "weights": WEIGHTS,
                  "needs": {"kind": "Fixations", **settings},
                  "outputs": {name: [list(shape), dtype, axis]
                              for name, (shape, dtype, axis) in arrays.items()},
                  "primary": "map", "settings": settings}
    attrs = {"provenance": provenance, "vlpipe_version": __version__,
             "subjects": list(subjects), "quarantined": {}}
    if code is not None:
        attrs["code"] = code
    without = []
    writer = StoreWriter(path, arrays, attrs)
    try:
        for clip_id, duration in lengths.items():
            features, late = _clip(clip_id, duration, by_clip.get(clip_id, empty), fps, grid,
                                   sigma, subjects)
            has_gaze = features.arrays["has_gaze"]
            if not has_gaze.any():
                without.append(clip_id)
            counts["frames"] += len(has_gaze)
            counts["frames_with_gaze"] += int(has_gaze.sum())
            counts["samples"] += len(features.arrays["point"])
            counts["samples_after_end"] += late
            writer.add(features)
    except BaseException as error:
        writer.abort(error)
        raise
    counts["clips_without_gaze"] = len(without)
    if counts["samples_after_end"] or counts["samples_unknown_clip"]:
        log.warning("%s: dropped %d samples after their clip's end and %d of clips not in the "
                    "clip table", path, counts["samples_after_end"],
                    counts["samples_unknown_clip"])
    writer.attrs.update(counts=counts, clips_without_gaze=without)
    return writer.close()
