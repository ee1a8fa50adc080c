"""Visual storytelling (LSMDC 2019 multi-sentence description, VIST): a set of consecutive clips
(or photos) → one sentence each, coherent as a story.

The sets are the task list's (`vlpipe.datasets.task_lists.build_stories`; VIST ships its
stories). Training: the training sets in random order, teacher forcing on every sentence,
cross-entropy on every target word and the end token, plus whatever the model adds (TAPM's
adaptation loss). Evaluation: each clip's sentence decoded (greedy, or beam search with
``beam`` > 1) and scored with the coco-caption metrics (×100) at two levels, as the thesis
reports them: **sentence** (each clip's sentence against its reference) and **set** (the set's
sentences joined against the joined references). Validation passes, which select the checkpoint
by sentence-level CIDEr, decode greedily (as the thesis decodes its ablations; beam search
rereads each sentence's whole sequence per step) and leave out METEOR.

Models plug in through ``forward(feats (B, C, N, D), mask (B, C, N), words (B, C, L)) ->
(log_probs (B, C, L + 1, V + 1) or None, auxiliary_loss)`` (None: an epoch without the
generation loss), ``start(feats, mask)`` / ``step(tokens, state)`` over the B·C sentences, and
``start_id`` / ``end_id`` (see `vlpipe.models.tapm`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vlpipe.metrics.captioning import corpora_metrics
from vlpipe.nn.beam_search import decode
from vlpipe.tasks.base import TensorBatch, VideoTextTask, autocast_for
from vlpipe.tasks.captioning import TEST_METRICS, VALIDATION_METRICS


@dataclass
class StoryBatch(TensorBatch):
    feats: torch.Tensor  # (B, C, N, D) the sets' clips
    feat_mask: torch.Tensor  # (B, C, N)
    words: torch.Tensor  # (B, C, L) each clip's sentence, 0-padded
    targets: torch.Tensor  # (B, C, L + 1) w_1 … w_n, end; -100 at padding


@dataclass(frozen=True)
class Story:
    set_id: str
    clip_ids: tuple[str, ...]
    sentences: tuple[str, ...]  # as written: the references


EXAMPLES = 3  # test stories the report shows


class StorytellingTask(VideoTextTask):
    """Data, objective and evaluation of sentence-per-clip stories."""

    name = "storytelling"

    def __init__(self, clips: pd.DataFrame, features, vocab,
                 task_list: pd.DataFrame | None = None, batch_size: int = 8, beam: int = 1,
                 **common) -> None:
        super().__init__(clips, features, vocab, **common)
        if task_list is None or task_list.empty:
            raise ValueError("storytelling: the data set has no story sets (tables/tasks/"
                             "storytelling.parquet is empty: no 5 consecutive captioned clips "
                             "of one split)")
        unknown = sorted({c for ids in task_list["clip_ids"] for c in ids} - set(self.features))
        if unknown:
            raise KeyError(f"story sets: no features for clip(s) {unknown[:5]}")
        self.batch_size, self.beam = batch_size, beam
        self.end_id = len(vocab)  # the model's end token (`TAPM.end_id`)
        self.stories = {split: [Story(row.set_id, tuple(row.clip_ids), tuple(row.sentences))
                                for row in group.itertuples()]
                        for split, group in task_list.groupby("split")}
        for split in ("train", "val", "test"):
            if not self.stories.get(split):
                raise ValueError(f"storytelling: no story set in the {split} split")

    def num_items(self, split: str) -> int:
        return len(self.stories[split])

    def _video(self, stories: list[Story]) -> tuple[torch.Tensor, torch.Tensor]:
        """The stories' clips (B, C, N, D) and masks (B, C, N)."""
        feats, mask = self.video_batch([c for story in stories for c in story.clip_ids])
        shape = (len(stories), len(stories[0].clip_ids))
        return feats.unflatten(0, shape), mask.unflatten(0, shape)

    def train_batches(self, rng: np.random.Generator) -> Iterator[StoryBatch]:
        """One epoch: the training sets in random order."""
        stories = self.stories["train"]
        order = rng.permutation(len(stories))
        for start in range(0, len(order), self.batch_size):
            batch = [stories[i] for i in order[start : start + self.batch_size]]
            sentences = [[self.encode(s) for s in story.sentences] for story in batch]
            length = max(len(words) for story in sentences for words in story)
            words = torch.zeros(len(batch), len(batch[0].clip_ids), length, dtype=torch.long)
            targets = torch.full((*words.shape[:2], length + 1), -100, dtype=torch.long)
            for b, story in enumerate(sentences):
                for c, ids in enumerate(story):
                    words[b, c, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                    targets[b, c, : len(ids) + 1] = torch.tensor([*ids, self.end_id])
            yield StoryBatch(*self._video(batch), words, targets)

    def loss(self, model: torch.nn.Module, batch: StoryBatch) -> torch.Tensor:
        log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.words)
        if log_probs is None:  # an epoch of the model's own loss only (TAPM's adaptation)
            return auxiliary
        words = F.nll_loss(log_probs.flatten(0, 2), batch.targets.flatten(), ignore_index=-100)
        return words + auxiliary

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, stories: list[Story], device: torch.device,
                 beam: int | None = None, block: int = 20) -> dict[str, list[str]]:
        """Each set's sentences, decoded ``block`` sets at a time (``beam``: the task's unless
        given)."""
        generated = {}
        for start in range(0, len(stories), block):
            chunk = stories[start : start + block]
            feats, mask = self._video(chunk)
            with autocast_for(device):
                state = model.start(feats.to(device), mask.to(device))
                decoded = decode(model.step, state, feats.shape[0] * feats.shape[1],
                                 model.start_id, model.end_id, self.max_words + 1,
                                 beam or self.beam)
            sentences = [self.vocab.decode(ids) for ids in decoded]
            for k, story in enumerate(chunk):
                size = len(story.clip_ids)
                generated[story.set_id] = sentences[k * size : (k + 1) * size]
        return generated

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        model.eval()
        stories = self.stories[split]
        generated = self.generate(model, stories, device, beam=1 if split == "val" else None)
        metrics = VALIDATION_METRICS if split == "val" else TEST_METRICS
        sentences = ({f"{s.set_id}#{i}": [ref] for s in stories
                      for i, ref in enumerate(s.sentences)},
                     {f"{s.set_id}#{i}": out for s in stories
                      for i, out in enumerate(generated[s.set_id])})
        sets = ({s.set_id: [" ".join(s.sentences)] for s in stories},
                {s.set_id: " ".join(generated[s.set_id]) for s in stories})
        scores = corpora_metrics({"sentence": sentences, "set": sets}, metrics)
        return {level: {name: 100.0 * value for name, value in level_scores.items()}
                for level, level_scores in scores.items()}

    def examples(self, model: torch.nn.Module, device: torch.device,
                 count: int = EXAMPLES) -> list[dict]:
        """The first ``count`` test sets: the decoded story beside the reference one."""
        model.eval()
        stories = self.stories["test"][:count]
        generated = self.generate(model, stories, device)
        return [{"set_id": s.set_id, "clip_ids": list(s.clip_ids),
                 "decoded": generated[s.set_id], "references": list(s.sentences)}
                for s in stories]
