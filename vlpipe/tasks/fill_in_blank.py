"""Fill in the blank (LSMDC FIB): predict the word missing from a clip's sentence.

The sentence is encoded with the vocabulary's BLANK id at the gap; the model (output="word")
scores every vocabulary word (JSFusion: softmax over the vocabulary, cross-entropy loss). A
model that reads concept words (CT-SAN) is given the batch's concept labels as well and scores
it itself, ``blank_logits(batch) -> (logits, auxiliary_loss)``, the loss added.
Accuracy counts every listed blank: one whose word is outside the vocabulary cannot be
predicted and counts as wrong, so numbers stay comparable across vocabularies.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vlpipe.datasets.base import BLANK_MARKER
from vlpipe.metrics.choice import choice_accuracy
from vlpipe.tasks.base import TensorBatch, VideoTextTask, autocast_for
from vlpipe.tasks.batching import pad_tokens
from vlpipe.text import SPECIALS, tokenize

log = logging.getLogger(__name__)


@dataclass
class BlankBatch(TensorBatch):
    feats: torch.Tensor  # (B, N, D)
    feat_mask: torch.Tensor  # (B, N)
    tokens: torch.Tensor  # (B, M) with the BLANK id at the gap
    token_mask: torch.Tensor  # (B, M)
    blank: torch.Tensor  # (B,) position of the gap
    answer: torch.Tensor  # (B,) vocabulary id of the missing word, -1 if out of vocabulary


@dataclass
class ConceptBlankBatch(BlankBatch):
    concepts: torch.Tensor  # (B, C) the clips' concept labels, multi-hot


@dataclass(frozen=True)
class BlankItem:
    clip_id: str
    tokens: list[int]
    blank: int
    answer: int


class FillInBlankTask(VideoTextTask):
    """Data and objective of fill-in-the-blank."""

    name = "fill_in_blank"

    def __init__(self, clips: pd.DataFrame, features, vocab,
                 task_list: pd.DataFrame | None = None, batch_size: int = 32,
                 **common) -> None:
        super().__init__(clips, features, vocab, **common)
        if task_list is None or not len(task_list):
            raise ValueError("fill-in-the-blank needs its task list (tables/tasks/"
                             "fill_in_blank.parquet)")
        unknown = sorted(set(task_list["clip_id"]) - set(self.features))
        if unknown:
            raise KeyError(f"fill-in-the-blank list: no features for clip(s) {unknown[:5]}")
        self.batch_size = batch_size
        self.items = {split: [self._encode_item(row) for row in group.itertuples()]
                      for split, group in task_list.groupby("split")}
        self.train_items = [item for item in self.items.get("train", []) if item.answer >= 0]
        if not self.train_items:
            raise ValueError("fill-in-the-blank: no training blank with an in-vocabulary answer")
        skipped = len(self.items.get("train", [])) - len(self.train_items)
        if skipped:
            log.warning("fill-in-the-blank: %d training blanks answer an out-of-vocabulary "
                        "word and are not trained on", skipped)

    def _encode_item(self, row) -> BlankItem:
        """Token ids with the BLANK id at the gap; beyond ``max_words`` the words nearest to the
        gap are kept, as evenly on both sides as the sentence allows."""
        left, right = row.sentence.split(BLANK_MARKER, 1)
        left_ids = self.vocab.encode(left, sys.maxsize)
        right_ids = self.vocab.encode(right, sys.maxsize)
        context = self.max_words - 1
        keep_left = min(len(left_ids), max(-(-context // 2), context - len(right_ids)))
        keep_right = min(len(right_ids), context - keep_left)
        tokens = [*left_ids[len(left_ids) - keep_left :], self.vocab.blank_id,
                  *right_ids[:keep_right]]
        words = tokenize(row.answer)
        answer = self.vocab.ids.get(words[0], -1) if words else -1
        return BlankItem(row.clip_id, tokens, keep_left, answer)

    def num_items(self, split: str) -> int:
        return len(self.items.get(split, []))

    def _batch(self, items: list[BlankItem]) -> BlankBatch:
        tokens, token_mask = pad_tokens([item.tokens for item in items])
        clip_ids = [item.clip_id for item in items]
        fields = (*self.video_batch(clip_ids), tokens, token_mask,
                  torch.tensor([item.blank for item in items]),
                  torch.tensor([item.answer for item in items]))
        if self.concept_ids is None:
            return BlankBatch(*fields)
        return ConceptBlankBatch(*fields, self.concept_labels(clip_ids))

    def train_batches(self, rng: np.random.Generator) -> Iterator[BlankBatch]:
        order = rng.permutation(len(self.train_items))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            yield self._batch([self.train_items[i] for i in order[start : start + self.batch_size]])

    @staticmethod
    def logits(model: torch.nn.Module, batch: BlankBatch
               ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Word logits (B, |V|), padding and BLANK never the answer, and the model's
        auxiliary loss (0 unless it reads concepts)."""
        if isinstance(batch, ConceptBlankBatch):
            logits, auxiliary = model.blank_logits(batch)
        else:
            v_enc, v_mask = model.encode_video(batch.feats, batch.feat_mask)
            t_enc, t_mask = model.encode_text(batch.tokens, batch.token_mask)
            logits = model.word_logits(v_enc, v_mask, t_enc, t_mask, batch.blank)  # (B, |V|)
            auxiliary = 0.0
        special = torch.arange(logits.shape[1], device=logits.device) < len(SPECIALS)
        return logits.masked_fill(special, float("-inf")), auxiliary

    def loss(self, model: torch.nn.Module, batch: BlankBatch) -> torch.Tensor:
        logits, auxiliary = self.logits(model, batch)
        return F.cross_entropy(logits, batch.answer) + auxiliary

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device,
                 block: int = 128) -> dict:
        model.eval()
        items = self.items.get(split, [])
        if not items:
            raise ValueError(f"no fill-in-the-blank items in split {split!r}")
        logits = []
        with autocast_for(device):
            for start in range(0, len(items), block):
                batch = self._batch(items[start : start + block]).to(device)
                logits.append(self.logits(model, batch)[0].float().cpu())
        answers = np.array([item.answer for item in items])
        return {"fib": {"accuracy": choice_accuracy(torch.cat(logits).numpy(), answers)}}
