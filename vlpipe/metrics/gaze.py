"""Gaze-prediction metrics as the thesis (ch. 3.4.1, after Mathe & Sminchisescu and the MIT
saliency benchmark) scores RGP: Similarity, linear correlation (CC), shuffled AUC and Judd AUC.

The predicted 49×49 map is smoothed with a Gaussian (σ = 2 cells), upsampled bilinearly to the
evaluation size and min-max normalised; the ground truth is the frame's fixation points drawn
on that grid, blurred with a Gaussian (σ = 19 px in the thesis, at the original frame size) and
min-max normalised. AUCs read the fixated pixels themselves. Maps are (H, W) arrays indexed
[row, column] = [y, x]; a point (x, y) ∈ [0, 1]² is pixel (⌊y·H⌋, ⌊x·W⌋), clipped to the grid.
Pure numpy/scipy; no maintained implementation is pinned (pysaliency pulls a compiled
extension and its own stack, not worth a dependency for four formulas tested here).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom
from scipy.stats import rankdata


def min_max(saliency: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1]; a constant map (to 10⁻⁹ of its scale: smoothing leaves rounding
    noise that scaling would blow up) becomes all zeros."""
    low, high = float(saliency.min()), float(saliency.max())
    if high - low <= 1e-9 * max(abs(high), abs(low)):
        return np.zeros_like(saliency, float)
    return (saliency - low) / (high - low)


def prediction_saliency(prediction: np.ndarray, size: tuple[int, int],
                        sigma: float = 2.0) -> np.ndarray:
    """A predicted (g, g) map → (H, W): Gaussian σ (cells; edges extended, so a uniform map
    stays uniform rather than gaining a central bias), bilinear upsampling (pixel centres
    aligned, ``scipy.ndimage.zoom`` order 1, grid_mode), min-max normalised."""
    smooth = gaussian_filter(np.asarray(prediction, np.float64), sigma, mode="nearest")
    scale = (size[0] / smooth.shape[0], size[1] / smooth.shape[1])
    upsampled = zoom(smooth, scale, order=1, mode="nearest", grid_mode=True)
    return min_max(upsampled[: size[0], : size[1]])


def fixation_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels of the (K, 2) normalised (x, y) points."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    mask = np.zeros(size, bool)
    rows = np.clip((points[:, 1] * size[0]).astype(int), 0, size[0] - 1)
    cols = np.clip((points[:, 0] * size[1]).astype(int), 0, size[1] - 1)
    mask[rows, cols] = True
    return mask


def fixation_saliency(points: np.ndarray, size: tuple[int, int],
                      sigma: float = 19.0) -> np.ndarray:
    """The ground-truth (H, W) map: fixated pixels blurred with a Gaussian σ (px), min-max."""
    if len(points) == 0:
        raise ValueError("a ground-truth gaze map needs at least one fixation")
    return min_max(gaussian_filter(fixation_mask(points, size).astype(np.float64), sigma,
                                   mode="constant"))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Sim: Σ min(a/Σa, b/Σb) — 1 for identical distributions, 0 for disjoint ones."""
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes: {a.shape} and {b.shape}")
    if a.sum() <= 0 or b.sum() <= 0:
        raise ValueError("Sim needs two maps with positive mass")
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """CC: Pearson's correlation of the two maps' pixels; 0 when either map is constant (it
    says nothing about where gaze goes)."""
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes: {a.shape} and {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def judd_auc(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Judd AUC: each fixated pixel's saliency is a threshold; the true-positive rate is the
    share of fixated pixels at or above it, the false-positive rate the share of the other
    pixels at or above it; the area under that curve from (0, 0) to (1, 1). As the MIT
    benchmark's ``AUC_Judd`` (jitter on), a tiny noise (10⁻⁷, seeded) breaks ties, so a flat
    map ranks pixels at random (≈ 0.5) instead of putting every fixation last."""
    saliency = saliency + np.random.default_rng(0).random(saliency.shape) * 1e-7
    positives = np.sort(saliency[mask])[::-1]
    if len(positives) == 0 or mask.all():
        raise ValueError("Judd AUC needs fixated and non-fixated pixels")
    values = np.sort(saliency.ravel())
    above = len(values) - np.searchsorted(values, positives, side="left")  # pixels ≥ threshold
    tp = np.arange(1, len(positives) + 1) / len(positives)
    fp = (above - np.arange(1, len(positives) + 1)) / (saliency.size - len(positives))
    return float(np.trapezoid(np.r_[0.0, tp, 1.0], np.r_[0.0, fp, 1.0]))


def shuffled_auc(saliency: np.ndarray, mask: np.ndarray, other_mask: np.ndarray) -> float:
    """Shuffled AUC: the probability that a fixated pixel of this frame is more salient than a
    pixel fixated in other frames (ties count half) — a central bias alone scores 0.5."""
    positives, negatives = saliency[mask], saliency[other_mask]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("shuffled AUC needs this frame's fixations and other frames'")
    ranks = rankdata(np.r_[positives, negatives])  # Mann–Whitney U, average ranks for ties
    u = ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u / (len(positives) * len(negatives)))


def gaze_scores(prediction: np.ndarray, points: np.ndarray, other_points: np.ndarray,
                size: tuple[int, int], sigma: float = 19.0,
                prediction_sigma: float = 2.0) -> dict[str, float]:
    """One frame's Sim, CC, sAUC and AUC: its predicted (g, g) map against its fixation points
    (K, 2), with other frames' points as the shuffled AUC's negatives."""
    predicted = prediction_saliency(prediction, size, prediction_sigma)
    truth = fixation_saliency(points, size, sigma)
    mask = fixation_mask(points, size)
    return {"Sim": similarity(predicted + 1e-12, truth),
            "CC": correlation(predicted, truth),
            "sAUC": shuffled_auc(predicted, mask, fixation_mask(other_points, size)),
            "AUC": judd_auc(predicted, mask)}
