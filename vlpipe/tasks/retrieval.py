"""Text ↔ video retrieval (LSMDC / MSR-VTT RET protocol).

Training, ``negatives="sampled"`` (JSFusion): each of ``batch_size`` sentences is scored against
its own clip and ``num_negatives`` random other training clips (1 positive + 9 random
negatives), hinge loss over them. ``negatives="in_batch"`` (the authors' code): ``batch_size``
clips with one sentence each, every other clip of the batch a negative, in the configured
``directions``. Evaluation: the data set's fixed test pairs (its retrieval list, e.g. LSMDC's
1,000 pairs) — elsewhere one sentence per clip — every sentence scored against every clip,
R@1/5/10 and median rank in both directions.

Models plug in through ``encode_video(feats, mask)``, ``encode_text(tokens, mask)``,
``pair_scores(...)`` and ``score_matrix(v_enc, v_mask, t_enc, t_mask) -> (n_videos, n_texts)``.
A model that reads concept words (CT-SAN) trains on pair batches with the clips' concept labels
(`vlpipe.tasks.base.ConceptPairBatch`, in-batch negatives as a B × B grid of pairs), scored by
its ``score_pairs`` with its auxiliary loss.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vlpipe.metrics.retrieval import bidirectional_retrieval
from vlpipe.models import test_time_scorer
from vlpipe.nn.losses import in_batch_ranking_loss, max_margin_ranking_loss
from vlpipe.tasks.base import (
    PairBatch,
    TensorBatch,
    VideoTextTask,
    autocast_for,
    scores_and_auxiliary,
)
from vlpipe.tasks.batching import pad_tokens

log = logging.getLogger(__name__)


@dataclass
class RetrievalBatch(TensorBatch):
    """Aligned clips and sentences: sentence i belongs to clip i."""

    feats: torch.Tensor  # (B, N, D)
    feat_mask: torch.Tensor  # (B, N)
    tokens: torch.Tensor  # (B, M)
    token_mask: torch.Tensor  # (B, M)


def _concat_padded(blocks: list[tuple[torch.Tensor, torch.Tensor]]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded blocks [(B_i, T_i, E), (B_i, T_i)] → one (ΣB_i, max T_i, E) batch and its mask;
    the padding is masked, so scores do not change."""
    steps = max(enc.shape[1] for enc, _ in blocks)
    encodings = torch.cat([F.pad(enc, (0, 0, 0, steps - enc.shape[1])) for enc, _ in blocks])
    masks = torch.cat([F.pad(mask, (0, steps - mask.shape[1])) for _, mask in blocks])
    return encodings, masks


class RetrievalTask(VideoTextTask):
    """Data and objective of sentence → video retrieval."""

    name = "retrieval"

    def __init__(self, clips: pd.DataFrame, features, vocab,
                 task_list: pd.DataFrame | None = None, batch_size: int = 10,
                 negatives: str = "sampled", num_negatives: int = 9, margin: float = 10.0,
                 directions: str = "t2v", **common) -> None:
        super().__init__(clips, features, vocab, **common)
        if negatives not in ("sampled", "in_batch"):
            raise ValueError(f"negatives={negatives!r}; expected 'sampled' or 'in_batch'")
        self.batch_size, self.negatives, self.num_negatives = batch_size, negatives, num_negatives
        self.margin, self.directions = margin, directions
        self.eval_pairs = {split: [(c, self.sentences[c][0]) for c in self.splits.get(split, [])]
                           for split in ("val", "test")}
        if task_list is not None and len(task_list):
            self.eval_pairs["test"] = self._listed_pairs(task_list)

    def _listed_pairs(self, task_list: pd.DataFrame) -> list[tuple[str, list[int]]]:
        unknown = sorted(set(task_list["clip_id"]) - set(self.features))
        if unknown:
            raise KeyError(f"retrieval list: no features for clip(s) {unknown[:5]}")
        pairs = [(c, self.encode(s)) for c, s in zip(task_list["clip_id"], task_list["sentence"],
                                                    strict=True)]
        kept = [(c, ids) for c, ids in pairs if ids]
        if len(kept) < len(pairs):
            log.warning("retrieval list: %d of %d sentences have no in-vocabulary word and "
                        "are left out of the test", len(pairs) - len(kept), len(pairs))
        return kept

    def num_items(self, split: str) -> int:
        return len(self.eval_pairs[split])

    def _random_sentence(self, clip_id: str, rng: np.random.Generator) -> list[int]:
        return self.sentences[clip_id][rng.integers(len(self.sentences[clip_id]))]

    def train_batches(self, rng: np.random.Generator) -> Iterator[RetrievalBatch | PairBatch]:
        """One epoch: the training clips in random order, a random sentence of each."""
        clip_ids = self.splits["train"]
        order = rng.permutation(len(clip_ids))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            batch = [clip_ids[i] for i in order[start : start + self.batch_size]]
            sentences = [self._random_sentence(c, rng) for c in batch]
            if self.negatives == "in_batch" and self.concept_ids is not None:
                # (B videos, B sentences), the score matrix's layout
                yield self.pair_batch([[c] * len(batch) for c in batch],
                                      [sentences] * len(batch), positive=list(range(len(batch))))
            elif self.negatives == "in_batch":
                tokens, token_mask = pad_tokens(sentences)
                yield RetrievalBatch(*self.video_batch(batch), tokens, token_mask)
            else:
                candidates = [[c, *self._other_clips(c, rng)] for c in batch]
                yield self.pair_batch(candidates, [[s] * len(row) for s, row in
                                                   zip(sentences, candidates, strict=True)],
                                      positive=[0] * len(batch))

    def _other_clips(self, clip_id: str, rng: np.random.Generator) -> list[str]:
        """``num_negatives`` distinct random training clips other than ``clip_id`` (fewer if
        the training split is smaller)."""
        pool = self.splits["train"]
        picks = rng.choice(len(pool), size=min(self.num_negatives + 1, len(pool)), replace=False)
        return [pool[i] for i in picks if pool[i] != clip_id][: self.num_negatives]

    def loss(self, model: torch.nn.Module, batch: RetrievalBatch | PairBatch) -> torch.Tensor:
        if isinstance(batch, PairBatch):
            scores, auxiliary = scores_and_auxiliary(model, batch)
            if self.negatives == "in_batch":
                return in_batch_ranking_loss(scores, self.margin, self.directions) + auxiliary
            return max_margin_ranking_loss(scores, batch.positive, self.margin) + auxiliary
        v_enc, v_mask = model.encode_video(batch.feats, batch.feat_mask)
        t_enc, t_mask = model.encode_text(batch.tokens, batch.token_mask)
        scores = model.score_matrix(v_enc, v_mask, t_enc, t_mask)  # (B videos, B texts)
        return in_batch_ranking_loss(scores, self.margin, self.directions)

    @torch.no_grad()
    def score(self, model: torch.nn.Module, split: str, device: torch.device,
              block: int = 100) -> np.ndarray:
        """Scores (n_texts, n_videos) of the split's test sentences against its clips; the
        positive of sentence q is clip q. Each clip and sentence is encoded once, then every
        pair is scored by the test-time scorer its family registers if it has one (JSFusion's
        dense, blocked scorer), else by ``score_matrix``."""
        clip_ids, sentences = zip(*self.eval_pairs[split], strict=True)
        videos, texts = [], []
        with autocast_for(device):
            for start in range(0, len(clip_ids), block):
                feats, feat_mask = self.video_batch(list(clip_ids[start : start + block]))
                tokens, token_mask = pad_tokens(sentences[start : start + block])
                videos.append(model.encode_video(feats.to(device), feat_mask.to(device)))
                texts.append(model.encode_text(tokens.to(device), token_mask.to(device)))
            scorer = test_time_scorer(model)
            scores = scorer(*_concat_padded(videos), *_concat_padded(texts))  # (Nv, Nt)
        return scores.T.float().cpu().numpy()

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        model.eval()
        return bidirectional_retrieval(self.score(model, split, device))
