"""Ranking metrics for retrieval and multiple choice (pure numpy)."""

from __future__ import annotations

import numpy as np


def ranks_of_positives(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """1-based rank of each query's positive among its candidates; higher score = better.

    scores: (Q, C); positive: (Q,) column index of each query's positive → (Q,) int ranks.
    Ties count against the positive: rank = 1 + #other candidates scoring >= it, so a
    constant scorer ranks every positive last (rank C).
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive)
    if scores.ndim != 2 or positive.shape != (scores.shape[0],):
        raise ValueError(
            f"expected scores (Q, C) and positive (Q,), got {scores.shape}, {positive.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    positive_scores = scores[np.arange(len(scores)), positive]  # (Q,)
    # The positive itself satisfies >=, which supplies the leading 1.
    return (scores >= positive_scores[:, None]).sum(axis=1)


def retrieval_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Recall@{1,5,10} in percent, median and mean rank, and mAP ×100 from 1-based ranks (Q,).

    With one positive per query, average precision is 1 / rank, so mAP is the mean reciprocal
    rank (Watch and Learn's metric, reported ×100).
    """
    ranks = np.asarray(ranks)
    metrics = {f"R@{k}": float(100.0 * np.mean(ranks <= k)) for k in (1, 5, 10)}
    metrics["MedR"] = float(np.median(ranks))
    metrics["MeanR"] = float(np.mean(ranks))
    metrics["mAP"] = float(100.0 * np.mean(1.0 / ranks))
    return metrics


def bidirectional_retrieval(score_matrix: np.ndarray) -> dict[str, dict[str, float]]:
    """Text→video and video→text metrics from a square (Nt, Nv) matrix.

    score_matrix[q, c] = score(sentence q, video c); the positive of sentence q is video q.
    Note `JSFusion.score_matrix` returns (Nv, Nt): pass its transpose.
    """
    score_matrix = np.asarray(score_matrix)
    if score_matrix.ndim != 2 or score_matrix.shape[0] != score_matrix.shape[1]:
        raise ValueError(f"expected a square (Nt, Nv) score matrix, got {score_matrix.shape}")
    positive = np.arange(len(score_matrix))
    return {
        "t2v": retrieval_metrics(ranks_of_positives(score_matrix, positive)),
        "v2t": retrieval_metrics(ranks_of_positives(score_matrix.T, positive)),
    }
