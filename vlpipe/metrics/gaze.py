"""Gaze-prediction metrics of RGP (thesis ch. 3, Table 3.2): Sim, CC, shuffled AUC, Judd AUC.

Protocol (thesis §3.4.1): the model's 49×49 gaze map is smoothed with a Gaussian of σ = 2 cells,
upsampled bilinearly to the evaluation size and min-max normalised (`prediction_saliency`); the
ground truth is the frame's fixation points drawn on the evaluation grid, blurred with a Gaussian
of σ = 19 px and min-max normalised (`fixation_saliency`). Sim and CC compare those two maps; the
AUCs score the prediction as a classifier of the fixated pixels (`fixation_mask`).

Conventions:

- Maps are indexed ``[row, column]`` = ``[y, x]``, row 0 at the top; ``size`` is ``(H, W)``.
  A point (x, y) in [0, 1]² falls in pixel ``(min(⌊y·H⌋, H−1), min(⌊x·W⌋, W−1))``, as the
  49×49 grid of `vlpipe.gaze_maps`; a point outside [0, 1]² is a ValueError.
- Bilinear upsampling uses pixel-centre alignment (``align_corners=False``: output pixel i sits
  at input coordinate (i + ½)·n_in/n_out − ½, clamped to the edge pixels), the convention of
  MATLAB ``imresize``, OpenCV ``INTER_LINEAR`` and torch's default.
- The prediction is smoothed with ``mode="nearest"`` (edge replicated, MATLAB ``imgaussfilt``'s
  default), so smoothing adds no centre bias of its own: a uniform map stays uniform. Fixations
  are blurred with ``mode="constant"`` (nothing is fixated outside the frame, as in
  `vlpipe.gaze_maps`); each point adds 1, so a pixel fixated by two subjects weighs twice.
- Min-max normalisation maps a constant map (range ≤ 1e-12 of its largest magnitude, i.e.
  rounding noise that scaling would blow up) to all zeros: it ranks nothing. So a flat
  prediction (the uniform baseline) scores chance: Sim reads an all-zero map as the uniform
  distribution, CC with a constant map is defined as 0 (Pearson's r is 0/0 there; pysaliency
  also returns 0) and both AUCs give exactly 0.5.
- Judd AUC (Judd et al. 2009): thresholds at the distinct saliency values of the fixated
  pixels, TPR = fixated pixels at or above the threshold / fixated pixels, FPR = negative pixels
  at or above it / negative pixels, with (0, 0) and (1, 1) added, trapezoid area. Negatives are
  the unfixated pixels by default (the MIT benchmark's ``AUC_Judd.m``) or all pixels
  (``negatives="all"``: Judd's "percent salient", pysaliency's ``nonfixations="uniform"``).
  Tied pixels cross a threshold together, counted exactly: the expected curve of AUC_Judd.m's
  random jitter, without the noise; without ties the result equals AUC_Judd.m's.
- Shuffled AUC (Borji et al.): positives = the saliency at this frame's fixated pixels,
  negatives = the saliency at the pixels fixated in OTHER frames/clips (the caller's choice; Borji
  uses the union over 10 other images). It is the exact area over all thresholds, the
  Mann-Whitney statistic with ties counted ½, rather than the MIT code's 100 random splits of
  as many negatives as fixations at thresholds 0.1 apart. A centre-biased map on centre-biased
  fixations scores ≈ 0.5: the metric discounts central bias.

Reference implementations on PyPI, tried and not used: pysaliency 0.2.22 ships only an sdist
whose Cython extension must be compiled, and pulls numba, imageio, requests and six more;
saliencytools 0.35 compares XAI attribution maps (imports torch), its "AUC-Judd" a distance
against a mean-binarised map; saliency-metrics and salmetrics are not on PyPI. The tests check
Judd AUC against a line-by-line transcription of the MIT ``AUC_Judd.m`` loop instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.ndimage import gaussian_filter

PRED_SIGMA = 2.0  # Gaussian σ of the predicted map, in cells of its (49×49) grid
GT_SIGMA = 19.0  # Gaussian σ of the fixations, in pixels of the evaluation grid
METRICS = ("Sim", "CC", "sAUC", "AUC")
_CONSTANT_RTOL = 1e-12


def _size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"size must be (H, W) positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _map(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D map, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _map(a, "first map"), _map(b, "second map")
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _is_constant(x: np.ndarray) -> bool:
    return float(np.ptp(x)) <= _CONSTANT_RTOL * float(np.abs(x).max())


def min_max(x: np.ndarray) -> np.ndarray:
    """``(x − min) / (max − min)`` as float64 in [0, 1]; a constant map gives all zeros."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("min-max needs a non-empty, finite map")
    if _is_constant(x):
        return np.zeros_like(x)
    return (x - x.min()) / np.ptp(x)


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) 1-D linear interpolation, pixel centres aligned, edges clamped."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), lo), 1 - frac)
    np.add.at(weights, (np.arange(n_out), hi), frac)
    return weights


def bilinear_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``x`` (h, w) resized bilinearly to ``size`` (H, W) with pixel-centre alignment."""
    x = _map(x, "map")
    height, width = _size(size)
    return _linear_weights(x.shape[0], height) @ x @ _linear_weights(x.shape[1], width).T


def prediction_saliency(prediction: np.ndarray, size: tuple[int, int],
                        sigma: float = PRED_SIGMA) -> np.ndarray:
    """A predicted gaze map (49×49, or any (h, w)) as an evaluation map (H, W) float64 in [0, 1]:
    Gaussian σ = ``sigma`` input cells (edges replicated), bilinear upsampling, min-max."""
    pred = _map(prediction, "prediction")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    smooth = gaussian_filter(pred, sigma, mode="nearest") if sigma > 0 else pred
    return min_max(bilinear_resize(smooth, size))


def _points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"fixation points must be (K, 2) normalised (x, y), got {points.shape}")
    if not (np.isfinite(points).all() and (points >= 0).all() and (points <= 1).all()):
        raise ValueError("fixation points must be normalised (x, y) in [0, 1]")
    return points


def _pixels(points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of normalised points on an (H, W) grid."""
    height, width = _size(size)
    points = _points(points)
    cols = np.minimum((points[:, 0] * width).astype(np.int64), width - 1)
    rows = np.minimum((points[:, 1] * height).astype(np.int64), height - 1)
    return rows, cols


def fixation_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) bool map of pixels holding at least one of ``points`` (K, 2) = normalised
    (x, y); K = 0 gives all False."""
    mask = np.zeros(_size(size), dtype=bool)
    mask[_pixels(points, size)] = True
    return mask


def fixation_saliency(points: np.ndarray, size: tuple[int, int],
                      sigma: float = GT_SIGMA) -> np.ndarray:
    """The ground-truth map (H, W) float64 in [0, 1] of ``points`` (K ≥ 1, 2): each point adds 1
    at its pixel, Gaussian σ = ``sigma`` px (zero outside the frame), min-max normalised."""
    rows, cols = _pixels(points, size)
    if len(rows) == 0:
        raise ValueError("fixation_saliency needs at least one fixation point")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    counts = np.zeros(_size(size))
    np.add.at(counts, (rows, cols), 1.0)
    return min_max(gaussian_filter(counts, sigma, mode="constant"))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Sim: Σ min(a/Σa, b/Σb) over pixels, in [0, 1] (1 iff the normalised maps are equal).

    Maps must be non-negative (min-max normalise first); an all-zero map counts as uniform."""
    a, b = _pair(a, b)
    if (a < 0).any() or (b < 0).any():
        raise ValueError("Sim needs non-negative maps (min-max normalise them first)")

    def density(x: np.ndarray) -> np.ndarray:
        total = x.sum()
        return x / total if total > 0 else np.full_like(x, 1.0 / x.size)

    return float(np.minimum(density(a), density(b)).sum())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """CC: Pearson's linear correlation of the two maps' pixels, in [−1, 1]; 0 when either map
    is constant (range ≤ 1e-12 of its largest magnitude: it says nothing about where gaze goes).
    """
    a, b = _pair(a, b)
    if _is_constant(a) or _is_constant(b):
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), -1.0, 1.0))


def _auc_inputs(saliency: np.ndarray, mask: np.ndarray, name: str) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    saliency = _map(saliency, "saliency")
    mask = np.asarray(mask)
    if mask.shape != saliency.shape or mask.dtype != bool:
        raise ValueError(f"{name} must be a bool map of the saliency's shape {saliency.shape}, "
                         f"got {mask.dtype} {mask.shape}")
    if not mask.any():
        raise ValueError(f"{name} has no fixated pixel")
    return saliency, mask


def judd_auc(saliency: np.ndarray, mask: np.ndarray,
             negatives: Literal["unfixated", "all"] = "unfixated") -> float:
    """Judd AUC of ``saliency`` (H, W) as a classifier of the fixated pixels ``mask`` (H, W) bool.

    Thresholds are the distinct saliency values at fixated pixels; TPR is over fixated pixels,
    FPR over the unfixated pixels (``negatives="unfixated"``, MIT ``AUC_Judd.m``) or all of
    them (``"all"``)."""
    saliency, mask = _auc_inputs(saliency, mask, "fixation mask")
    if negatives == "all":
        neg = saliency.ravel()
    elif negatives == "unfixated":
        neg = saliency[~mask]
        if neg.size == 0:
            raise ValueError("every pixel is fixated: no unfixated negatives")
    else:
        raise ValueError(f"negatives must be 'all' or 'unfixated', got {negatives!r}")
    pos = np.sort(saliency[mask])
    neg = np.sort(neg)
    thresholds = np.unique(pos)[::-1]  # descending
    tpr = (pos.size - np.searchsorted(pos, thresholds, side="left")) / pos.size
    fpr = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size
    tpr = np.concatenate([[0.0], tpr, [1.0]])
    fpr = np.concatenate([[0.0], fpr, [1.0]])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def shuffled_auc(saliency: np.ndarray, mask: np.ndarray, other_mask: np.ndarray) -> float:
    """Shuffled AUC: ``saliency`` at this frame's fixated pixels ``mask`` (positives) against it
    at the pixels ``other_mask`` fixated in other frames (negatives); both (H, W) bool.

    P(positive > negative) + ½·P(equal), the ROC area over all thresholds."""
    saliency, mask = _auc_inputs(saliency, mask, "fixation mask")
    _, other_mask = _auc_inputs(saliency, other_mask, "shuffled (other) fixation mask")
    pos = saliency[mask]
    neg = np.sort(saliency[other_mask])
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float(np.mean(below + 0.5 * equal) / neg.size)


def gaze_scores(prediction: np.ndarray, points: np.ndarray, other_points: np.ndarray,
                size: tuple[int, int], sigma: float = GT_SIGMA,
                prediction_sigma: float = PRED_SIGMA, *,
                judd_negatives: Literal["unfixated", "all"] = "unfixated") -> dict[str, float]:
    """One frame's ``{"Sim", "CC", "sAUC", "AUC"}``.

    prediction: the predicted map (49, 49); points (K ≥ 1, 2) this frame's fixations and
    other_points (M ≥ 1, 2) other frames'/clips' fixations (the shuffled AUC's negatives), both
    normalised (x, y); size (H, W) evaluation pixels; sigma the fixations' Gaussian σ (px),
    prediction_sigma the prediction's (cells). A frame without fixations has no ground truth:
    ValueError (`mean_gaze_scores` skips and counts such frames).
    """
    if len(_points(points)) == 0:
        raise ValueError("gaze_scores needs the frame's fixations (K ≥ 1); none given")
    if len(_points(other_points)) == 0:
        raise ValueError("shuffled AUC needs negatives (other frames' fixations); none given")
    saliency = prediction_saliency(prediction, size, prediction_sigma)
    truth = fixation_saliency(points, size, sigma)
    mask = fixation_mask(points, size)
    return {
        "Sim": similarity(saliency, truth),
        "CC": correlation(saliency, truth),
        "sAUC": shuffled_auc(saliency, mask, fixation_mask(other_points, size)),
        "AUC": judd_auc(saliency, mask, judd_negatives),
    }


def mean_gaze_scores(predictions: Sequence[np.ndarray], points: Sequence[np.ndarray | None],
                     other_points: Sequence[np.ndarray], size: tuple[int, int],
                     sigma: float = GT_SIGMA, **kwargs) -> dict[str, float]:
    """`gaze_scores` averaged over frames, plus ``"frames"`` (scored) and ``"skipped"``.

    predictions[i], points[i], other_points[i] are frame i's (as in `gaze_scores`, which kwargs
    go to). A frame whose points are None or empty has no ground truth: it is skipped, counted
    in ``"skipped"`` and never averaged in; every frame skipped is a ValueError."""
    if not len(predictions) == len(points) == len(other_points):
        raise ValueError(f"predictions, points and other_points differ in length: "
                         f"{len(predictions)}, {len(points)}, {len(other_points)}")
    scores = [gaze_scores(pred, pts, neg, size, sigma, **kwargs)
              for pred, pts, neg in zip(predictions, points, other_points, strict=True)
              if pts is not None and len(pts)]
    if not scores:
        raise ValueError(f"no frame has fixations (all {len(predictions)} skipped)")
    means = {name: float(np.mean([s[name] for s in scores])) for name in METRICS}
    return {**means, "frames": len(scores), "skipped": len(predictions) - len(scores)}
