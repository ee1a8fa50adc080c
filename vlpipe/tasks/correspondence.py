"""Video ↔ sentence correspondence (Watch and Learn's LVC task) over noisy pairs.

Sentences enter as frozen sentence vectors (the text store), not words. Training: balanced
batches — the training clips in random order (the last partial batch dropped), each with its
own sentence (label 1) and with a random sentence of another training clip (label 0);
``frames_per_clip`` random frames per clip and step (repeated when a clip has fewer).
Evaluation: the data set's test pairs (its retrieval list; elsewhere one sentence per clip),
each sentence ranked against every clip ("video search", ``t2v``) and each clip against every
sentence ("sentence search", ``v2t``): mAP (= mean reciprocal rank), R@k and median rank.

``train_noise`` makes clean data noisy, as subtitles are: the sentences of that fraction of the
training clips are swapped among them (fixed by ``noise_seed``, the same for every run), so
those clips keep sentences of other clips. Validation and test pairs stay clean.

Models plug in through ``correspondence_loss(feats, mask, sentence_vectors, labels)``,
``encode_video(feats, mask)``, ``encode_text(sentence_vectors)`` and
``score_matrix(frames, mask, sentences) -> (n_sentences, n_clips)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vlpipe.metrics.retrieval import bidirectional_retrieval
from vlpipe.models.inputs import ModelInputs
from vlpipe.tasks.base import TensorBatch, VideoTextTask, autocast_for
from vlpipe.tasks.batching import pad_features


@dataclass
class CorrespondenceBatch(TensorBatch):
    """Pairs of (clip frames, sentence vector) with their labels (1 = aligned)."""

    feats: torch.Tensor  # (P, N, D)
    feat_mask: torch.Tensor  # (P, N)
    sentences: torch.Tensor  # (P, D_text)
    labels: torch.Tensor  # (P,)


class CorrespondenceTask(VideoTextTask):
    """Data and objective of learning which sentence goes with which clip."""

    name = "correspondence"

    def __init__(self, clips: pd.DataFrame, features, vocab,
                 sentence_vectors: dict[str, np.ndarray],
                 task_list: pd.DataFrame | None = None, batch_size: int = 60,
                 frames_per_clip: int = 5, train_noise: float = 0.0, noise_seed: int = 0,
                 **common) -> None:
        super().__init__(clips, features, vocab, **common)
        if not 0.0 <= train_noise <= 1.0:
            raise ValueError(f"train_noise={train_noise}; expected a fraction in [0, 1]")
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size={batch_size}; need an even number (half aligned, "
                             "half random pairs)")
        self.batch_size, self.frames_per_clip = batch_size, frames_per_clip
        missing = sorted(set(clips["clip_id"]) - set(sentence_vectors))
        if missing:
            raise KeyError(f"text store: no sentence vectors for clip(s) {missing[:5]}")
        self.texts = {c: list(sentences) for c, sentences in zip(clips["clip_id"],
                                                                 clips["sentences"], strict=True)}
        self.vectors = {c: np.asarray(sentence_vectors[c], dtype=np.float32) for c in self.texts}
        for clip_id, vectors in self.vectors.items():
            if len(vectors) != len(self.texts[clip_id]):
                raise ValueError(f"text store: clip {clip_id!r} has {len(vectors)} sentence "
                                 f"vectors for {len(self.texts[clip_id])} sentences; rebuild it")
        self.splits = {split: [c for c in group["clip_id"] if len(self.vectors[c])]
                       for split, group in clips.groupby("split")}
        if len(self.splits.get("train", [])) < 2:
            raise ValueError("correspondence needs at least 2 training clips with a sentence")
        self.train_vectors = self._noisy_training_sentences(train_noise, noise_seed)
        self.eval_pairs = {split: [(c, self.vectors[c][0]) for c in self.splits.get(split, [])]
                           for split in ("val", "test")}
        if task_list is not None and len(task_list):
            self.eval_pairs["test"] = self._listed_pairs(task_list)

    def model_inputs(self, word_vectors: np.ndarray | None = None) -> ModelInputs:
        """The frames and the size of the sentence vectors the model reads instead of words."""
        return dataclasses.replace(super().model_inputs(word_vectors),
                                   sentence_dim=next(iter(self.vectors.values())).shape[1])

    def _noisy_training_sentences(self, fraction: float, seed: int) -> dict[str, np.ndarray]:
        """The training clips' sentence vectors, those of ``fraction`` of the clips rotated
        among them (clip k of the chosen ones gets the sentences of clip k + 1)."""
        train = self.splits["train"]
        vectors = {c: self.vectors[c] for c in train}
        rng = np.random.default_rng(seed)
        chosen = [train[i] for i in rng.permutation(len(train))[: round(fraction * len(train))]]
        if len(chosen) >= 2:
            for clip_id, donor in zip(chosen, chosen[1:] + chosen[:1], strict=True):
                vectors[clip_id] = self.vectors[donor]
        return vectors

    def _listed_pairs(self, task_list: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
        """The listed (clip, sentence) test pairs; each sentence must be one of its clip's."""
        pairs = []
        for row in task_list.itertuples():
            if row.clip_id not in self.vectors:
                raise KeyError(f"retrieval list: no features or sentences for clip "
                               f"{row.clip_id!r}")
            if row.sentence not in self.texts[row.clip_id]:
                raise KeyError(f"retrieval list: sentence {row.sentence!r} is not one of clip "
                               f"{row.clip_id!r}'s sentences, so it has no vector")
            pairs.append((row.clip_id,
                          self.vectors[row.clip_id][self.texts[row.clip_id].index(row.sentence)]))
        return pairs

    def num_items(self, split: str) -> int:
        return len(self.eval_pairs[split])

    def report_info(self) -> dict:
        return {}

    def sample_videos(self, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (S, N, D) and mask of ``count`` random training clips (all if fewer)."""
        train = self.splits["train"]
        picks = np.random.default_rng(seed).permutation(len(train))[:count]
        return self.video_batch([train[i] for i in picks])

    def _frames(self, clip_id: str, rng: np.random.Generator) -> np.ndarray:
        """``frames_per_clip`` random frames of a clip in time order, with repeats if short."""
        frames = self.features[clip_id]
        picks = rng.choice(len(frames), self.frames_per_clip,
                           replace=len(frames) < self.frames_per_clip)
        return frames[np.sort(picks)]

    def train_batches(self, rng: np.random.Generator) -> Iterator[CorrespondenceBatch]:
        """One epoch: the training clips in random order, each with its sentence and a random
        other one; the clips left over after the last full batch wait for another epoch."""
        train = self.splits["train"]
        order = rng.permutation(len(train))
        half = self.batch_size // 2
        for start in range(0, len(order) - half + 1, half):
            clip_ids = [train[i] for i in order[start : start + half]]
            positives = [self._random_row(self.train_vectors[c], rng) for c in clip_ids]
            negatives = [self._random_row(self.train_vectors[self._other(c, rng)], rng)
                         for c in clip_ids]
            feats, feat_mask = pad_features([self._frames(c, rng) for c in clip_ids * 2])
            yield CorrespondenceBatch(feats, feat_mask,
                                      torch.from_numpy(np.stack(positives + negatives)),
                                      torch.tensor([1] * half + [0] * half))

    @staticmethod
    def _random_row(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return vectors[rng.integers(len(vectors))]

    def _other(self, clip_id: str, rng: np.random.Generator) -> str:
        train = self.splits["train"]
        while (other := train[rng.integers(len(train))]) == clip_id:
            pass
        return other

    def loss(self, model: torch.nn.Module, batch: CorrespondenceBatch) -> torch.Tensor:
        return model.correspondence_loss(batch.feats, batch.feat_mask, batch.sentences,
                                         batch.labels)

    @torch.no_grad()
    def score(self, model: torch.nn.Module, split: str, device: torch.device) -> np.ndarray:
        """Scores (n_sentences, n_clips) of a split's test pairs; sentence q belongs to clip q."""
        clip_ids, vectors = zip(*self.eval_pairs[split], strict=True)
        feats, mask = self.video_batch(list(clip_ids))
        feats, mask = feats.to(device), mask.to(device)
        with autocast_for(device):
            frames = model.encode_video(feats, mask)
            sentences = model.encode_text(torch.from_numpy(np.stack(vectors)).to(device))
            scores = model.score_matrix(frames, mask, sentences)
        return scores.float().cpu().numpy()

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        model.eval()
        return bidirectional_retrieval(self.score(model, split, device))
