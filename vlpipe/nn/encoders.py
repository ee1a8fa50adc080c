"""Sequence encoders shared by both modalities, and the word-embedding table."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vlpipe.nn.layers import Dense, masked_apply, masked_mean
from vlpipe.nn.names import ENCODER_KINDS

EncoderKind = Literal["blstm", "lstm", "fc", "conv"]  # = ENCODER_KINDS


class TextEmbedding(nn.Embedding):
    """Word embedding with index 0 reserved for padding (its row is zero).

    `init` (vocab_size, dim), e.g. GloVe vectors, overrides the random initialisation;
    `trainable=False` freezes the table.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 300,
        init: Tensor | np.ndarray | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(vocab_size, dim, padding_idx=0)
        if init is not None:
            init = torch.as_tensor(init, dtype=self.weight.dtype)
            if init.shape != self.weight.shape:
                raise ValueError(f"init shape {tuple(init.shape)} != {(vocab_size, dim)}")
            with torch.no_grad():
                self.weight.copy_(init)
                self.weight[0].zero_()
        self.weight.requires_grad_(trainable)


def caption_embedding(vocab_size: int, dim: int,
                      word_vectors: np.ndarray | None = None) -> TextEmbedding:
    """A captioner's word embedding: the vocabulary's ids plus one more, the end token
    (id ``vocab_size``) that ends every caption and starts decoding; initial ``word_vectors``
    (vocab_size, dim) get a zero row for it."""
    if word_vectors is not None:
        word_vectors = np.concatenate([word_vectors, np.zeros((1, dim), word_vectors.dtype)])
    return TextEmbedding(vocab_size + 1, dim, init=word_vectors)


class GatedConvStack(nn.Module):
    """Three 'same' temporal convs (k=3) with a GLU on the last: (B, T, in_dim) → (B, T, width).

    The JSFusion authors' video encoder (yj-yu/lsmdc): conv(2·width) → ReLU → conv(2·width) →
    ReLU → conv(2·width) → GLU. Padded steps are zeroed before every conv, so valid outputs see
    zeros beyond the sequence end whatever the padding held and however long it is.
    """

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        channels = 2 * width
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, channels, kernel_size=3, padding=1)
            for c_in in (in_dim, channels, channels)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, in_dim, T)
        for conv in self.convs[:-1]:
            h = torch.relu(conv(h * keep))  # (B, 2·width, T)
        h = nn.functional.glu(self.convs[-1](h * keep), dim=1)  # (B, width, T)
        return h.transpose(1, 2)  # (B, T, width)


class SequenceEncoder(nn.Module):
    """Per-step encoder for frames or words, returning `[h_t; x_t]` as JSFusion does.

    kind: "blstm" (h_t = [h_fwd; h_bwd], `hidden` per direction), "lstm" (uni-directional),
    "fc" (per-step Dense with BN + tanh) or "conv" (`GatedConvStack`).
    Output: (B, T, out_dim) with out_dim = state_dim + in_dim, where state_dim = hidden for
    "lstm" and 2·hidden otherwise; padded steps are zero. Masks must be right-padded. A row with
    no valid step (a sentence none of whose words is in the vocabulary) encodes to zeros, and
    so does its `final_state`.
    """

    def __init__(self, in_dim: int, kind: EncoderKind, hidden: int) -> None:
        super().__init__()
        if kind not in ENCODER_KINDS:
            raise ValueError(f"unknown encoder kind {kind!r}; known: {ENCODER_KINDS}")
        self.kind = kind
        self.hidden = hidden
        self.state_dim = hidden if kind == "lstm" else 2 * hidden
        self.out_dim = self.state_dim + in_dim
        if kind in ("blstm", "lstm"):
            self.net = nn.LSTM(in_dim, hidden, batch_first=True, bidirectional=kind == "blstm")
        elif kind == "fc":
            self.net = Dense(in_dim, self.state_dim)
        else:
            self.net = GatedConvStack(in_dim, self.state_dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, T, in_dim), mask: (B, T) → (B, T, out_dim)."""
        if self.kind in ("blstm", "lstm"):
            # Packing rejects length 0: an empty row reads one step, which the mask zeroes below.
            lengths = mask.sum(dim=1).clamp(min=1).cpu()  # (B,)
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            packed_h, _ = self.net(packed)
            h, _ = pad_packed_sequence(packed_h, batch_first=True, total_length=x.shape[1])
        elif self.kind == "fc":
            h = masked_apply(self.net, x, mask)
        else:
            h = self.net(x, mask)
        out = torch.cat([h, x.to(h.dtype)], dim=-1)  # (B, T, state_dim + in_dim)
        return out * mask.unsqueeze(-1).to(out.dtype)

    def final_state(self, outputs: Tensor, mask: Tensor) -> Tensor:
        """One vector per sequence from `forward`'s outputs: (B, T, out_dim) → (B, state_dim).

        LSTMs: forward state at the last valid step (and, for "blstm", the backward state at
        step 0, which has read the whole sequence). "fc"/"conv": masked mean over steps. Zero for
        a row without valid steps.
        """
        states = outputs[..., : self.state_dim]  # (B, T, state_dim), drop the x_t part
        if self.kind in ("fc", "conv"):
            return masked_mean(states, mask).to(states.dtype)
        last = (mask.sum(dim=1) - 1).clamp(min=0)  # (B,)
        forward = states[torch.arange(len(states), device=states.device), last, : self.hidden]
        if self.kind == "lstm":
            return forward
        return torch.cat([forward, states[:, 0, self.hidden :]], dim=-1)  # (B, 2·hidden)
