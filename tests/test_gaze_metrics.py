"""Gaze metrics against hand-computed cases, and what each is for (sAUC discounts central bias)."""

from __future__ import annotations

import numpy as np
import pytest

from vlpipe.metrics.gaze import (
    correlation,
    fixation_mask,
    fixation_saliency,
    gaze_scores,
    judd_auc,
    prediction_saliency,
    shuffled_auc,
    similarity,
)


def test_similarity_and_correlation_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])  # as distributions: ½ on the diagonal
    b = np.array([[1.0, 1.0], [0.0, 0.0]])  # ½ on the top row
    assert similarity(a, b) == pytest.approx(0.5)  # min(½, ½) at (0, 0) only
    assert similarity(a, a) == pytest.approx(1.0)
    # centred: a → ±½ on/off the diagonal, b → ±½ top/bottom; Σ ab = ¼ − ¼ − ¼ + ¼ = 0
    assert correlation(a, b) == pytest.approx(0.0)
    assert correlation(a, 1 - a) == pytest.approx(-1.0)
    assert correlation(a, np.ones((2, 2))) == 0.0  # a constant map says nothing


def test_judd_auc_by_hand():
    saliency = np.array([[0.0, 1.0], [2.0, 3.0]])
    # one fixation on the 2: threshold 2 → TPR 1, FPR 1/3 (the 3) → area ½·⅓ + (1 − ⅓) = 5/6
    assert judd_auc(saliency, saliency == 2.0) == pytest.approx(5 / 6)
    assert judd_auc(saliency, saliency == 3.0) == pytest.approx(1.0)
    assert judd_auc(saliency, saliency == 0.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="fixated"):
        judd_auc(saliency, np.zeros((2, 2), bool))


def test_shuffled_auc_by_hand_and_against_central_bias():
    saliency = np.array([[0.0, 1.0], [2.0, 3.0]])
    # positive 2 against negatives 1 and 3: beats one of two → ½; ties count half
    assert shuffled_auc(saliency, saliency == 2.0, (saliency == 1.0) | (saliency == 3.0)) == 0.5
    assert shuffled_auc(saliency, saliency == 2.0, saliency == 2.0) == 0.5
    # a central-bias map on centre-biased fixations: Judd AUC high, sAUC at chance when the
    # negatives are other frames' (also central) fixations
    rng = np.random.default_rng(0)
    size = (64, 64)
    yy, xx = np.mgrid[:64, :64]
    centre = np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / (2 * 8.0**2))
    here, others = (np.clip(rng.normal(0.5, 0.08, (n, 2)), 0, 1) for n in (40, 400))
    assert judd_auc(centre, fixation_mask(here, size)) > 0.85
    assert shuffled_auc(centre, fixation_mask(here, size),
                        fixation_mask(others, size)) == pytest.approx(0.5, abs=0.08)


def test_maps_are_smoothed_upsampled_and_min_max_normalised():
    prediction = np.zeros((49, 49))
    prediction[10, 30] = 1.0
    upsampled = prediction_saliency(prediction, (98, 98))
    assert upsampled.shape == (98, 98) and upsampled.min() == 0 and upsampled.max() == 1
    row, col = np.unravel_index(upsampled.argmax(), upsampled.shape)
    assert abs(row - 21) <= 1 and abs(col - 61) <= 1  # cell (10, 30)'s centre at 2× is 21, 61
    truth = fixation_saliency(np.array([[0.25, 0.75]]), (40, 40), sigma=3.0)
    assert np.unravel_index(truth.argmax(), truth.shape) == (30, 10)  # (x, y) → [row y, col x]
    with pytest.raises(ValueError, match="at least one fixation"):
        fixation_saliency(np.zeros((0, 2)), (40, 40))


def test_a_prediction_on_the_fixations_beats_one_elsewhere():
    points = np.array([[0.2, 0.3], [0.22, 0.28]])
    others = np.array([[0.8, 0.7], [0.5, 0.5]])
    good, bad = np.zeros((49, 49)), np.zeros((49, 49))
    good[int(0.29 * 49), int(0.21 * 49)] = 1.0
    bad[int(0.7 * 49), int(0.8 * 49)] = 1.0
    right = gaze_scores(good, points, others, (56, 56), sigma=4.0)
    wrong = gaze_scores(bad, points, others, (56, 56), sigma=4.0)
    assert set(right) == {"Sim", "CC", "sAUC", "AUC"}
    for name in right:
        assert right[name] > wrong[name], name
    assert right["AUC"] > 0.95 and right["sAUC"] == 1.0 and right["CC"] > 0.8


def test_a_uniform_prediction_scores_chance():
    """Smoothing must not darken the edges (that would be a central bias in disguise)."""
    points = np.random.default_rng(1).random((300, 2))  # many, so ranking at random is ≈ ½
    scores = gaze_scores(np.full((49, 49), 1 / 49**2), points, np.array([[0.3, 0.3]]), (56, 56),
                         sigma=4.0)
    assert scores["AUC"] == pytest.approx(0.5, abs=0.02)
    assert scores["sAUC"] == pytest.approx(0.5) and scores["CC"] == 0.0
