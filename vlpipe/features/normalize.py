"""Per-input feature normalisation, fitted on a bounded sample of the training clips.

Each input array (one extractor's block of columns) is normalised on its own, so that one
extractor's scale (e.g. random VGGish vs random ResNet activations) cannot crowd another out of
the principal components: ``zscore`` (per dimension), ``pca`` (whitened, at most ``pca_dims``
components) or ``none``. The statistics come from a sample bounded in memory
(``MAX_FIT_BYTES`` of float64 steps, all inputs side by side): all training clips when their
steps fit, else every k-th training clip — never from the whole data set at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("zscore", "pca", "none")
MAX_FIT_BYTES = 256 << 20


def max_fit_steps(width: int, max_fit_bytes: int = MAX_FIT_BYTES) -> int:
    """Steps of ``width`` float64 values that fit the fitting budget."""
    return max(1, max_fit_bytes // (8 * width))


def fit_sample(clip_ids: Sequence[str], num_steps: Sequence[int], max_steps: int) -> list[str]:
    """The clips to fit on: all of them if their steps add up to at most ``max_steps``, else
    every k-th (k = ⌈total / max_steps⌉), in the given order."""
    stride = max(1, -(-int(sum(num_steps)) // max_steps))  # ceil
    return list(clip_ids[::stride])


@dataclass
class ZScore:
    mean: np.ndarray  # (D,) float64
    std: np.ndarray  # (D,) float64, + 1e-6

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return ((rows - self.mean) / self.std).astype(np.float32)


@dataclass
class Whitening:
    """Projection onto the top principal components, each scaled to unit variance: it lifts
    weak directions (a small object's colour) to the level of the dominant ones (the
    background), which per-dimension z-scores cannot do."""

    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, dims)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return ((rows - self.mean) @ self.projection).astype(np.float32)


def fit_zscore(steps: np.ndarray) -> ZScore:
    """steps (S, D) float64 → z-scores with their mean and std."""
    return ZScore(steps.mean(axis=0), steps.std(axis=0) + 1e-6)


def fit_whitening(steps: np.ndarray, dims: int) -> Whitening:
    """steps (S, D) float64 → whitening onto the top ``dims`` components."""
    if not 0 < dims <= steps.shape[1]:
        raise ValueError(f"pca_dims={dims}; expected 1..{steps.shape[1]}")
    mean = steps.mean(axis=0)
    covariance = np.cov(steps - mean, rowvar=False)  # (D, D)
    variances, components = np.linalg.eigh(covariance)  # ascending
    top = np.argsort(variances)[::-1][:dims]
    return Whitening(mean, components[:, top] / np.sqrt(variances[top] + 1e-6))  # (D, dims)


class BlockNormalizer:
    """(T, ΣD_b) float32 → (T, ΣD_b') float32, each block of columns by its own transform."""

    def __init__(self, method: str, sample: Sequence[np.ndarray], blocks: Sequence[int],
                 pca_dims: int = 64) -> None:
        if method not in METHODS:
            raise ValueError(f"feature_norm={method!r}; expected one of {', '.join(METHODS)}")
        width = sample[0].shape[1] if len(sample) else sum(blocks)
        if sum(blocks) != width:
            raise ValueError(f"blocks {list(blocks)} do not add up to the feature width {width}")
        self.bounds = list(itertools.pairwise(np.cumsum([0, *blocks])))
        self.transforms = []
        if method == "none":
            self.widths = list(blocks)
            return
        for lo, hi in self.bounds:
            steps = np.concatenate([clip[:, lo:hi] for clip in sample]).astype(np.float64)
            self.transforms.append(fit_zscore(steps) if method == "zscore"
                                   else fit_whitening(steps, min(pca_dims, hi - lo)))
        self.widths = [hi - lo if method == "zscore" else min(pca_dims, hi - lo)
                       for lo, hi in self.bounds]

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        if not self.transforms:
            return clip
        return np.concatenate([transform(clip[:, lo:hi]) for transform, (lo, hi)
                               in zip(self.transforms, self.bounds, strict=True)], axis=1)
