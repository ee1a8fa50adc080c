import numpy as np
import pytest

from vlpipe.sequences import (
    normalize_blocks,
    pad_features,
    pad_tokens,
    pca_whiten,
    standardize,
    subsample,
)


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


def _explained(y, x):
    """R² of regressing ``y`` on ``x`` (with intercept)."""
    design = np.c_[x, np.ones(len(x))]
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return 1 - residual.var() / y.var()


def test_blocks_are_normalised_each_on_its_own():
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(30)]
    # block 1: 3 columns of small variance; block 2: 2 columns of huge variance
    features = {c: np.concatenate([rng.normal(0, 0.05, (4, 3)), rng.normal(5, 100, (4, 2))],
                                  axis=1) for c in ids}
    small = np.concatenate([features[c][:, :3] for c in ids])
    whole = np.concatenate(list(normalize_blocks(features, ids, "pca", None, pca_dims=2)
                                .values()))
    split = np.concatenate(list(normalize_blocks(features, ids, "pca", [3, 2], pca_dims=2)
                                .values()))
    assert whole.shape[1] == 2 and split.shape[1] == 4
    # one PCA over everything keeps only the loud block; per block, the quiet one survives
    assert max(_explained(whole[:, k], small) for k in range(2)) < 0.1
    assert min(_explained(split[:, k], small) for k in range(2)) > 0.999
    np.testing.assert_allclose(split.std(axis=0, ddof=1), 1.0, atol=1e-2)  # whitened
    zscored = normalize_blocks(features, ids, "zscore", [3, 2])
    np.testing.assert_allclose(np.concatenate(list(zscored.values())).std(axis=0), 1,
                               atol=1e-3)
    with pytest.raises(ValueError, match="do not add up"):
        normalize_blocks(features, ids, "pca", [3, 3])


def test_quarantined_clips_leave_training_and_evaluation(tmp_path):
    """A clip its extraction job quarantined is listed in the quarantine table and left out of
    the run's clips and task list; the others train and evaluate as usual."""
    import pandas as pd

    from vlpipe.experiment import build_task_and_model
    from vlpipe.features.store import ClipFeatures, write_store
    from vlpipe.sequences import quarantine_table, quarantined_clips
    from vlpipe.text import Vocabulary

    ids = [f"c{k}" for k in range(6)]
    reason = "cannot open video (Invalid data found when processing input)"
    rng = np.random.default_rng(0)
    store = tmp_path / "rgb.zarr"
    write_store(store, [ClipFeatures(c, f"id-{c}", np.arange(4) / 5,
                                     {"feat": rng.normal(size=(4, 8)).astype(np.float32)})
                        for c in ids[:5]],
                {"feat": ((8,), "float32", "step")},
                {"provenance": {"extractor": "rgb", "weights": "random-seed-0",
                                "primary": "feat"},
                 "quarantined": {"c5": {"video_path": "v/c5.mp4", "identity": "x",
                                        "reason": reason}}})
    assert quarantined_clips([[store]]) == {"c5": reason}
    table = quarantine_table({"rgb": [store]})
    assert table.to_dict("records") == [{"clip_id": "c5", "extractor": "rgb",
                                         "video_path": "v/c5.mp4", "reason": reason}]

    clips = pd.DataFrame({"clip_id": ids, "video_path": [f"v/{c}.mp4" for c in ids],
                          "start": 0.0, "end": np.nan,
                          "split": ["train", "train", "train", "test", "test", "test"],
                          "sentences": [[f"a {w} circle"] for w in
                                        ("red", "blue", "green", "pink", "gray", "cyan")]})
    clips.to_parquet(tmp_path / "clips.parquet")
    Vocabulary.build([s for ss in clips["sentences"] for s in ss], 1).save(tmp_path / "v.json")
    pd.DataFrame({"clip_id": ids[3:], "sentence": ["a pink circle", "a gray circle",
                                                   "a cyan circle"]}
                 ).to_parquet(tmp_path / "ret.parquet")
    experiment = {"model": "jsfusion", "task": "retrieval", "features": ["rgb"],
                  "variants": {"JSFusion": {}},
                  "model_args": {"word_dim": 4, "encoder_hidden": 4, "d1": 4, "d2": 4, "d3": 4,
                                 "d4": 4, "conv_channels": 4, "d5": 4, "d6": 4, "d7": 4},
                  "task_args": {"feature_norm": "none", "batch_size": 2, "num_negatives": 1}}
    task, _, _ = build_task_and_model(experiment, "JSFusion", 0, str(tmp_path / "clips.parquet"),
                                      str(tmp_path / "v.json"), [f"rgb={store}"], {},
                                      str(tmp_path / "ret.parquet"))
    assert "c5" not in task.features
    assert [c for c, _ in task.eval_pairs["test"]] == ["c3", "c4"]
