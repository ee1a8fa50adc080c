"""CT-SAN's retrieval model (thesis §4.2.7): a query sentence read by an LSTM with input
semantic attention over the clip's concepts (Eq. 4.24), its last state h_T joined with the
clip's s_N by compact bilinear pooling ν (8,000-d) and scored ``S = W_sᵀ maxout(W_pᵀ ν(s_N,
h_T))`` (Eq. 4.25). Training: the task's max-margin loss (Δ = 3 in the thesis) plus λ1 g(γ) +
λ2 L_con (Eq. 4.26).

Choices the thesis leaves open (ours): the query LSTM starts from zeros (the multiple-choice
model starts from s_N; here s_N enters through ν); W_p is the maxout layer's weight per piece,
``maxout_pieces`` = 2 of them (Goodfellow et al.'s default), so W_p ∈ R^{8000×1500} and W_s ∈
R^{1500}; ν is used as the thesis writes it, without MCB's signed square root and ℓ2
normalisation.

The query's reading depends on the clip, so every (clip, query) pair runs its own LSTM. For the
retrieval task's interface (`vlpipe.tasks.retrieval`) a clip is encoded once into one packed
row ``[s_N; a_1 … a_K]`` (B, 1, D + K·d) and a query into its word embeddings; ``score_matrix``
runs the pairs in blocks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.ctsan.sentence import ConceptSentenceReader
from vlpipe.models.ctsan.video import ClipEncoding, ConceptVideoEncoder, copy_detector
from vlpipe.nn.bilinear import CompactBilinearPooling, Maxout
from vlpipe.nn.encoders import TextEmbedding


class CTSANRetrieval(nn.Module):
    """(clip, query) pairs → retrieval scores."""

    def __init__(self, config: CTSANConfig, grid: tuple[int, int, int], vocab_size: int,
                 concept_ids: tuple[int, ...], word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.hidden, self.word_dim = config.hidden, config.word_dim
        self.embed = TextEmbedding(vocab_size, config.word_dim, init=word_vectors)
        self.video = ConceptVideoEncoder(config, grid, concept_ids)
        self.sentence = ConceptSentenceReader(config)
        self.joint = CompactBilinearPooling(config.hidden, config.hidden, config.bilinear_dim)
        self.score = nn.Sequential(Maxout(config.bilinear_dim, config.joint_dim,
                                          config.maxout_pieces),  # W_p
                                   nn.Linear(config.joint_dim, 1))  # W_s

    def _pair_scores(self, clip_state: Tensor, concepts: Tensor | None, words: Tensor,
                     mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """s_N (P, D), concepts (P, K, d), query words (P, M, d) and mask (P, M) → scores (P,)
        and g(γ) per query."""
        h, sparsity = self.sentence(words, mask, concepts)  # h_T (P, D)
        return self.score(self.joint(clip_state, h)).squeeze(-1), sparsity

    def score_pairs(self, batch) -> tuple[Tensor, Tensor]:
        """A `vlpipe.tasks.base.ConceptPairBatch` → scores (K, L) of its pairs and the
        auxiliary loss λ1 g(γ) + λ2 L_con (L_con over the batch's clips)."""
        clips = self.video(batch.feats, batch.feat_mask, self.embed)
        vi, ti = batch.clip_index.flatten(), batch.sentence_index.flatten()  # (P,)
        concepts = None if clips.concepts is None else clips.concepts[vi]
        scores, sparsity = self._pair_scores(clips.h[vi, -1], concepts,
                                             self.embed(batch.tokens[ti]), batch.token_mask[ti])
        return (scores.view(batch.clip_index.shape),
                self.video.auxiliary_loss(clips, batch.concepts, sparsity))

    def encode_video(self, feats: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Clips → packed rows ``[s_N; a_1 … a_K]`` (B, 1, D + K·d) and a mask (B, 1)."""
        clips: ClipEncoding = self.video(feats, mask, self.embed)
        parts = [clips.h[:, -1]] + ([] if clips.concepts is None else [clips.concepts.flatten(1)])
        return torch.cat(parts, dim=1)[:, None], torch.ones_like(mask[:, :1])

    def encode_text(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Queries → their word embeddings (B, M, d) and mask: their reading needs the clip."""
        return self.embed(tokens), mask

    def _unpack(self, packed: Tensor) -> tuple[Tensor, Tensor | None]:
        """(P, 1, D + K·d) → s_N (P, D), concepts (P, K, d) (None: Base-SAN)."""
        state, concepts = packed[:, 0, : self.hidden], packed[:, 0, self.hidden :]
        if self.video.detector is None:
            return state, None
        return state, concepts.unflatten(1, (-1, self.word_dim))

    def pair_scores(self, v_enc: Tensor, v_mask: Tensor, t_enc: Tensor, t_mask: Tensor
                    ) -> Tensor:
        """Aligned pairs of encoded clips and queries → scores (P,)."""
        return self._pair_scores(*self._unpack(v_enc), t_enc, t_mask)[0]

    def score_matrix(self, v_enc: Tensor, v_mask: Tensor, t_enc: Tensor, t_mask: Tensor,
                     block: int = 4096) -> Tensor:
        """Every encoded clip (Nv, ...) against every query (Nt, ...) → (Nv, Nt), ``block``
        pairs at a time."""
        vi, ti = (index.flatten() for index in torch.meshgrid(
            torch.arange(len(v_enc), device=v_enc.device),
            torch.arange(len(t_enc), device=t_enc.device), indexing="ij"))  # (Nv·Nt,)
        scores = [self.pair_scores(v_enc[v], v_mask[v], t_enc[t], t_mask[t])
                  for v, t in zip(vi.split(block), ti.split(block), strict=True)]
        return torch.cat(scores).view(len(v_enc), len(t_enc))

    def load_upstream(self, state: dict[str, Tensor], freeze: bool) -> list[str]:
        return copy_detector(self, state, freeze)
