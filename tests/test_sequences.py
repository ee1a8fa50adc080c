import numpy as np
import pytest

from vlpipe.sequences import pad_features, pad_tokens, pca_whiten, standardize, subsample


def _clips(rng, scales, n_clips=20, steps=30):
    """Clips whose steps have independent dimensions with the given standard deviations."""
    return {f"c{i}": (rng.normal(size=(steps, len(scales))) * scales + 5).astype(np.float32)
            for i in range(n_clips)}


def test_standardize_uses_the_fit_clips_only():
    rng = np.random.default_rng(0)
    features = _clips(rng, np.array([10.0, 0.1]))
    features["outlier"] = np.full((3, 2), 1000.0, dtype=np.float32)
    out = standardize(features, [f"c{i}" for i in range(20)])
    fit = np.concatenate([out[f"c{i}"] for i in range(20)])
    np.testing.assert_allclose(fit.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(fit.std(0), 1, atol=1e-3)
    assert out["outlier"].min() > 100  # transformed with the fit statistics, not refitted


def test_pca_whitening_decorrelates_and_keeps_the_top_components():
    rng = np.random.default_rng(1)
    mixing = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.01]])
    features = {c: f @ mixing for c, f in _clips(rng, np.ones(3)).items()}
    ids = list(features)
    white = np.concatenate([pca_whiten(features, ids, 3)[c] for c in ids])
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(3), atol=1e-2)
    # Two components: the near-constant third input dimension is dropped.
    top = np.concatenate([pca_whiten(features, ids, 2)[c] for c in ids])
    raw = np.concatenate([features[c] for c in ids])
    assert top.shape == (600, 2)
    assert abs(np.corrcoef(top[:, 0], raw[:, 2])[0, 1]) < 0.1
    assert abs(np.corrcoef(top[:, 1], raw[:, 2])[0, 1]) < 0.1
    with pytest.raises(ValueError, match="pca_dims=4"):
        pca_whiten(features, ids, 4)


def test_subsample_and_padding():
    sequence = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(subsample(sequence, 4)[:, 0], [0, 3, 6, 9])
    assert subsample(sequence, 40) is sequence
    batch, mask = pad_features([np.ones((2, 3)), np.ones((4, 3))])
    assert batch.shape == (2, 4, 3) and mask.sum(1).tolist() == [2, 4]
    assert batch[0, 2:].abs().sum() == 0
    tokens, token_mask = pad_tokens([[5, 6, 7], [8]])
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert token_mask.tolist() == [[True, True, True], [True, False, False]]
