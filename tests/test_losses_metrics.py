"""Ranking losses and retrieval metrics against hand-computed numbers."""

import numpy as np
import pytest
import torch

from vlpipe.metrics import bidirectional_retrieval, ranks_of_positives, retrieval_metrics
from vlpipe.nn.losses import in_batch_ranking_loss, max_margin_ranking_loss


def test_max_margin_ranking_loss_hand_computed():
    scores = torch.tensor([[1.0, 3.0, 0.0], [2.0, 2.0, 5.0]])
    positive = torch.tensor([0, 2])
    # margin 1: row 0 (S*=1): max(0, 3-1+1)=3, max(0, 0-1+1)=0 → 3; row 1 (S*=5): 0, 0 → 0.
    assert max_margin_ranking_loss(scores, positive, margin=1.0).item() == pytest.approx(1.5)
    # margin 10 (paper): row 0: 12 + 9 = 21; row 1: 7 + 7 = 14; mean 17.5.
    assert max_margin_ranking_loss(scores, positive).item() == pytest.approx(17.5)


def test_max_margin_ranking_loss_gradient_only_from_violations():
    scores = torch.tensor([[1.0, 3.0, 0.0]], requires_grad=True)
    max_margin_ranking_loss(scores, torch.tensor([0]), margin=1.0).backward()
    # Only candidate 1 violates the margin: +1 on it, -1 on the positive, 0 elsewhere.
    assert scores.grad.tolist() == [[-1.0, 1.0, 0.0]]


def test_in_batch_ranking_loss_directions():
    # scores[i, j] = score(video i, sentence j); positives on the diagonal.
    scores = torch.tensor([[2.0, 1.0, 0.0], [3.0, 1.0, 0.0], [1.0, 1.0, 4.0]])
    # v2t (rows): row 0 → 0; row 1 (S*=1): 3-1+1=3, 0 → 3; row 2 → 0. Mean 1.
    # t2v (columns): col 0 (S*=2): 3-2+1=2, 0 → 2; col 1 (S*=1): 1, 1 → 2; col 2 → 0. Mean 4/3.
    assert in_batch_ranking_loss(scores, 1.0, "v2t").item() == pytest.approx(1.0)
    assert in_batch_ranking_loss(scores, 1.0, "t2v").item() == pytest.approx(4 / 3)
    assert in_batch_ranking_loss(scores, 1.0, "both").item() == pytest.approx(7 / 3)
    with pytest.raises(ValueError, match="directions"):
        in_batch_ranking_loss(scores, 1.0, "sideways")


def test_ranks_of_positives_hand_computed_with_pessimistic_ties():
    scores = np.array(
        [
            [0.9, 0.1, 0.3, 0.2, 0.0],  # positive 0 is the best → 1
            [0.5, 0.4, 0.8, 0.6, 0.7],  # positive 1 (0.4) is the worst → 5
            [1.0, 2.0, 2.0, 0.0, 2.0],  # positive 1 ties with 2 others → 1 + 2 = 3
            [3.0, 3.0, 3.0, 3.0, 3.0],  # constant scorer → last, 5
        ]
    )
    ranks = ranks_of_positives(scores, np.array([0, 1, 1, 4]))
    assert ranks.tolist() == [1, 5, 3, 5]


def test_ranks_of_positives_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        ranks_of_positives(np.array([[0.0, np.nan]]), np.array([0]))


def test_retrieval_metrics_hand_computed():
    metrics = retrieval_metrics(np.array([1, 3, 7, 12, 2, 1]))
    assert metrics["R@1"] == pytest.approx(100 * 2 / 6)
    assert metrics["R@5"] == pytest.approx(100 * 4 / 6)
    assert metrics["R@10"] == pytest.approx(100 * 5 / 6)
    assert metrics["MedR"] == pytest.approx(2.5)  # sorted: 1 1 2 3 7 12
    assert metrics["MeanR"] == pytest.approx(26 / 6)
    # one positive per query: AP = 1/rank, mAP = MRR ×100
    assert metrics["mAP"] == pytest.approx(100 * (1 + 1/3 + 1/7 + 1/12 + 1/2 + 1) / 6)


def test_bidirectional_retrieval_directions():
    # rows = sentences, columns = videos; sentence q's video is column q.
    scores = np.array([[1.0, 0.0], [2.0, 3.0]])
    result = bidirectional_retrieval(scores)
    # t2v: row 0 → 1 (1 > 0); row 1 → 1 (3 > 2).
    assert result["t2v"]["R@1"] == pytest.approx(100.0)
    assert result["t2v"]["MeanR"] == pytest.approx(1.0)
    # v2t: column 0 → 2 (sentence 1 scores 2 > 1); column 1 → 1 (3 > 0).
    assert result["v2t"]["R@1"] == pytest.approx(50.0)
    assert result["v2t"]["MedR"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="square"):
        bidirectional_retrieval(np.zeros((2, 3)))
