"""Text ↔ video retrieval (LSMDC / MSR-VTT RET protocol).

Training: batches of ``batch_size`` clips with one random sentence each; every sentence's own clip
is its positive and the other clips of the batch are its negatives (JSFusion: 1 positive +
9 random negatives). Evaluation: one sentence per test clip, every sentence scored against every
clip, R@1/5/10 and median rank in both directions.

Models plug in through three methods: ``encode_video(feats, mask)``, ``encode_text(tokens, mask)``
and ``score_matrix(v_enc, v_mask, t_enc, t_mask) -> (n_videos, n_texts)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vlpipe.metrics.retrieval import bidirectional_retrieval
from vlpipe.models.losses import in_batch_ranking_loss
from vlpipe.sequences import normalize_blocks, pad_features, pad_tokens, subsample
from vlpipe.text import Vocabulary


@dataclass
class RetrievalBatch:
    feats: torch.Tensor  # (B, N, D)
    feat_mask: torch.Tensor  # (B, N)
    tokens: torch.Tensor  # (B, M)
    token_mask: torch.Tensor  # (B, M)

    def to(self, device: torch.device) -> RetrievalBatch:
        return RetrievalBatch(*(t.to(device) for t in (self.feats, self.feat_mask,
                                                          self.tokens, self.token_mask)))


class RetrievalTask:
    """Data and objective of sentence → video retrieval."""

    def __init__(self, clips: pd.DataFrame, features: dict[str, np.ndarray], vocab: Vocabulary,
                 max_frames: int = 40, max_words: int = 40, batch_size: int = 10,
                 margin: float = 10.0, directions: str = "t2v",
                 feature_norm: str = "zscore", pca_dims: int = 64,
                 blocks: list[int] | None = None) -> None:
        self.batch_size, self.margin, self.directions = batch_size, margin, directions
        train_ids = clips.loc[clips["split"] == "train", "clip_id"]
        # each extractor's block of columns (``blocks``) is normalised on its own
        features = normalize_blocks(features, train_ids, feature_norm, blocks, pca_dims)
        self.features = {c: subsample(f, max_frames) for c, f in features.items()}
        # Sentences reduced to in-vocabulary ids; a sentence left empty carries no signal.
        self.sentences = {
            row.clip_id: [ids for s in row.sentences if (ids := vocab.encode(s, max_words))]
            for row in clips.itertuples()
        }
        self.splits = {split: [c for c in group["clip_id"] if self.sentences[c]]
                       for split, group in clips.groupby("split")}

    @property
    def feature_dim(self) -> int:
        """Size of one step's features as the model sees them."""
        return next(iter(self.features.values())).shape[1]

    def _batch(self, clip_ids: list[str], sentences: list[list[int]]) -> RetrievalBatch:
        feats, feat_mask = pad_features([self.features[c] for c in clip_ids])
        tokens, token_mask = pad_tokens(sentences)
        return RetrievalBatch(feats, feat_mask, tokens, token_mask)

    def train_batches(self, rng: np.random.Generator) -> Iterator[RetrievalBatch]:
        """One epoch: the training clips in random order, a random sentence of each."""
        clip_ids = self.splits["train"]
        order = rng.permutation(len(clip_ids))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            batch = [clip_ids[i] for i in order[start : start + self.batch_size]]
            sentences = [self.sentences[c][rng.integers(len(self.sentences[c]))] for c in batch]
            yield self._batch(batch, sentences)

    def loss(self, model: torch.nn.Module, batch: RetrievalBatch) -> torch.Tensor:
        v_enc, v_mask = model.encode_video(batch.feats, batch.feat_mask)
        t_enc, t_mask = model.encode_text(batch.tokens, batch.token_mask)
        scores = model.score_matrix(v_enc, v_mask, t_enc, t_mask)  # (B videos, B texts)
        return in_batch_ranking_loss(scores, self.margin, self.directions)

    @torch.no_grad()
    def score(self, model: torch.nn.Module, split: str, device: torch.device,
              block: int = 100) -> np.ndarray:
        """Scores (n_texts, n_videos) of each clip's first sentence against every clip."""
        clip_ids = self.splits[split]
        first_sentences = [self.sentences[c][0] for c in clip_ids]
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else contextlib.nullcontext())
        videos, texts = [], []
        with autocast:
            for start in range(0, len(clip_ids), block):
                batch = self._batch(clip_ids[start : start + block],
                                    first_sentences[start : start + block]).to(device)
                videos.append(model.encode_video(batch.feats, batch.feat_mask))
                texts.append(model.encode_text(batch.tokens, batch.token_mask))
            rows = []
            for v_enc, v_mask in videos:  # (block videos) × (all texts), block by block
                rows.append(torch.cat([model.score_matrix(v_enc, v_mask, t_enc, t_mask)
                                       for t_enc, t_mask in texts], dim=1))
        return torch.cat(rows).T.float().cpu().numpy()

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        model.eval()
        return bidirectional_retrieval(self.score(model, split, device))

    @staticmethod
    def selection_metric(metrics: dict) -> float:
        """Model selection: mean of text→video R@1, R@5, R@10."""
        t2v = metrics["t2v"]
        return (t2v["R@1"] + t2v["R@5"] + t2v["R@10"]) / 3
