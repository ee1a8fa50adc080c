"""Feature normalisation (`vlpipe.features.normalize`), subsampling and padding, and quarantined
clips leaving a run."""

import numpy as np
import pytest

from vlpipe.features.normalize import BlockNormalizer, fit_whitening, fit_zscore
from vlpipe.features.sequences import InMemoryArrays, SequenceFeatures, subsample
from vlpipe.tasks.batching import pad_features, pad_tokens


def _clips(rng, scales, n_clips=20, steps=30):
    """Clips whose steps have independent dimensions with the given standard deviations."""
    return {f"c{i}": (rng.normal(size=(steps, len(scales))) * scales + 5).astype(np.float32)
            for i in range(n_clips)}


def _steps(features, ids):
    return np.concatenate([features[c] for c in ids]).astype(np.float64)


def test_standardize_uses_the_fit_clips_only():
    rng = np.random.default_rng(0)
    features = _clips(rng, np.array([10.0, 0.1]))
    features["outlier"] = np.full((3, 2), 1000.0, dtype=np.float32)
    fit_ids = [f"c{i}" for i in range(20)]
    zscore = fit_zscore(_steps(features, fit_ids))
    fit = np.concatenate([zscore(features[c]) for c in fit_ids])
    np.testing.assert_allclose(fit.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(fit.std(0), 1, atol=1e-3)
    assert zscore(features["outlier"]).min() > 100  # the fit statistics, not refitted
    # The same through a task's features: fitted on the fit (training) clips only.
    sequences = SequenceFeatures(InMemoryArrays(features), list(features), fit_ids, "zscore",
                                 max_steps=100)
    fit = np.concatenate([sequences[c] for c in fit_ids])
    np.testing.assert_allclose(fit.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(fit.std(0), 1, atol=1e-3)
    assert sequences["outlier"].min() > 100
    assert sequences["outlier"].dtype == np.float32


def test_pca_whitening_decorrelates_and_keeps_the_top_components():
    rng = np.random.default_rng(1)
    mixing = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.01]])
    features = {c: f @ mixing for c, f in _clips(rng, np.ones(3)).items()}
    ids = list(features)
    steps = _steps(features, ids)
    white = np.concatenate([fit_whitening(steps, 3)(features[c]) for c in ids])
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(3), atol=1e-2)
    # Two components: the near-constant third input dimension is dropped.
    whitening = fit_whitening(steps, 2)
    top = np.concatenate([whitening(features[c]) for c in ids])
    raw = np.concatenate([features[c] for c in ids])
    assert top.shape == (600, 2) and top.dtype == np.float32
    assert abs(np.corrcoef(top[:, 0], raw[:, 2])[0, 1]) < 0.1
    assert abs(np.corrcoef(top[:, 1], raw[:, 2])[0, 1]) < 0.1
    with pytest.raises(ValueError, match="pca_dims=4"):
        fit_whitening(steps, 4)


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
    sample = [features[c] for c in ids]
    small = np.concatenate([features[c][:, :3] for c in ids])
    one_block = BlockNormalizer("pca", sample, [5], pca_dims=2)
    two_blocks = BlockNormalizer("pca", sample, [3, 2], pca_dims=2)
    whole = np.concatenate([one_block(features[c]) for c in ids])
    split = np.concatenate([two_blocks(features[c]) for c in ids])
    assert whole.shape[1] == 2 and split.shape[1] == 4
    assert one_block.widths == [2] and two_blocks.widths == [2, 2]
    # one PCA over everything keeps only the loud block; per block, the quiet one survives
    assert max(_explained(whole[:, k], small) for k in range(2)) < 0.1
    assert min(_explained(split[:, k], small) for k in range(2)) > 0.999
    np.testing.assert_allclose(split.std(axis=0, ddof=1), 1.0, atol=1e-2)  # whitened
    zscore = BlockNormalizer("zscore", sample, [3, 2])
    assert zscore.widths == [3, 2]
    np.testing.assert_allclose(np.concatenate([zscore(features[c]) for c in ids]).std(axis=0),
                               1, atol=1e-3)
    untouched = BlockNormalizer("none", sample, [3, 2])
    assert untouched(features["c0"]) is features["c0"] and untouched.widths == [3, 2]
    with pytest.raises(ValueError, match="do not add up"):
        BlockNormalizer("pca", sample, [3, 3])
    with pytest.raises(ValueError, match="feature_norm='l2'"):
        BlockNormalizer("l2", sample, [3, 2])


def test_quarantined_clips_leave_training_and_evaluation(tmp_path):
    """A clip its extraction job quarantined is listed in the quarantine table and left out of
    the run's clips and task list; the others train and evaluate as usual."""
    import pandas as pd

    from vlpipe.features.inputs import ClipArrays
    from vlpipe.features.store import ClipFeatures, quarantine_table, write_store
    from vlpipe.planning import InputRef
    from vlpipe.runs import build_task_and_model
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
    assert ClipArrays([InputRef("rgb", "rgb")], {"rgb": [store]}).quarantined() == {"c5": reason}
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
