"""CT-SAN's fill-in-the-blank model (thesis §4.2.5): a bidirectional layer-normalised LSTM over
the sentence (the BLANK token at the gap), both directions starting from the clip's encoding
(h_0^f = h_{T+1}^b = s_N), with input semantic attention at every word; at the blank
``o = tanh(W_o [h^f; h^b] + b_o)`` (Eq. 4.18) goes through the output semantic attention and a
softmax over the vocabulary (Eq. 4.19). Training adds λ1 (g(β) + g(γ)) + λ2 L_con (Eq. 4.20)
to the task's cross-entropy. ``init_from`` a description run copies its detector only
(`vlpipe.models.ctsan.video.copy_detector`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from vlpipe.models.ctsan.attention import InputAttention, OutputAttention, attention_sparsity
from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.ctsan.video import ConceptVideoEncoder, copy_detector
from vlpipe.nn.encoders import TextEmbedding
from vlpipe.nn.recurrent import LayerNormLSTM


def reversed_within_length(x: Tensor, mask: Tensor) -> Tensor:
    """Each row of ``x`` (B, M, ...) with its first ``mask.sum()`` steps in reverse order and
    its padding where it was; applying it twice gives ``x`` back."""
    lengths = mask.sum(dim=1, keepdim=True).long()  # (B, 1)
    steps = torch.arange(x.shape[1], device=x.device)[None]  # (1, M)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, M)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class CTSANBlank(nn.Module):
    """(clip, sentence with a blank) → logits over the vocabulary for the missing word."""

    def __init__(self, config: CTSANConfig, grid: tuple[int, int, int], vocab_size: int,
                 concept_ids: tuple[int, ...], word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.embed = TextEmbedding(vocab_size, config.word_dim, init=word_vectors)
        self.video = ConceptVideoEncoder(config, grid, concept_ids)
        self.input_proj = nn.Linear(config.word_dim, config.hidden)  # W_x
        self.forward_lstm = LayerNormLSTM(config.hidden, config.hidden, config.layers,
                                          config.dropout)
        self.backward_lstm = LayerNormLSTM(config.hidden, config.hidden, config.layers,
                                           config.dropout)
        self.merge = nn.Linear(2 * config.hidden, config.hidden)  # W_o, b_o
        self.read_input = self.read_output = None
        if config.detector:
            self.read_input = InputAttention(config.word_dim)
            self.read_output = OutputAttention(config.word_dim, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, vocab_size)  # W_y

    def blank_logits(self, batch) -> tuple[Tensor, Tensor]:
        """A `vlpipe.tasks.fill_in_blank.ConceptBlankBatch` → word logits (B, |V|) and the
        auxiliary loss."""
        clips = self.video(batch.feats, batch.feat_mask, self.embed)
        mask = batch.token_mask.to(clips.h.dtype)  # (B, M)
        words = self.dropout(self.embed(batch.tokens))  # (B, M, d)
        gamma = None
        if self.read_input is not None:
            words, gamma = self.read_input.each_word(words, clips.concepts)  # γ (B, M, K)
        inputs = self.input_proj(words)  # (B, M, D)
        start = (clips.h, clips.c)  # both directions start from s_N
        ahead = self.forward_lstm(inputs, mask, start)[0]  # (B, M, D)
        behind = reversed_within_length(
            self.backward_lstm(reversed_within_length(inputs, mask), mask, start)[0], mask)
        at_blank = torch.arange(len(batch.blank), device=inputs.device), batch.blank
        o = torch.tanh(self.merge(torch.cat([ahead[at_blank], behind[at_blank]], dim=-1)))
        sparsity = None
        if self.read_output is not None:
            o, beta = self.read_output(o, clips.concepts)  # (B, D), (B, K)
            sparsity = (attention_sparsity(gamma, mask)
                        + attention_sparsity(beta[:, None], torch.ones_like(mask[:, :1])))
        auxiliary = self.video.auxiliary_loss(clips, batch.concepts, sparsity)
        return self.out(self.dropout(o)), auxiliary

    def load_upstream(self, state: dict[str, Tensor], freeze: bool) -> list[str]:
        return copy_detector(self, state, freeze)
