"""Temp-Attention (Yao et al., ICCV 2015): an LSTM decoder with soft attention over the frames,
the captioning baseline of GEAN's and CT-SAN's tables and the base the captioning systems extend.

At step t the decoder attends over the projected frames with its previous state, reads
``[E(w_{t-1}); context]`` and predicts ``w_t`` from ``[h_t; context]``. ``attention="none"``
replaces the context by the mean of the frames (the mean-pool baseline). Token ids are the
vocabulary's plus one more, ``end_id = vocab_size``, which ends every caption and also starts
decoding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.captioner.config import CaptionerConfig
from vlpipe.models.inputs import ModelInputs
from vlpipe.nn.attention import FrameAttention
from vlpipe.nn.beam_search import teacher_forced
from vlpipe.nn.encoders import caption_embedding
from vlpipe.nn.layers import masked_apply, masked_mean


class AttentionCaptioner(nn.Module):
    """Frames (B, N, D) → word log-probabilities, one decoder step at a time."""

    def __init__(self, config: CaptionerConfig, vocab_size: int, video_dim: int,
                 word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.end_id = vocab_size
        self.embed = caption_embedding(vocab_size, config.word_dim, word_vectors)
        self.frame_proj = nn.Linear(video_dim, config.hidden)
        self.attention = FrameAttention(config.attention, config.hidden, config.hidden,
                                        config.attention_hidden)
        self.init_h = nn.Linear(config.hidden, config.hidden)
        self.init_c = nn.Linear(config.hidden, config.hidden)
        self.cell = nn.LSTMCell(config.word_dim + config.hidden, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * config.hidden, vocab_size + 1)

    def start(self, feats: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """The decoder's initial state for a batch of clips: projected frames, their mask and
        an LSTM state from their mean."""
        frames = masked_apply(self.frame_proj, feats, mask)  # (B, N, H)
        mean = masked_mean(frames, mask).to(frames.dtype)  # (B, H)
        return {"frames": frames, "mask": mask, "h": torch.tanh(self.init_h(mean)),
                "c": torch.tanh(self.init_c(mean))}

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One word: previous tokens (B,) → log-probabilities (B, V + 1) and the next state."""
        context = self.attention(state["frames"], state["mask"], state["h"])  # (B, H)
        inputs = torch.cat([self.dropout(self.embed(tokens)), context], dim=-1)
        h, c = self.cell(inputs, (state["h"], state["c"]))
        logits = self.out(self.dropout(torch.cat([h, context], dim=-1)))
        return F.log_softmax(logits.float(), dim=-1), {**state, "h": h, "c": c}

    def forward(self, feats: Tensor, mask: Tensor, inputs: Tensor) -> Tensor:
        """Teacher forcing: clips and input tokens (B, T) (end_id first) → log-probs (B, T, V+1)."""
        return teacher_forced(self, feats, mask, inputs)


def build(config: CaptionerConfig, inputs: ModelInputs) -> AttentionCaptioner:
    """The captioner over the frames (arrays side by side per step)."""
    if inputs.predicts != "caption":
        raise ValueError(f"the captioner writes captions, not {inputs.predicts!r}")
    return AttentionCaptioner(config, inputs.vocab_size, inputs.video_dim, inputs.word_vectors)
