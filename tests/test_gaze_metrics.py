"""Gaze metrics against hand-computed cases, and what each is for (sAUC discounts central bias)."""

from __future__ import annotations

import numpy as np
import pytest

from vlpipe.metrics.gaze import (
    bilinear_resize,
    correlation,
    fixation_mask,
    fixation_saliency,
    gaze_scores,
    judd_auc,
    mean_gaze_scores,
    min_max,
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


# -- hand-computed 3×3 cases, conventions, edge cases ------------------------------------------

TIES = np.array([[0.0, 0.0, 1.0], [0.0, 2.0, 1.0], [3.0, 2.0, 0.0]])
TIES_FIXATED = np.array([[False, False, False], [True, True, False], [False, True, False]])


def test_similarity_and_correlation_3x3_by_hand():
    a = np.array([[0.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 0.0]])  # Σ 6
    b = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])  # Σ 4
    # a/6: centre ⅓, edges ⅙; b/4: ¼ on the bottom-right 2×2. Minima: centre ¼, (1, 2) ⅙,
    # (2, 1) ⅙, (2, 2) 0 → Sim = ¼ + ⅓ = 7/12.
    assert similarity(a, b) == pytest.approx(7 / 12)
    # Σab − 9·ā·b̄ = 4 − 9·(2/3)(4/9) = 4/3; Σa² − 9ā² = 8 − 4 = 4; Σb² − 9b̄² = 4 − 16/9 = 20/9
    # → CC = (4/3) / √(4 · 20/9) = 1/√5.
    assert correlation(a, b) == pytest.approx(1 / np.sqrt(5))
    assert correlation(b, a) == pytest.approx(1 / np.sqrt(5))


def test_identical_maps_give_sim_and_cc_one_whatever_the_scale():
    a = np.random.default_rng(2).random((7, 9))
    assert similarity(a, a) == pytest.approx(1.0)
    assert similarity(a, 5 * a) == pytest.approx(1.0)  # each map is normalised to sum 1
    assert correlation(a, a) == pytest.approx(1.0)
    assert correlation(a, 3 * a + 2) == pytest.approx(1.0)
    disjoint = np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])
    assert similarity(*disjoint) == 0.0


def test_flat_maps_sim_uniform_cc_zero():
    flat = np.zeros((3, 3))  # what min-max makes of a constant map
    peak = np.zeros((3, 3))
    peak[1, 1] = 1.0
    assert similarity(flat, peak) == pytest.approx(1 / 9)  # uniform ⅑ against a point mass
    assert correlation(flat, peak) == 0.0 and correlation(peak, np.full((3, 3), 4.0)) == 0.0


def test_judd_auc_3x3_with_ties_by_hand():
    # positives (fixated) {2, 2, 0}; unfixated {0, 0, 1, 0, 1, 3}. Thresholds 2, 0:
    # θ = 2: TPR ⅔, FPR ⅙ (the 3); θ = 0: TPR 1, FPR 1.
    # area = ½·⅙·⅔ + (1 − ⅙)·(⅔ + 1)/2 = 1/18 + 25/36 = ¾
    assert judd_auc(TIES, TIES_FIXATED) == pytest.approx(3 / 4)
    # over all 9 pixels: θ = 2: FPR 3/9 (2, 2, 3) → ½·⅓·⅔ + ⅔·(⅚) = 1/9 + 5/9 = ⅔
    assert judd_auc(TIES, TIES_FIXATED, negatives="all") == pytest.approx(2 / 3)


def _mit_auc_judd(saliency: np.ndarray, mask: np.ndarray) -> float:
    """A line-by-line transcription of the MIT saliency benchmark's AUC_Judd.m (jitter off)."""
    s, f = saliency.ravel(), mask.ravel()
    sth = s[f]
    n_fix, n_pix = len(sth), len(s)
    thresholds = np.sort(sth)[::-1]
    tp, fp = np.zeros(n_fix + 2), np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1.0
    for i in range(1, n_fix + 1):
        above = np.sum(s >= thresholds[i - 1])
        tp[i] = i / n_fix
        fp[i] = (above - i) / (n_pix - n_fix)
    return float(np.trapezoid(tp, fp))


def test_judd_auc_matches_the_mit_code_without_ties():
    rng = np.random.default_rng(5)
    for _ in range(5):
        saliency = rng.random((30, 40))  # continuous values: no ties
        mask = fixation_mask(rng.random((25, 2)), (30, 40))
        assert judd_auc(saliency, mask) == pytest.approx(_mit_auc_judd(saliency, mask), abs=1e-12)


def test_judd_auc_peaked_inverted_and_flat():
    rng = np.random.default_rng(6)
    size = (60, 80)
    points = rng.random((12, 2))
    mask = fixation_mask(points, size)
    peaked = fixation_saliency(points, size, sigma=3.0)
    assert judd_auc(peaked, mask) > 0.99
    assert judd_auc(1 - peaked, mask) < 0.2
    # every fixated pixel below every other: the first threshold (the highest fixated value)
    # already gives FPR 1 at TPR 1/K, so the area is ½·1/K, the least a Judd AUC can be
    k = int(mask.sum())
    inverted = rng.random(size) + np.where(mask, 0.0, 1.0)
    assert judd_auc(inverted, mask) == pytest.approx(1 / (2 * k))
    assert judd_auc(np.zeros(size), mask) == 0.5  # every pixel crosses the one threshold at once


def test_shuffled_auc_3x3_by_hand_and_against_all_pairs():
    negatives = np.zeros((3, 3), bool)
    negatives[0, 0] = negatives[0, 2] = True  # saliency 0 and 1
    # positives {2, 2, 0}: each 2 beats both (1), the 0 ties one and loses one (¼) → 2.25/3 = ¾
    assert shuffled_auc(TIES, TIES_FIXATED, negatives) == pytest.approx(3 / 4)
    rng = np.random.default_rng(7)
    saliency = np.round(rng.random((20, 20)), 1)  # many ties
    mask, other = rng.random((20, 20)) < 0.1, rng.random((20, 20)) < 0.3
    pos, neg = saliency[mask][:, None], saliency[other][None, :]
    pairs = np.mean((pos > neg) + 0.5 * (pos == neg))
    assert shuffled_auc(saliency, mask, other) == pytest.approx(pairs)


def test_shuffled_auc_discounts_central_bias_through_the_whole_protocol():
    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[:49, :49]
    centre = np.exp(-((yy - 24) ** 2 + (xx - 24) ** 2) / (2 * 6.0**2))  # a central-bias model
    here, others = (np.clip(rng.normal(0.5, 0.1, (n, 2)), 0, 1) for n in (60, 600))
    scores = gaze_scores(centre, here, others, (64, 64), sigma=4.0)
    assert scores["AUC"] > 0.8  # Judd AUC rewards the central bias ...
    assert scores["sAUC"] == pytest.approx(0.5, abs=0.07)  # ... shuffled AUC does not
    uniform_negatives = rng.random((600, 2))
    assert gaze_scores(centre, here, uniform_negatives, (64, 64), sigma=4.0)["sAUC"] > 0.8


def test_bilinear_upsampling_aligns_pixel_centres():
    x = np.array([[0.0, 1.0], [2.0, 3.0]])  # = 2·row + column, linear
    # 2 → 4: output i sits at (i + ½)·2/4 − ½ = −¼, ¼, ¾, 5/4, clamped to 0, ¼, ¾, 1;
    # a linear map is reproduced there: out[r, c] = 2·t[r] + t[c].
    t = np.array([0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(bilinear_resize(x, (4, 4)), 2 * t[:, None] + t[None, :])
    np.testing.assert_allclose(bilinear_resize(x, (2, 2)), x)  # same size: unchanged
    out = prediction_saliency(x, (4, 6), sigma=0.0)  # no smoothing: resize then min-max
    assert out.shape == (4, 6) and out[0, 0] == 0.0 and out[-1, -1] == 1.0


def test_uniform_prediction_stays_flat_and_constant_maps_min_max_to_zeros():
    assert not prediction_saliency(np.full((49, 49), 1 / 49**2), (100, 120)).any()
    assert not min_max(np.full((5, 5), 3.0)).any()
    assert not min_max(np.full((5, 5), 3.0) + 1e-16 * np.eye(5)).any()  # rounding noise
    np.testing.assert_allclose(min_max(np.array([[1.0, 3.0], [2.0, 5.0]])),
                               [[0.0, 0.5], [0.25, 1.0]])


def test_fixation_mask_pixel_convention():
    mask = fixation_mask(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]]), (4, 6))
    # (x, y) → row ⌊y·H⌋, column ⌊x·W⌋, clipped: (0, 0), (3, 5) and (1, 3)
    assert sorted(zip(*np.nonzero(mask), strict=True)) == [(0, 0), (1, 3), (3, 5)]
    assert not fixation_mask(np.zeros((0, 2)), (4, 6)).any()
    for bad in (np.array([[1.1, 0.5]]), np.array([[0.5, -0.1]]), np.array([[np.nan, 0.5]])):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            fixation_mask(bad, (4, 6))
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        fixation_mask(np.zeros((3, 3)), (4, 6))
    with pytest.raises(ValueError, match="size"):
        fixation_mask(np.zeros((1, 2)), (0, 6))


def test_fixation_saliency_counts_each_point():
    # two subjects on the same pixel weigh twice one elsewhere (far apart: tails negligible)
    points = np.array([[0.1, 0.1], [0.1, 0.1], [0.9, 0.9]])
    truth = fixation_saliency(points, (100, 100), sigma=3.0)
    assert truth[10, 10] == 1.0 and truth[90, 90] == pytest.approx(0.5, abs=1e-6)


def test_metrics_reject_bad_inputs():
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="shape"):
        similarity(a, np.ones((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        correlation(a, np.ones((9,)))
    with pytest.raises(ValueError, match="non-negative"):
        similarity(a, -a)
    with pytest.raises(ValueError, match="NaN"):
        correlation(a, np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="bool"):
        judd_auc(a, np.ones((3, 3)))
    with pytest.raises(ValueError, match="unfixated"):
        judd_auc(a, np.ones((3, 3), bool))  # every pixel fixated: no negatives
    with pytest.raises(ValueError, match="negatives"):
        judd_auc(a, np.eye(3, dtype=bool), negatives="some")
    with pytest.raises(ValueError, match="other"):
        shuffled_auc(a, np.eye(3, dtype=bool), np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="2-D"):
        prediction_saliency(np.ones(49), (10, 10))
    pred = np.ones((49, 49))
    with pytest.raises(ValueError, match="fixations"):
        gaze_scores(pred, np.zeros((0, 2)), np.array([[0.5, 0.5]]), (10, 10))
    with pytest.raises(ValueError, match="negatives"):
        gaze_scores(pred, np.array([[0.5, 0.5]]), np.zeros((0, 2)), (10, 10))


def test_mean_gaze_scores_skips_and_counts_frames_without_fixations():
    rng = np.random.default_rng(9)
    preds = [rng.random((49, 49)) for _ in range(4)]
    points = [rng.random((5, 2)), None, np.zeros((0, 2)), rng.random((7, 2))]
    others = [rng.random((50, 2)) for _ in range(4)]
    result = mean_gaze_scores(preds, points, others, (40, 40), sigma=3.0)
    assert result["frames"] == 2 and result["skipped"] == 2
    scored = [gaze_scores(preds[i], points[i], others[i], (40, 40), 3.0) for i in (0, 3)]
    for name in ("Sim", "CC", "sAUC", "AUC"):
        assert result[name] == pytest.approx((scored[0][name] + scored[1][name]) / 2)
    with pytest.raises(ValueError, match="all 2 skipped"):
        mean_gaze_scores(preds[1:3], points[1:3], others[1:3], (40, 40))
    with pytest.raises(ValueError, match="length"):
        mean_gaze_scores(preds, points[:3], others, (40, 40))
