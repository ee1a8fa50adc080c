"""Gaze prediction (RGP, thesis ch. 3): a 49×49 gaze map for every sampled frame of a clip.

The model reads the clip's feature inputs (C3D conv5b for RGP) and returns per-step
log-probabilities over the 49·49 cells; the ground truth is the gaze store's map on the same
steps (`vlpipe.gaze_maps`: binary fixation map → Gaussian σ = 2 → ℓ1-normalised), read as a
target beside the inputs. Training: clips in random order, frame-wise cross-entropy averaged
over the frames that have gaze, each clip mirrored left–right with probability ½ (inputs and
map). Evaluation: the metrics of `vlpipe.metrics.gaze` (Sim, CC, shuffled AUC, Judd AUC) on
every frame with gaze of the split's clips, the prediction upsampled and the fixation points
drawn at ``eval_size`` pixels; shuffled AUC takes its negatives from the fixations of other
clips of the split. The test clips are those of the test list (as for captioning, so RGP and
GEAN are tested on the same clips), the validation clips every validation clip.

Models plug in through ``forward(feats (B, N, D), mask (B, N)) -> log-probabilities
(B, N, 49, 49)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vlpipe.features.sequences import SequenceFeatures
from vlpipe.metrics.gaze import gaze_scores
from vlpipe.models.inputs import ModelInputs
from vlpipe.tasks.base import TensorBatch
from vlpipe.tasks.batching import pad_features
from vlpipe.tasks.specs import TaskSpec, task_spec

GAZE_STORE = "gaze"  # the gaze store among a run's stores (`vlpipe gaze-maps`)
METRICS = ("Sim", "CC", "sAUC", "AUC")
EXAMPLE_CLIPS, EXAMPLE_FRAMES = 2, 4  # test clips, and frames of each, the report's figure shows


def as_image(grid: np.ndarray) -> list[list[int]]:
    """A map (G, G) as integers 0–255 of its maximum (for the report's figure)."""
    peak = float(grid.max())
    scaled = grid / peak if peak > 0 else np.zeros_like(grid)
    return (255 * scaled).round().astype(int).tolist()


@dataclass
class GazeBatch(TensorBatch):
    feats: torch.Tensor  # (B, N, D)
    feat_mask: torch.Tensor  # (B, N)
    maps: torch.Tensor  # (B, N, G, G) ground-truth gaze maps, each summing to 1 where valid
    valid: torch.Tensor  # (B, N) a step of the clip that has gaze


def mirror(feats: np.ndarray, maps: np.ndarray, grids: list[tuple[int, int, tuple]]
           ) -> tuple[np.ndarray, np.ndarray]:
    """A clip flipped left–right: each grid input's columns and the gaze maps' columns.

    feats (T, D) with the grid inputs at ``grids`` = [(start, stop, (h, w, C))], maps (T, G, G).
    """
    feats = feats.copy()
    for start, stop, shape in grids:
        block = feats[:, start:stop].reshape(len(feats), *shape)  # (T, h, w, C)
        feats[:, start:stop] = block[:, :, ::-1].reshape(len(feats), -1)
    return feats, maps[:, :, ::-1].copy()


class GazeTask:
    """Clips' feature inputs and their gaze maps, the cross-entropy objective and the gaze
    metrics."""

    name = "gaze"

    def __init__(self, clips: pd.DataFrame, features, vocab=None,
                 task_list: pd.DataFrame | None = None, max_frames: int = 35,
                 feature_norm: str = "zscore", pca_dims: int = 64, batch_size: int = 8,
                 mirror: bool = True, eval_size: int = 112, eval_sigma: float = 19.0,
                 shuffled_negatives: int = 10, max_words: int | None = None) -> None:
        del vocab, max_words  # every task is built alike; gaze reads no text
        gazed = {c for c, rows in features.read_all(GAZE_STORE, "has_gaze").items() if rows.any()}
        present = set(features.clip_ids()) & gazed  # clips without any fixation teach nothing
        clips = clips[clips["clip_id"].isin(present)]
        train_ids = list(clips.loc[clips["split"] == "train", "clip_id"])
        targets = list(self.spec.targets)
        self.arrays, self.features = features, SequenceFeatures(
            features, list(clips["clip_id"]), train_ids, feature_norm, pca_dims, max_frames,
            targets=targets)
        self.batch_size, self.mirror = batch_size, mirror
        self.eval_size, self.eval_sigma = eval_size, eval_sigma
        self.shuffled_negatives = shuffled_negatives
        self.splits = {split: list(group["clip_id"]) for split, group in clips.groupby("split")}
        self.eval_clips = {split: self.splits.get(split, []) for split in ("val", "test")}
        if task_list is not None and len(task_list):
            listed = [c for c in dict.fromkeys(task_list["clip_id"]) if c in present]
            self.eval_clips["test"] = listed
        offsets = np.cumsum([0, *(int(np.prod(i.shape)) for i in self.features.inputs())])
        self.grids = [(int(lo), int(hi), i.shape) for i, lo, hi
                      in zip(self.features.inputs(), offsets[:-1], offsets[1:], strict=True)
                      if len(i.shape) == 3]

    @property
    def spec(self) -> TaskSpec:
        return task_spec(self.name)

    def model_inputs(self, word_vectors: np.ndarray | None = None) -> ModelInputs:
        return ModelInputs(self.features.inputs(), self.features.max_steps, self.spec.predicts,
                           vocab_size=0)

    def selection_metric(self, metrics: dict) -> float:
        return self.spec.selection(metrics)

    def report_info(self) -> dict:
        return {"eval_size": self.eval_size, "eval_sigma": self.eval_sigma}

    def num_items(self, split: str) -> int:
        return len(self.eval_clips[split])

    def _clip(self, clip_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """features (T, D), gaze maps (T, G, G), valid (T,) of one clip."""
        targets = self.features.targets(clip_id)
        return self.features[clip_id], targets["gaze"], targets["has_gaze"].astype(bool)

    def batch(self, clip_ids: list[str], rng: np.random.Generator | None = None) -> GazeBatch:
        """A padded batch; with ``rng`` (training) each clip is mirrored with probability ½."""
        feats, maps, valid = [], [], []
        for clip_id in clip_ids:
            clip_feats, clip_maps, clip_valid = self._clip(clip_id)
            if rng is not None and self.mirror and rng.random() < 0.5:
                clip_feats, clip_maps = mirror(clip_feats, clip_maps, self.grids)
            feats.append(clip_feats)
            maps.append(clip_maps)
            valid.append(clip_valid)
        padded, mask = pad_features(feats)
        steps = padded.shape[1]
        grid = maps[0].shape[1:]
        gt = torch.zeros(len(clip_ids), steps, *grid)
        ok = torch.zeros(len(clip_ids), steps, dtype=torch.bool)
        for row, (clip_maps, clip_valid) in enumerate(zip(maps, valid, strict=True)):
            gt[row, : len(clip_maps)] = torch.from_numpy(np.ascontiguousarray(clip_maps))
            ok[row, : len(clip_valid)] = torch.from_numpy(clip_valid)
        return GazeBatch(padded, mask, gt, ok & mask)

    def train_batches(self, rng: np.random.Generator) -> Iterator[GazeBatch]:
        """One epoch: the training clips with gaze in random order."""
        clip_ids = self.splits["train"]
        order = rng.permutation(len(clip_ids))
        for start in range(0, len(order), self.batch_size):
            yield self.batch([clip_ids[i] for i in order[start : start + self.batch_size]], rng)

    def loss(self, model: torch.nn.Module, batch: GazeBatch) -> torch.Tensor:
        """Frame-wise cross-entropy −Σ_cells GT · log p, averaged over the frames with gaze."""
        log_probs = model(batch.feats, batch.feat_mask)  # (B, N, G, G)
        per_frame = -(batch.maps * log_probs.float()).flatten(2).sum(-1)  # (B, N)
        return per_frame[batch.valid].mean()

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, clip_ids: list[str], device: torch.device,
                block: int = 16) -> dict[str, np.ndarray]:
        """clip → predicted gaze probabilities (T, G, G) on its steps."""
        model.eval()
        out = {}
        for start in range(0, len(clip_ids), block):
            chunk = clip_ids[start : start + block]
            batch = self.batch(chunk)
            probs = model(batch.feats.to(device), batch.feat_mask.to(device)).float().exp()
            for row, clip_id in enumerate(chunk):
                out[clip_id] = probs[row, : int(batch.feat_mask[row].sum())].cpu().numpy()
        return out

    def fixations(self, clip_id: str) -> list[np.ndarray | None]:
        """Per step of the clip's features: its gaze frame's fixation points (K, 2), normalised
        (x, y), or None where the frame has no gaze."""
        frames = self.features.targets(clip_id)["gaze_frame"]
        _, _, valid = self._clip(clip_id)
        points = self.arrays.read_instances(GAZE_STORE, clip_id, ("point", "step"))
        return [points["point"][points["step"] == frame] if ok else None
                for frame, ok in zip(frames, valid, strict=True)]

    def examples(self, model: torch.nn.Module, device: torch.device,
                 clips: int = EXAMPLE_CLIPS, frames: int = EXAMPLE_FRAMES) -> list[dict]:
        """The first ``clips`` test clips, each at up to ``frames`` of its steps with gaze,
        spread evenly: the step indices and the true and predicted maps there (`as_image`)."""
        clip_ids = self.eval_clips["test"][:clips]
        predictions = self.predict(model, clip_ids, device)
        examples = []
        for clip_id in clip_ids:
            _, truth, valid = self._clip(clip_id)
            gazed = np.flatnonzero(valid)
            steps = gazed[np.linspace(0, len(gazed) - 1, min(frames, len(gazed))).round()
                          .astype(int)]
            examples.append({"clip_id": clip_id, "steps": steps.tolist(),
                             "truth": [as_image(truth[s]) for s in steps],
                             "predicted": [as_image(predictions[clip_id][s]) for s in steps]})
        return examples

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        """The gaze metrics averaged over every frame with gaze of the split's clips."""
        clip_ids = self.eval_clips[split]
        predictions = self.predict(model, clip_ids, device)
        frames = [(clip_id, pred, points)
                  for clip_id in clip_ids
                  for pred, points in zip(predictions[clip_id], self.fixations(clip_id),
                                          strict=True)
                  if points is not None and len(points)]
        clip_of = np.array([clip_ids.index(clip_id) for clip_id, _, _ in frames])
        rng = np.random.default_rng(0)  # the same shuffled negatives for every model
        scores = []
        for k, (_, pred, points) in enumerate(frames):
            others = np.flatnonzero(clip_of != clip_of[k])  # frames of other clips
            picks = rng.choice(others, min(self.shuffled_negatives, len(others)), replace=False)
            negatives = np.concatenate([frames[i][2] for i in picks])
            scores.append(gaze_scores(pred, points, negatives, (self.eval_size,) * 2,
                                      self.eval_sigma))
        if not scores:
            raise ValueError(f"gaze: no {split} clip has a frame with fixations")
        means = {name: float(np.mean([s[name] for s in scores])) for name in METRICS}
        return {"gaze": {**means, "frames": len(scores)}}
