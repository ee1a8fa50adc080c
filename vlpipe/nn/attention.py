"""Soft attention over a clip's frames, shared by the models (WAL, captioning)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlpipe.nn.layers import masked_mean
from vlpipe.nn.names import ATTENTIONS


class FrameAttention(nn.Module):
    """A query's soft attention over a clip's frames; pools the frames into one vector.

    The query is a sentence (WAL) or a decoder state (captioning). "dot": aᵢ = fᵢᵀq (needs
    query_dim = frame_dim); "multiplicative": fᵢᵀWq; "additive" (Bahdanau): uᵀtanh(W_f fᵢ + W_q q);
    "none": the mean of the valid frames. Softmax over the valid frames only.
    """

    def __init__(self, kind: str, frame_dim: int, query_dim: int, hidden: int) -> None:
        super().__init__()
        if kind not in ATTENTIONS:
            raise ValueError(f"attention={kind!r}; allowed: {ATTENTIONS}")
        if kind == "dot" and frame_dim != query_dim:
            raise ValueError(f"dot attention needs equal sizes, got {frame_dim} and {query_dim}")
        self.kind = kind
        if kind == "multiplicative":
            self.query = nn.Linear(query_dim, frame_dim, bias=False)
        elif kind == "additive":
            self.frame_key = nn.Linear(frame_dim, hidden)
            self.sentence_key = nn.Linear(query_dim, hidden, bias=False)
            self.score = nn.Linear(hidden, 1, bias=False)

    def _logits(self, frames: Tensor, sentences: Tensor, all_pairs: bool) -> Tensor:
        """frames (V, N, E), sentences (T, E) → (T, V, N) if all_pairs, else (P, N), P=V=T."""
        if self.kind == "additive":
            keys = self.frame_key(frames)  # (V, N, H)
            queries = self.sentence_key(sentences)  # (T, H)
            queries = queries[:, None, None] if all_pairs else queries[:, None]
            return self.score(torch.tanh(keys + queries)).squeeze(-1)
        queries = self.query(sentences) if self.kind == "multiplicative" else sentences
        pattern = "vne,te->tvn" if all_pairs else "pne,pe->pn"
        return torch.einsum(pattern, frames, queries)

    def forward(self, frames: Tensor, mask: Tensor, sentences: Tensor,
                all_pairs: bool = False) -> Tensor:
        """Pooled video vectors: (T, V, E) for every (sentence, clip) if all_pairs, else one
        per aligned pair (P, E)."""
        if self.kind == "none":
            pooled = masked_mean(frames, mask).to(frames.dtype)  # (V, E)
            return pooled.expand(len(sentences), -1, -1) if all_pairs else pooled
        logits = self._logits(frames, sentences, all_pairs)
        weights = logits.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        pattern = "tvn,vne->tve" if all_pairs else "pn,pne->pe"
        return torch.einsum(pattern, weights, frames)
