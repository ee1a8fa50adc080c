"""Precision and recall at k of multi-label predictions (CT-SAN's detected concept words)."""

from __future__ import annotations

import torch


def precision_recall_at(scores: torch.Tensor, truth: torch.Tensor, k: int,
                        prefix: str = "") -> dict[str, float]:
    """Mean precision and recall (×100) of each row's ``k`` highest ``scores`` (B, C) against
    its multi-hot ``truth`` (B, C); recall over the rows with any true label. Fewer than
    ``k`` labels (C < k): all C, and the keys say so."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (B, k)
    hits = truth.gather(1, top).sum(1)  # (B,)
    relevant = truth.sum(1)
    recall = hits[relevant > 0] / relevant[relevant > 0]
    return {f"{prefix}P@{k}": 100.0 * float((hits / k).mean()),
            f"{prefix}R@{k}": 100.0 * float(recall.mean())}
