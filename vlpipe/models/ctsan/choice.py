"""CT-SAN's multiple-choice model (thesis §4.2.6): a candidate sentence read by an LSTM that
starts from the clip's encoding (h_0 = s_N) with input semantic attention over the clip's
concepts; its last state scored ``S = w_sᵀ ReLU(W_a h_T + b_a)`` (Eq. 4.22). No output
attention, as the thesis. The sentence's reading depends on the clip, so the model scores a
task's pair batch itself (``score_pairs``), each clip encoded once.

Training adds λ1 g(γ) + λ2 L_con (Eq. 4.23) to the task's max-margin loss. ``init_from`` a
description run (`load_upstream`) copies the concept detector and its grid reduction only,
as the thesis transfers the detector, and fine-tunes them unless frozen.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.ctsan.sentence import ConceptSentenceReader
from vlpipe.models.ctsan.video import ConceptVideoEncoder, copy_detector
from vlpipe.nn.encoders import TextEmbedding


class CTSANChoice(nn.Module):
    """(clip, sentence) pairs → compatibility scores."""

    def __init__(self, config: CTSANConfig, grid: tuple[int, int, int], vocab_size: int,
                 concept_ids: tuple[int, ...], word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.embed = TextEmbedding(vocab_size, config.word_dim, init=word_vectors)
        self.video = ConceptVideoEncoder(config, grid, concept_ids)
        self.sentence = ConceptSentenceReader(config)
        self.score = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.ReLU(),
                                   nn.Linear(config.hidden, 1))  # w_sᵀ ReLU(W_a h + b_a)

    def score_pairs(self, batch) -> tuple[Tensor, Tensor]:
        """A `vlpipe.tasks.base.ConceptPairBatch` → scores (K, L) of its pairs and the
        auxiliary loss λ1 g(γ) + λ2 L_con (L_con over the batch's clips)."""
        clips = self.video(batch.feats, batch.feat_mask, self.embed)
        vi, ti = batch.clip_index.flatten(), batch.sentence_index.flatten()  # (P,)
        concepts = None if clips.concepts is None else clips.concepts[vi]
        h, sparsity = self.sentence(self.embed(batch.tokens[ti]), batch.token_mask[ti],
                                    concepts, start=(clips.h[vi], clips.c[vi]))  # h_0 = s_N
        scores = self.score(h).view(batch.clip_index.shape)
        return scores, self.video.auxiliary_loss(clips, batch.concepts, sparsity)

    def load_upstream(self, state: dict[str, Tensor], freeze: bool) -> list[str]:
        return copy_detector(self, state, freeze)
