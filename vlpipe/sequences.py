"""Loading per-clip feature sequences from the stores and padding them into batches."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlpipe.features import FeatureStore


def load_clip_features(stores: Sequence[Sequence[str | Path]],
                       clip_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Per-clip features (T, sum of dims) float32, concatenating extractors step by step, and
    the width of each extractor's block of columns.

    ``stores[e]`` lists the shard stores of extractor ``e``. Extractors sampled at the same rate
    have the same steps; longer sequences are cut to the shortest.
    """
    per_extractor = []
    for shard_paths in stores:
        merged: dict[str, np.ndarray] = {}
        for path in shard_paths:
            merged.update(FeatureStore(path).read_all())
        missing = [c for c in clip_ids if c not in merged]
        if missing:
            raise KeyError(f"no features for clip(s) {missing[:5]} in {list(shard_paths)}")
        per_extractor.append(merged)
    combined = {}
    for clip_id in clip_ids:
        parts = [feats[clip_id] for feats in per_extractor]
        steps = min(len(p) for p in parts)
        combined[clip_id] = np.concatenate([p[:steps].reshape(steps, -1) for p in parts],
                                           axis=1).astype(np.float32)
    first = clip_ids[0] if clip_ids else None
    blocks = [int(np.prod(feats[first].shape[1:])) for feats in per_extractor] if first else []
    return combined, blocks


def quarantined_clips(stores: Sequence[Sequence[str | Path]]) -> dict[str, str]:
    """Clips the extraction jobs of these stores left out as bad input: clip_id → reason."""
    return {clip_id: record["reason"]
            for shard_paths in stores for path in shard_paths
            for clip_id, record in FeatureStore(path).quarantined.items()}


def quarantine_table(stores: dict[str, Sequence[str | Path]]) -> pd.DataFrame:
    """One row per (clip, extractor) left out as bad input, from every extractor's stores."""
    rows = [{"clip_id": clip_id, "extractor": name, "video_path": record["video_path"],
             "reason": record["reason"]}
            for name, shard_paths in stores.items() for path in shard_paths
            for clip_id, record in FeatureStore(path).quarantined.items()]
    columns = ["clip_id", "extractor", "video_path", "reason"]
    return pd.DataFrame(rows, columns=columns).sort_values(["clip_id", "extractor"],
                                                            ignore_index=True)


def _fit_steps(features: dict[str, np.ndarray], fit_ids: Sequence[str],
               max_steps: int) -> np.ndarray:
    """At most about ``max_steps`` steps of the ``fit_ids`` clips (every k-th step of each),
    as float64, so that fitting statistics stays bounded in memory on large data sets."""
    total = sum(len(features[c]) for c in fit_ids)
    stride = max(1, -(-total // max_steps))  # ceil
    return np.concatenate([features[c][::stride] for c in fit_ids]).astype(np.float64)


def standardize(features: dict[str, np.ndarray], fit_ids: Sequence[str],
                max_fit_steps: int = 100_000) -> dict[str, np.ndarray]:
    """Z-score every feature dimension with the mean and std of the ``fit_ids`` clips' steps
    (the training split), so that no dimension's offset or scale dominates the encoders."""
    steps = _fit_steps(features, fit_ids, max_fit_steps)
    mean, std = steps.mean(axis=0), steps.std(axis=0) + 1e-6
    return {c: ((f - mean) / std).astype(np.float32) for c, f in features.items()}


def pca_whiten(features: dict[str, np.ndarray], fit_ids: Sequence[str], dims: int,
               max_fit_steps: int = 100_000) -> dict[str, np.ndarray]:
    """Project every step onto the top ``dims`` principal components of the ``fit_ids`` clips'
    steps (the training split; about ``max_fit_steps`` of them), each scaled to unit variance.
    Whitening lifts weak directions (a small object's colour) to the level of the dominant ones
    (the background), which per-dimension z-scores cannot do."""
    steps = _fit_steps(features, fit_ids, max_fit_steps)
    if not 0 < dims <= steps.shape[1]:
        raise ValueError(f"pca_dims={dims}; expected 1..{steps.shape[1]}")
    mean = steps.mean(axis=0)
    covariance = np.cov(steps - mean, rowvar=False)  # (D, D)
    variances, components = np.linalg.eigh(covariance)  # ascending
    top = np.argsort(variances)[::-1][:dims]
    projection = components[:, top] / np.sqrt(variances[top] + 1e-6)  # (D, dims)
    return {c: ((f - mean) @ projection).astype(np.float32) for c, f in features.items()}


def normalize_blocks(features: dict[str, np.ndarray], fit_ids: Sequence[str], method: str,
                     blocks: Sequence[int] | None = None,
                     pca_dims: int = 64) -> dict[str, np.ndarray]:
    """Normalise each block of columns (one extractor's features) on its own, fitted on the
    ``fit_ids`` clips: ``zscore``, ``pca`` (whitened, at most ``pca_dims`` components per block)
    or ``none``. Per block, so that one extractor's scale (e.g. random VGGish vs random ResNet
    activations) cannot crowd another out of the principal components."""
    if method == "none":
        return features
    if method not in ("zscore", "pca"):
        raise ValueError(f"feature_norm={method!r}; expected zscore, pca or none")
    width = next(iter(features.values())).shape[1]
    blocks = list(blocks) if blocks else [width]
    if sum(blocks) != width:
        raise ValueError(f"blocks {blocks} do not add up to the feature width {width}")
    bounds = np.cumsum([0, *blocks])
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        block = {c: f[:, lo:hi] for c, f in features.items()}
        parts.append(standardize(block, fit_ids) if method == "zscore"
                     else pca_whiten(block, fit_ids, min(pca_dims, hi - lo)))
    return {c: np.concatenate([part[c] for part in parts], axis=1) for c in features}


def subsample(sequence: np.ndarray, max_steps: int) -> np.ndarray:
    """At most ``max_steps`` equidistant steps (JSFusion: Nmax = 40)."""
    if len(sequence) <= max_steps:
        return sequence
    return sequence[np.linspace(0, len(sequence) - 1, max_steps).round().astype(int)]


def pad_features(sequences: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``(T_i, D)`` arrays into ``(B, T_max, D)`` with a ``(B, T_max)`` valid mask."""
    steps = max(len(s) for s in sequences)
    batch = torch.zeros(len(sequences), steps, sequences[0].shape[1])
    mask = torch.zeros(len(sequences), steps, dtype=torch.bool)
    for i, sequence in enumerate(sequences):
        batch[i, : len(sequence)] = torch.from_numpy(sequence)
        mask[i, : len(sequence)] = True
    return batch, mask


def pad_tokens(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists with 0 into ``(B, M_max)`` with a valid mask."""
    steps = max(max(len(s) for s in sequences), 1)
    batch = torch.zeros(len(sequences), steps, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        batch[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return batch, batch != 0
