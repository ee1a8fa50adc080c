"""S2VT (Venugopalan et al., ICCV 2015): one stack of two LSTMs reads a clip's frames, then
writes its caption.

Encoding (``start``): at each frame the first LSTM reads the linearly embedded frame and the
second reads [h₁ ‖ 0] (a zero "pad" word); a padded (masked) frame keeps both states.
Decoding (``step``): the first LSTM reads a zero "pad" frame, the second [h₁ ‖ E(w_{t−1})], and
a softmax over the words reads h₂. Dropout on both LSTMs' outputs. Token ids as
`vlpipe.models.captioner`: ``end_id = vocab_size`` ends every caption and starts decoding
(S2VT's <BOS>/<EOS>). Inputs are read side by side (``inputs.video_dim``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.inputs import ModelInputs
from vlpipe.models.s2vt.config import S2VTConfig
from vlpipe.nn.beam_search import teacher_forced
from vlpipe.nn.encoders import TextEmbedding


class S2VT(nn.Module):
    """Frames (B, N, D) → word log-probabilities, one decoder step at a time."""

    def __init__(self, config: S2VTConfig, vocab_size: int, video_dim: int,
                 word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.config, self.end_id = config, vocab_size
        tokens = vocab_size + 1
        if word_vectors is not None:  # the end token gets a zero row
            word_vectors = np.concatenate([word_vectors, np.zeros((1, config.word_dim),
                                                                  word_vectors.dtype)])
        self.embed = TextEmbedding(tokens, config.word_dim, init=word_vectors)
        self.frame_proj = nn.Linear(video_dim, config.frame_dim)
        self.lstm1 = nn.LSTMCell(config.frame_dim, config.hidden)
        self.lstm2 = nn.LSTMCell(config.hidden + config.word_dim, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, tokens)

    def _layers(self, frames: Tensor, words: Tensor, state: dict[str, Tensor]
                ) -> dict[str, Tensor]:
        """Both LSTMs one step: frames (B, F), words (B, E) → the new states."""
        h1, c1 = self.lstm1(frames, (state["h1"], state["c1"]))
        h2, c2 = self.lstm2(torch.cat([self.dropout(h1), words], dim=-1),
                            (state["h2"], state["c2"]))
        return {"h1": h1, "c1": c1, "h2": h2, "c2": c2}

    def start(self, feats: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Encode the frames: the stack's states after the clip's last valid frame."""
        batch, hidden = len(feats), self.config.hidden
        frames = self.frame_proj(feats)  # (B, N, F)
        state = {key: frames.new_zeros(batch, hidden) for key in ("h1", "c1", "h2", "c2")}
        no_word = frames.new_zeros(batch, self.config.word_dim)
        for t in range(frames.shape[1]):
            new = self._layers(frames[:, t], no_word, state)
            keep = mask[:, t, None]  # (B, 1)
            state = {key: torch.where(keep, new[key], state[key]) for key in state}
        return state

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One word: previous tokens (B,) → log-probabilities (B, V + 1) and the next state."""
        words = self.embed(tokens)  # (B, E)
        no_frame = words.new_zeros(len(tokens), self.config.frame_dim)
        state = self._layers(no_frame, words, state)
        logits = self.out(self.dropout(state["h2"]))
        return F.log_softmax(logits.float(), dim=-1), state

    def forward(self, feats: Tensor, mask: Tensor, inputs: Tensor) -> Tensor:
        """Teacher forcing: clips and input tokens (B, T) (end_id first) → log-probs (B, T, V+1)."""
        return teacher_forced(self, feats, mask, inputs)


def build(config: S2VTConfig, inputs: ModelInputs) -> S2VT:
    """S2VT over the frames (arrays side by side per step)."""
    if inputs.predicts != "caption":
        raise ValueError(f"S2VT writes captions, not {inputs.predicts!r}")
    return S2VT(config, inputs.vocab_size, inputs.video_dim, inputs.word_vectors)
