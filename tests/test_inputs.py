"""A run's feature inputs: named arrays aligned by time, streamed per clip from the stores,
normalised on a bounded sample, and batches prepared ahead in a thread."""

from __future__ import annotations

import numpy as np
import pytest

from vlpipe.features.inputs import ClipArrays, align_steps
from vlpipe.features.normalize import fit_sample, max_fit_steps
from vlpipe.features.sequences import InMemoryArrays, SequenceFeatures
from vlpipe.features.store import ClipFeatures, write_store
from vlpipe.planning import InputRef
from vlpipe.training.prefetch import prefetched


def _store(path, extractor, clips, arrays, primary):
    """clips: clip_id → (times, {name: rows}); arrays: name → per-step shape."""
    attrs = {"provenance": {"primary": primary, "extractor": extractor,
                            "weights": "random-seed-0"}}
    write_store(path, [ClipFeatures(c, f"id-{c}", times, rows)
                       for c, (times, rows) in clips.items()],
                {name: (shape, "float32", "step") for name, shape in arrays.items()}, attrs)
    return str(path)


def test_windows_align_to_the_frame_they_end_at_not_the_step_index():
    frames = np.arange(10) / 5  # ResNet at 5 fps: 0.0, 0.2, ..., 1.8 s
    windows = 0.6 + np.arange(8) * 0.2  # C3D at 25 fps, 16-frame window, stride 5: 0.6 ... 2.0 s
    # frames before the first window take it; then the window ending at each frame
    np.testing.assert_array_equal(align_steps(frames, windows), [0, 0, 0, 0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(align_steps(frames, frames), np.arange(10))
    # VGGish at 0.96 s per example: the last example starting at or before the frame
    np.testing.assert_array_equal(align_steps(frames, np.array([0.0, 0.96])),
                                  [0, 0, 0, 0, 0, 1, 1, 1])  # cut after 0.96 + 0.48 s
    # an input that ends early ends the timeline (within half its step interval)
    assert len(align_steps(frames, frames[:6])) == 6
    assert len(align_steps(frames, np.array([]))) == 0


def test_named_arrays_from_stores_with_different_steps(tmp_path):
    frames = np.arange(10, dtype=np.float32) / 5
    windows = (0.6 + np.arange(8) * 0.2).astype(np.float32)
    resnet = {"a": (frames, {"pool5": frames[:, None] * np.ones((1, 3), np.float32),
                             "grid": np.zeros((10, 2, 2, 4), np.float32)})}
    c3d = {"a": (windows, {"conv5b": windows[:, None, None] * np.ones((1, 2, 2), np.float32),
                           "fc6": np.ones((8, 5), np.float32)})}
    stores = {"resnet152": [_store(tmp_path / "r.zarr", "resnet152", resnet,
                                   {"pool5": (3,), "grid": (2, 2, 4)}, "pool5")],
              "c3d": [_store(tmp_path / "c.zarr", "c3d", c3d,
                             {"conv5b": (2, 2), "fc6": (5,)}, "fc6")]}
    arrays = ClipArrays([InputRef.parse("scene", "resnet152"),
                         InputRef.parse("motion", "c3d/conv5b")], stores)
    assert arrays.shape("scene") == (3,) and arrays.shape("motion") == (2, 2)
    rows = arrays.read("a")
    assert rows["scene"].shape == (10, 3) and rows["motion"].shape == (10, 2, 2)
    # frame at 1.0 s ↔ the window ending at 1.0 s (row 2), not the third window by index
    np.testing.assert_allclose(rows["motion"][5, 0, 0], 1.0)
    np.testing.assert_allclose(rows["motion"][:4, 0, 0], 0.6)  # before the first window
    with pytest.raises(KeyError, match=r"no per-step array 'conv6'.*\['conv5b', 'fc6'\]"):
        ClipArrays([InputRef.parse("motion", "c3d/conv6")], stores)
    with pytest.raises(KeyError, match=r"no stores given for extractor\(s\) \['i3d'\]"):
        ClipArrays([InputRef.parse("motion", "i3d")], stores)


def _random_store(tmp_path, n_clips, steps=7, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    clips = {f"c{k}": ((np.arange(steps) / 5).astype(np.float32),
                       {"feat": (rng.normal(size=(steps, dim)) * [1, 10, 100, 1, 1, 1] + 3)
                        .astype(np.float32)}) for k in range(n_clips)}
    path = _store(tmp_path / "s.zarr", "x", clips, {"feat": (dim,)}, "feat")
    return clips, {"x": [path]}


@pytest.mark.parametrize("method", ["zscore", "pca", "none"])
def test_streamed_features_equal_the_in_memory_ones(tmp_path, method):
    clips, stores = _random_store(tmp_path, 12)
    ids, train = list(clips), list(clips)[:8]
    streamed = SequenceFeatures(ClipArrays([InputRef("x", "x")], stores), ids, train, method,
                                pca_dims=4, max_steps=5)
    memory = SequenceFeatures(InMemoryArrays({c: r["feat"] for c, (_, r) in clips.items()}),
                              ids, train, method, pca_dims=4, max_steps=5)
    assert streamed.dim == memory.dim == (4 if method == "pca" else 6)
    for clip_id in ids:
        np.testing.assert_array_equal(streamed[clip_id], memory[clip_id])  # bit for bit
    assert [streamed[c].shape for c in ids] == [(5, streamed.dim)] * 12
    if method == "zscore":  # fitted on the training clips only
        fitted = np.concatenate([streamed[c] for c in train])
        assert abs(fitted.mean()) < 0.2 and not np.allclose(fitted.std(0), 0)


def test_the_cache_is_bounded_and_unknown_clips_are_named(tmp_path):
    clips, stores = _random_store(tmp_path, 20)
    features = SequenceFeatures(ClipArrays([InputRef("x", "x")], stores), list(clips),
                                list(clips), "none", max_steps=7, cache_bytes=3 * 7 * 6 * 4)
    for clip_id in clips:
        features[clip_id]
    assert len(features._cache) == 3  # the three most recently read clips
    with pytest.raises(KeyError, match="no x features for clip"):
        SequenceFeatures(ClipArrays([InputRef("x", "x")], stores), ["c0", "ghost"], [], "none")


def test_normalisation_fits_on_a_bounded_sample_of_clips():
    ids = [f"c{k}" for k in range(10)]
    assert fit_sample(ids, [5] * 10, max_steps=50) == ids
    assert fit_sample(ids, [5] * 10, max_steps=20) == ["c0", "c3", "c6", "c9"]
    assert max_fit_steps(2176) == (256 << 20) // (8 * 2176)  # 15,420 steps of 2176 floats


def test_prefetched_keeps_order_and_raises_where_the_item_was():
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetched(iter(range(5)), depth=0)) == list(range(5))

    def failing():
        yield 1
        raise RuntimeError("bad clip c7")

    got = []
    with pytest.raises(RuntimeError, match="bad clip c7"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]
    items = prefetched(iter(range(1000)), depth=2)
    assert next(items) == 0
    items.close()  # the consumer stops early: the thread is stopped, nothing hangs
