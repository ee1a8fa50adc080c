"""Max-margin ranking losses for scoring models (JSFusion, CT-SAN, ...)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def max_margin_ranking_loss(scores: Tensor, positive: Tensor, margin: float = 10.0) -> Tensor:
    """The paper's structured hinge (JSFusion eq. 6, without the L2 term).

    scores: (K, L), row k = one query's L candidates; positive: (K,) long, index l* of the
    answer. Returns mean_k Σ_{l≠l*} max(0, S_kl − S_kl* + margin). This is the loss of
    "1 positive + L−1 sampled negatives" batches (retrieval) and of multiple choice (GT +
    distractors). Weight decay is left to the optimizer.
    """
    positive_scores = scores.gather(1, positive.unsqueeze(1))  # (K, 1)
    hinge = (scores - positive_scores + margin).clamp(min=0)  # (K, L)
    is_positive = torch.zeros_like(hinge, dtype=torch.bool)
    is_positive.scatter_(1, positive.unsqueeze(1), True)
    return hinge.masked_fill(is_positive, 0.0).sum(dim=1).mean()


def in_batch_ranking_loss(
    score_matrix: Tensor,
    margin: float = 10.0,
    directions: Literal["both", "t2v", "v2t"] = "both",
) -> Tensor:
    """Hinge over a (B, B) in-batch score matrix whose diagonal holds the positives.

    score_matrix[i, j] = score(video i, sentence j), as `JSFusion.score_matrix` returns.
    "v2t": each video ranks the B sentences (rows); "t2v": each sentence ranks the B videos
    (columns); "both": their sum. Each direction is `max_margin_ranking_loss` with the other
    B−1 batch items as negatives. The authors' code variant of JSFusion: its released code
    used "v2t", normalised by B² and with the constant diagonal term, i.e. (loss + margin) / B.
    """
    if directions not in ("both", "t2v", "v2t"):
        raise ValueError(f"directions={directions!r}; allowed: 'both', 't2v', 'v2t'")
    if score_matrix.shape[0] != score_matrix.shape[1]:
        raise ValueError(f"expected a square score matrix, got {tuple(score_matrix.shape)}")
    positive = torch.arange(score_matrix.shape[0], device=score_matrix.device)
    loss = score_matrix.new_zeros(())
    if directions in ("both", "v2t"):
        loss = loss + max_margin_ranking_loss(score_matrix, positive, margin)
    if directions in ("both", "t2v"):
        loss = loss + max_margin_ranking_loss(score_matrix.T, positive, margin)
    return loss
