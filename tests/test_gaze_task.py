"""The gaze task (RGP's): motion grids and ground-truth maps on one timeline, mirroring, the
frame-wise cross-entropy, and evaluation over the frames that have fixations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.features.inputs import ClipArrays
from vlpipe.features.store import ClipFeatures, write_store
from vlpipe.gaze_maps import write_gaze_store
from vlpipe.planning import InputRef
from vlpipe.tasks.gaze import GazeTask, mirror
from vlpipe.tasks.specs import task_spec

GRID = (2, 3, 4)  # a tiny motion grid (h, w, C)


def _world(tmp_path, n_clips: int = 6):
    """Clips of 1 s: a motion grid at 5 fps and fixations at the left or right third."""
    rng = np.random.default_rng(0)
    clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(n_clips)],
                          "split": ["train", "train", "val", "val", "test", "test"][:n_clips],
                          "start": 0.0, "end": 1.0})
    times = np.arange(5) / 5
    motion = {c: rng.normal(size=(5, *GRID)).astype(np.float32) for c in clips["clip_id"]}
    write_store(tmp_path / "motion.zarr",
                [ClipFeatures(c, f"id-{c}", times, {"grid": rows}) for c, rows in motion.items()],
                {"grid": (GRID, "float32", "step")},
                {"provenance": {"primary": "grid", "extractor": "motion",
                                "weights": "random-seed-0"}})
    rows = []
    for k, clip_id in enumerate(clips["clip_id"]):
        x = 0.2 if k % 2 else 0.8
        for t in np.arange(0, 0.8, 1 / 30):  # the last frame (0.8–1.0 s) has no gaze
            rows.append((clip_id, "s1", t, x, 0.5))
    fixations = pd.DataFrame(rows, columns=["clip_id", "subject", "time", "x", "y"])
    write_gaze_store(tmp_path / "gaze.zarr", fixations, clips, fps=5)
    arrays = ClipArrays([InputRef("motion", "motion", "grid"),
                         *(InputRef.parse(n, s) for n, s in task_spec("gaze").targets.items())],
                        {"motion": [tmp_path / "motion.zarr"], "gaze": [tmp_path / "gaze.zarr"]})
    return clips, arrays, motion


def test_mirror_flips_grid_columns_and_maps():
    feats = np.arange(2 * 6 * 4, dtype=np.float32).reshape(2, -1)  # (T, h·w·C), h=2, w=3, C=4
    maps = np.arange(2 * 9, dtype=np.float32).reshape(2, 3, 3)
    flipped, flipped_maps = mirror(feats, maps, [(0, 24, (2, 3, 4))])
    grid = feats.reshape(2, 2, 3, 4)
    np.testing.assert_array_equal(flipped.reshape(2, 2, 3, 4)[:, :, 0], grid[:, :, 2])
    np.testing.assert_array_equal(flipped_maps[:, :, 0], maps[:, :, 2])
    np.testing.assert_array_equal(mirror(flipped, flipped_maps, [(0, 24, (2, 3, 4))])[0], feats)


def test_targets_ride_on_the_inputs_timeline_unnormalised(tmp_path):
    clips, arrays, motion = _world(tmp_path)
    task = GazeTask(clips, arrays, feature_norm="none", max_frames=5)
    (inputs,) = task.model_inputs().video
    assert inputs.shape == GRID  # the grid survives: the model sees (h, w, C)
    feats, maps, valid = task._clip("c1")
    np.testing.assert_allclose(feats, motion["c1"].reshape(5, -1))
    assert maps.shape == (5, 49, 49) and valid.tolist() == [True] * 4 + [False]
    np.testing.assert_allclose(maps[valid].sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (24, int(0.2 * 49))
    points = task.fixations("c1")
    assert points[-1] is None and len(points[0]) == 6  # 30 Hz samples in a 0.2 s frame


def test_loss_is_the_frame_wise_cross_entropy_over_frames_with_gaze(tmp_path):
    clips, arrays, _ = _world(tmp_path)
    task = GazeTask(clips, arrays, feature_norm="none", batch_size=4)

    class Uniform(torch.nn.Module):
        def forward(self, feats, mask):
            b, n = mask.shape
            return torch.full((b, n, 49, 49), -math.log(49 * 49))

    batch = next(task.train_batches(np.random.default_rng(0)))
    assert batch.maps.shape == (2, 5, 49, 49) and batch.valid.sum() == 8
    # −Σ GT · log(1/2401) = log 2401 for every frame whose map sums to 1
    assert task.loss(Uniform(), batch).item() == pytest.approx(math.log(49 * 49), rel=1e-5)


def test_evaluation_prefers_the_map_that_follows_the_fixations(tmp_path):
    clips, arrays, _ = _world(tmp_path)
    task = GazeTask(clips, arrays, feature_norm="none", eval_size=28, eval_sigma=3.0)

    class Oracle(torch.nn.Module):  # the ground-truth map of the batch's clip, read back
        def forward(self, feats, mask):
            maps = torch.stack([torch.from_numpy(task._clip(c)[1].copy()) for c in self.ids])
            return (maps + 1e-9).log()

    class Flat(torch.nn.Module):
        def forward(self, feats, mask):
            b, n = mask.shape
            return torch.full((b, n, 49, 49), -math.log(49 * 49))

    oracle = Oracle()
    oracle.ids = task.eval_clips["test"]
    good = task.evaluate(oracle, "test", torch.device("cpu"))["gaze"]
    flat = task.evaluate(Flat(), "test", torch.device("cpu"))["gaze"]
    assert good["frames"] == flat["frames"] == 8  # 2 test clips × 4 frames with gaze
    assert good["CC"] > 0.8 > flat["CC"]
    assert good["AUC"] > 0.9 and good["Sim"] > flat["Sim"]


def test_examples_are_true_and_predicted_maps_at_steps_with_gaze(tmp_path):
    """The report's figure data: the first test clips, steps with gaze spread evenly (the last
    step of each clip has none), maps as 0–255 of their maximum."""
    clips, arrays, _ = _world(tmp_path)
    task = GazeTask(clips, arrays, feature_norm="none")

    class Peak(torch.nn.Module):  # all mass on cell (0, 0)
        def forward(self, feats, mask):
            b, n = mask.shape
            logits = torch.full((b, n, 49 * 49), -30.0)
            logits[..., 0] = 0.0
            return logits.log_softmax(-1).reshape(b, n, 49, 49)

    examples = task.examples(Peak(), torch.device("cpu"), clips=1, frames=3)
    assert [e["clip_id"] for e in examples] == ["c4"]
    (example,) = examples
    assert example["steps"] == [0, 2, 3]  # 3 of the 4 steps with gaze: linspace(0, 3, 3) → 0, 2, 3
    truth = task._clip("c4")[1]
    for step, true_map, predicted in zip(example["steps"], example["truth"],
                                         example["predicted"], strict=True):
        image = np.array(true_map)
        assert image.max() == 255 and image.min() >= 0
        np.testing.assert_allclose(image, 255 * truth[step] / truth[step].max(), atol=0.5)
        assert np.array(predicted)[0, 0] == 255 and np.array(predicted).sum() == 255
