"""Multiple choice (LSMDC MC / MSR-VTT-MC): pick the clip's sentence among 5 candidates.

Training (JSFusion): each training clip is a query whose candidates are its own sentence plus
``num_negatives`` others — the 4 distractors of its MC item when the task list has training
items (built lists do, see `vlpipe.datasets.task_lists`), then random sentences of other
training clips (GT + 4 distractors + 5 random in the paper; a clip without an item gets
``num_negatives`` random ones) — no sentence twice, hinge loss over the candidates.
Evaluation: the task list's MC items of a split; accuracy = share of items whose
highest-scoring candidate is the answer. A candidate with no in-vocabulary word is an empty
sentence, which the text encoders read as zeros: it still scores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from vlpipe.metrics.choice import choice_accuracy
from vlpipe.nn.losses import max_margin_ranking_loss
from vlpipe.tasks.base import PairBatch, VideoTextTask, autocast_for, scores_and_auxiliary

log = logging.getLogger(__name__)


class MultipleChoiceTask(VideoTextTask):
    """Data and objective of video → sentence multiple choice."""

    name = "multiple_choice"
    MAX_DRAWS_PER_NEGATIVE = 100  # random draws before giving up on distinct negatives

    def __init__(self, clips: pd.DataFrame, features, vocab,
                 task_list: pd.DataFrame | None = None, batch_size: int = 10,
                 num_negatives: int = 9, margin: float = 10.0, **common) -> None:
        super().__init__(clips, features, vocab, **common)
        if task_list is None or not len(task_list):
            raise ValueError("multiple choice needs its task list (tables/tasks/"
                             "multiple_choice.parquet): the data set's MC items")
        self.batch_size, self.num_negatives, self.margin = batch_size, num_negatives, margin
        if len(self.splits.get("train", [])) < 2:
            raise ValueError("multiple choice needs at least 2 training clips with a sentence "
                             "(the negatives are other clips' sentences)")
        unknown = sorted(set(task_list["clip_id"]) - set(self.features))
        if unknown:
            raise KeyError(f"multiple-choice list: no features for clip(s) {unknown[:5]}")
        self.items = {split: self._encode_items(group)
                      for split, group in task_list.groupby("split")}
        self.distractors = {clip_id: candidates[:answer] + candidates[answer + 1 :]
                            for clip_id, candidates, answer in self.items.get("train", [])}
        unlisted = sum(c not in self.distractors for c in self.splits["train"])
        if unlisted:
            log.info("multiple choice: %d of %d training clips have no listed distractors; "
                     "their candidates are the GT + %d random sentences", unlisted,
                     len(self.splits["train"]), num_negatives)

    def _encode_items(self, items: pd.DataFrame) -> list[tuple[str, list[list[int]], int]]:
        """(clip, candidate token ids, answer) per item. A candidate without in-vocabulary
        words is kept, empty (it scores: the encoders read it as zeros)."""
        encoded = []
        for item in items.itertuples():
            candidates = [self.encode(s) for s in item.candidates]
            encoded.append((item.clip_id, candidates, int(item.answer)))
        return encoded

    def report_info(self) -> dict:
        candidates = {len(cands) for items in self.items.values() for _, cands, _ in items}
        return {**super().report_info(), "n_candidates": max(candidates)}

    def num_items(self, split: str) -> int:
        return len(self.items.get(split, []))

    def train_batches(self, rng: np.random.Generator) -> Iterator[PairBatch]:
        """One epoch: training clips in random order, each with its candidate sentences."""
        clip_ids = self.splits["train"]
        order = rng.permutation(len(clip_ids))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            batch = [clip_ids[i] for i in order[start : start + self.batch_size]]
            candidates = [self._candidates(c, rng) for c in batch]
            yield self.pair_batch([[c] * len(row) for c, row in zip(batch, candidates,
                                                                    strict=True)],
                                  candidates, positive=[0] * len(batch))

    def _candidates(self, clip_id: str, rng: np.random.Generator) -> list[list[int]]:
        """``num_negatives + 1`` candidates, the GT first: a random sentence of the clip, its
        listed distractors, then random sentences of other training clips that are none of the
        clip's sentences nor a candidate already (compared as token ids)."""
        own = self.sentences[clip_id]
        candidates = [own[rng.integers(len(own))], *self.distractors.get(clip_id, [])]
        candidates = candidates[: self.num_negatives + 1]
        taken = {tuple(s) for s in [*own, *candidates]}
        pool, draws = self.splits["train"], 0
        while len(candidates) <= self.num_negatives:
            if draws == self.MAX_DRAWS_PER_NEGATIVE * self.num_negatives:
                raise ValueError(f"multiple choice: could not draw {self.num_negatives} "
                                 f"distinct negative sentences for clip {clip_id!r} from the "
                                 "training sentences; lower num_negatives")
            draws += 1
            sentences = self.sentences[pool[rng.integers(len(pool))]]
            sentence = sentences[rng.integers(len(sentences))]
            if tuple(sentence) not in taken:
                taken.add(tuple(sentence))
                candidates.append(sentence)
        return candidates

    def loss(self, model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
        scores, auxiliary = scores_and_auxiliary(model, batch)
        return max_margin_ranking_loss(scores, batch.positive, self.margin) + auxiliary

    @torch.no_grad()
    def score(self, model: torch.nn.Module, split: str, device: torch.device,
              block: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Scores (items, candidates) of a split's MC items and their answers (items,)."""
        items = self.items.get(split, [])
        if not items:
            raise ValueError(f"no multiple-choice items in split {split!r}")
        scores = []
        with autocast_for(device):
            for start in range(0, len(items), block):
                chunk = items[start : start + block]
                batch = self.pair_batch([[c] * len(cands) for c, cands, _ in chunk],
                                        [cands for _, cands, _ in chunk],
                                        positive=[answer for _, _, answer in chunk])
                scores.append(scores_and_auxiliary(model, batch.to(device))[0].float().cpu())
        return torch.cat(scores).numpy(), np.array([answer for _, _, answer in items])

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        model.eval()
        scores, answers = self.score(model, split, device)
        return {"mc": {"accuracy": choice_accuracy(scores, answers)}}
