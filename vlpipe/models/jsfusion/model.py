"""JSFusion: Joint Sequence Fusion for video-sentence scoring (Yu, Kim & Kim, ECCV 2018).

Both sequences are encoded per step; the Joint Semantic Tensor (JST) fuses every (frame, word)
pair into a (N, M, D4) tensor; the Convolutional Hierarchical Decoder (CHD) reduces it to one
compatibility score. The same model serves retrieval and multiple choice; with output="word"
it fills in the blank (a softmax over the vocabulary instead of a score, plus the skip
connection from the BLANK word). The paper's ablations are flags of `JSFusionConfig`, not
separate classes:

    LSTM-fusion           fusion="lstm" (pooled states, Hadamard product, dense head)
    JST_fc / JST_lstm     text_encoder="fc" / "lstm"
    JST_max / JST_mean    chd_pool="max" / "mean"
    JSFusion-noattention  chd_gates=False
    JSFusion-noaudio      a data choice (video_dim=2048), not a model flag

Masks are bool (True = valid) and right-padded. Scores never depend on padded content or on
how much padding there is (see `ConvHierarchicalDecoder` for how the CHD achieves this).
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.inputs import ModelInputs
from vlpipe.models.jsfusion.config import JSFusionConfig
from vlpipe.nn.encoders import SequenceEncoder, TextEmbedding
from vlpipe.nn.layers import (
    Dense,
    lengths_to_mask,
    make_activation,
    masked_apply,
    trim_padding,
)


class ScoreHead(nn.Module):
    """D5 → D6 → D7 (dense) → D8 (linear): (P, in_dim) → scores (P,), or → word logits
    (P, out_dim) when `out_dim` > 1 (fill-in-the-blank, where `skip` (P, d7) — D1w of the
    BLANK word — is added to D7's output).

    Runs in float32 even under autocast: it is tiny, and bfloat16 scores would tie often,
    which distorts rankings.
    """

    def __init__(self, in_dim: int, config: JSFusionConfig, out_dim: int = 1) -> None:
        super().__init__()
        dims = (in_dim, config.d5, config.d6, config.d7)
        self.hidden = nn.Sequential(
            *(Dense(a, b, config.activation, config.batch_norm) for a, b in pairwise(dims))
        )
        self.out = nn.Linear(config.d7, out_dim)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            hidden = self.hidden(x.float())  # (P, d7)
            if skip is not None:
                hidden = hidden + skip.float()
            out = self.out(hidden)  # (P, out_dim)
            return out.squeeze(-1) if out.shape[-1] == 1 else out


class JointSemanticTensor(nn.Module):
    """JST (paper eqs. 2-3): j_nm = σ(wᵀ D2(t_nm)) · D4(D3(t_nm)), t_nm = D1v(x_v,n) ⊙ D1w(x_w,m).

    Only valid (frame, word) cells are computed, so padded cells are exactly zero and stay out
    of the BatchNorm statistics.
    """

    def __init__(self, video_dim: int, text_dim: int, config: JSFusionConfig) -> None:
        super().__init__()
        dense = partial(Dense, activation=config.activation, batch_norm=config.batch_norm)
        self.video_proj = dense(video_dim, config.d1, dropout=config.dropout)  # D1v
        self.text_proj = dense(text_dim, config.d1, dropout=config.dropout)  # D1w
        self.attention_hidden = dense(config.d1, config.d2, dropout=config.dropout)  # D2
        self.attention_weight = nn.Linear(config.d2, 1, bias=False)  # w
        self.value = nn.Sequential(  # D4 ∘ D3
            dense(config.d1, config.d3, dropout=config.dropout), dense(config.d3, config.d4)
        )
        self.out_channels = config.d4

    def project_video(self, x_v: Tensor, mask: Tensor) -> Tensor:
        """D1v per frame: (B, N, video_dim) → (B, N, d1), zero at padding."""
        return masked_apply(self.video_proj, x_v, mask)

    def project_text(self, x_w: Tensor, mask: Tensor) -> Tensor:
        """D1w per word: (B, M, text_dim) → (B, M, d1), zero at padding."""
        return masked_apply(self.text_proj, x_w, mask)

    def forward(self, v: Tensor, v_mask: Tensor, w: Tensor, w_mask: Tensor) -> Tensor:
        """Aligned pairs of projections v (P, N, d1), w (P, M, d1) → J (P, d4, N, M)."""
        pair, frame, word = (v_mask[:, :, None] & w_mask[:, None, :]).nonzero(as_tuple=True)
        t = v[pair, frame] * w[pair, word]  # (C, d1): t_nm of the C valid cells
        alpha = torch.sigmoid(self.attention_weight(self.attention_hidden(t)))  # (C, 1)
        j = alpha * self.value(t)  # (C, d4)
        joint = j.new_zeros(v.shape[0], v.shape[1], w.shape[1], j.shape[1])  # (P, N, M, d4)
        joint[pair, frame, word] = j
        # Channels-first view over channels-last memory, which is what conv2d prefers on GPU.
        return joint.permute(0, 3, 1, 2)  # (P, d4, N, M)


class CHDStage(nn.Module):
    """One CHD stage (eq. 4): J' = Conv(J) · σ(ConvG(J)), 3x3 kernels, no padding.

    `pool` = "max" / "mean" replaces Conv by fixed 3x3 pooling (channels unchanged); the gate
    is a 1-channel conv broadcast over channels, dropped when `gated` is False.
    """

    kernel_size = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        pool: str = "conv",
        gated: bool = True,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        k = self.kernel_size
        self.stride = stride
        if pool == "conv":
            self.transform = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, k, stride), make_activation(activation)
            )
        else:
            self.transform = nn.MaxPool2d(k, stride) if pool == "max" else nn.AvgPool2d(k, stride)
        self.gate = nn.Conv2d(in_channels, 1, k, stride) if gated else None

    def forward(self, joint: Tensor) -> Tensor:
        """(P, C_in, H, W) → (P, C_out, H', W'), H' = (H - 3) // stride + 1."""
        out = self.transform(joint)
        if self.gate is not None:
            out = out * torch.sigmoid(self.gate(joint))  # (P, 1, H', W') broadcast over C_out
        return out

    def propagate_mask(self, mask: Tensor) -> Tensor:
        """Valid-cell mask (P, H, W) → (P, H', W'): an output cell is valid iff its whole
        3x3 input window is valid (a min-pool, done as a max-pool of the complement)."""
        invalid = (~mask).unsqueeze(1).float()  # (P, 1, H, W)
        return F.max_pool2d(invalid, self.kernel_size, self.stride).squeeze(1) == 0


class ConvHierarchicalDecoder(nn.Module):
    """CHD: three gated conv stages (strides 1, 1, 2), masked mean pool, then D5-D8.

    Valid-cell rule: a cell of J(k) is valid iff its whole input window is valid, so valid
    cells never read padding and a score does not depend on the padded length. Sequences
    shorter than the receptive field (7) are zero-extended to 7 steps, which then count as
    valid, so every pair keeps at least one cell to pool. (The authors' code propagates
    lengths the same way, clamping them at 1 instead.) Paper sizes: 40 → 38 → 36 → 17.
    """

    strides = (1, 1, 2)

    def __init__(self, in_channels: int, config: JSFusionConfig, out_dim: int = 1) -> None:
        super().__init__()
        channels = config.conv_channels if config.chd_pool == "conv" else in_channels
        stage = partial(
            CHDStage,
            pool=config.chd_pool,
            gated=config.chd_gates,
            activation=config.conv_activation,
        )
        in_sizes = (in_channels, channels, channels)
        self.stages = nn.ModuleList(
            stage(c_in, channels, s) for c_in, s in zip(in_sizes, self.strides, strict=True)
        )
        self.head = ScoreHead(channels, config, out_dim)
        self.receptive_field = 1
        for stride in reversed(self.strides):
            self.receptive_field = (self.receptive_field - 1) * stride + CHDStage.kernel_size

    def _extend(self, mask: Tensor) -> Tensor:
        """Right-padded (P, T) mask → (P, max(T, rf)) with every length raised to ≥ rf."""
        lengths = mask.sum(dim=1).clamp(min=self.receptive_field)
        return lengths_to_mask(lengths, max(mask.shape[1], self.receptive_field))

    def input_mask(self, frame_mask: Tensor, word_mask: Tensor) -> Tensor:
        """Valid input cells (P, max(N, rf), max(M, rf)) from masks (P, N), (P, M)."""
        frame_mask, word_mask = self._extend(frame_mask), self._extend(word_mask)
        return frame_mask[:, :, None] & word_mask[:, None, :]

    def forward(self, joint: Tensor, frame_mask: Tensor, word_mask: Tensor,
                skip: Tensor | None = None) -> Tensor:
        """joint (P, C, N, M), zero at padded cells; frame_mask (P, N), word_mask (P, M) →
        scores (P,) (or word logits, see `ScoreHead`)."""
        return self.head(self.pool(joint, frame_mask, word_mask), skip)

    def pool(self, joint: Tensor, frame_mask: Tensor, word_mask: Tensor) -> Tensor:
        """The gated conv stages and the masked mean: (P, C, N, M) → (P, channels), float32."""
        mask = self.input_mask(frame_mask, word_mask)  # (P, n, m)
        n, m = mask.shape[1:]
        joint = F.pad(joint, (0, m - joint.shape[3], 0, n - joint.shape[2]))  # (P, C, n, m)
        for stage in self.stages:
            joint, mask = stage(joint), stage.propagate_mask(mask)
        # Masked mean pool (P, C, H, W) → (P, C), accumulated in float32.
        cells = mask.unsqueeze(1).to(joint.dtype)  # (P, 1, H, W)
        pooled = (joint * cells).sum(dim=(2, 3), dtype=torch.float32)
        return pooled / mask.sum(dim=(1, 2)).unsqueeze(1)


class JointTensorFusion(nn.Module):
    """The JSFusion fusion proper: JST → CHD → score."""

    def __init__(self, video_dim: int, text_dim: int, config: JSFusionConfig,
                 out_dim: int = 1) -> None:
        super().__init__()
        self.jst = JointSemanticTensor(video_dim, text_dim, config)
        self.chd = ConvHierarchicalDecoder(self.jst.out_channels, config, out_dim)

    def project_video(self, v_enc: Tensor, v_mask: Tensor) -> Tensor:
        return self.jst.project_video(v_enc, v_mask)

    def project_text(self, t_enc: Tensor, t_mask: Tensor) -> Tensor:
        return self.jst.project_text(t_enc, t_mask)

    def forward(self, v: Tensor, v_mask: Tensor, t: Tensor, t_mask: Tensor,
                skip: Tensor | None = None) -> Tensor:
        """Aligned pairs of projected sequences (P, N, d1), (P, M, d1) → scores (P,), or
        word logits (P, |V|) given the FIB skip term (P, d1)."""
        v, v_mask = trim_padding(v, v_mask)  # exact: scores ignore padding length
        t, t_mask = trim_padding(t, t_mask)
        return self.chd(self.jst(v, v_mask, t, t_mask), v_mask, t_mask, skip)


class HadamardFusion(nn.Module):
    """LSTM-fusion baseline: score = D8..D5(D1v(s_v) ⊙ D1w(s_w)) on pooled sequence states."""

    def __init__(self, video_dim: int, text_dim: int, config: JSFusionConfig) -> None:
        super().__init__()
        dense = partial(Dense, activation=config.activation, batch_norm=config.batch_norm)
        self.video_proj = dense(video_dim, config.d1, dropout=config.dropout)  # D1v
        self.text_proj = dense(text_dim, config.d1, dropout=config.dropout)  # D1w
        self.head = ScoreHead(config.d1, config)

    def project_video(self, v_state: Tensor, v_mask: Tensor) -> Tensor:
        """(B, video_dim) → (B, d1); the mask is unused (states are already pooled)."""
        return self.video_proj(v_state)

    def project_text(self, t_state: Tensor, t_mask: Tensor) -> Tensor:
        """(B, text_dim) → (B, d1); the mask is unused."""
        return self.text_proj(t_state)

    def forward(self, v: Tensor, v_mask: Tensor, t: Tensor, t_mask: Tensor) -> Tensor:
        """Aligned pairs (P, d1), (P, d1) → scores (P,)."""
        return self.head(v * t)


class JSFusion(nn.Module):
    """Scores (video, sentence) pairs; higher = more compatible.

    feats: (B, N, video_dim) float, tokens: (B, M) long (0 = padding), masks bool True = valid,
    right-padded. `word_vectors` (vocab_size, word_dim) initialises the embedding, e.g. GloVe.
    """

    def __init__(
        self,
        config: JSFusionConfig,
        vocab_size: int,
        video_dim: int,
        word_vectors: Tensor | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.word_embedding = TextEmbedding(
            vocab_size, config.word_dim, init=word_vectors, trainable=config.train_embeddings
        )
        hidden = config.encoder_hidden
        self.text_encoder = SequenceEncoder(config.word_dim, config.text_encoder, hidden)
        self.video_encoder = SequenceEncoder(video_dim, config.video_encoder, hidden)
        if config.fusion == "jst":
            dims = (self.video_encoder.out_dim, self.text_encoder.out_dim)
            out_dim = vocab_size if config.output == "word" else 1
            self.fusion = JointTensorFusion(*dims, config, out_dim)
        else:
            dims = (self.video_encoder.state_dim, self.text_encoder.state_dim)
            self.fusion = HadamardFusion(*dims, config)

    def encode_video(self, feats: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N, video_dim), (B, N) → per-frame encodings (B, N, enc_dim) and the mask."""
        return self.video_encoder(feats, mask), mask

    def encode_text(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(B, M) token ids, (B, M) → per-word encodings (B, M, enc_dim) and the mask."""
        return self.text_encoder(self.word_embedding(tokens), mask), mask

    def _project(
        self, v_enc: Tensor, v_mask: Tensor, t_enc: Tensor, t_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Per-sequence part of the fusion (D1), computed once per video and per sentence."""
        if self.config.fusion == "lstm":
            v_enc = self.video_encoder.final_state(v_enc, v_mask)  # (B, state_dim)
            t_enc = self.text_encoder.final_state(t_enc, t_mask)
        return self.fusion.project_video(v_enc, v_mask), self.fusion.project_text(t_enc, t_mask)

    def pair_scores(self, v_enc: Tensor, v_mask: Tensor, t_enc: Tensor, t_mask: Tensor) -> Tensor:
        """Scores (B,) of the aligned pairs (video i, sentence i)."""
        v, t = self._project(v_enc, v_mask, t_enc, t_mask)
        return self.fusion(v, v_mask, t, t_mask)

    def score_matrix(
        self,
        v_enc: Tensor,
        v_mask: Tensor,
        t_enc: Tensor,
        t_mask: Tensor,
        block_videos: int = 32,
        block_texts: int = 32,
    ) -> Tensor:
        """Scores (Nv, Nt) of every (video i, sentence j) pair, from precomputed encodings.

        Pairs are scored one (video block x sentence block) at a time, so peak memory scales
        with block_videos · block_texts. Runs under whatever autocast context is active; wrap
        in `torch.inference_mode()` for evaluation.
        """
        v, t = self._project(v_enc, v_mask, t_enc, t_mask)
        rows = []
        for v_start in range(0, len(v), block_videos):
            videos = torch.arange(v_start, min(v_start + block_videos, len(v)), device=v.device)
            row = []
            for t_start in range(0, len(t), block_texts):
                texts = torch.arange(t_start, min(t_start + block_texts, len(t)), device=t.device)
                vi = videos.repeat_interleave(len(texts))  # (bv·bt,) video of each pair
                ti = texts.repeat(len(videos))  # (bv·bt,) sentence of each pair
                scores = self.fusion(v[vi], v_mask[vi], t[ti], t_mask[ti])  # (bv·bt,)
                row.append(scores.view(len(videos), len(texts)))
            rows.append(torch.cat(row, dim=1))
        return torch.cat(rows, dim=0)

    def word_logits(self, v_enc: Tensor, v_mask: Tensor, t_enc: Tensor, t_mask: Tensor,
                    blank: Tensor) -> Tensor:
        """Fill-in-the-blank (output="word"): logits (B, |V|) of the word at position
        `blank` (B,) of each sentence; D1w of the BLANK word skips to D7's output."""
        if self.config.output != "word":
            raise RuntimeError("word_logits needs a model built with output='word'")
        v, t = self._project(v_enc, v_mask, t_enc, t_mask)  # (B, N, d1), (B, M, d1)
        skip = t[torch.arange(len(t), device=t.device), blank]  # (B, d1)
        return self.fusion(v, v_mask, t, t_mask, skip)

    def forward(self, feats: Tensor, v_mask: Tensor, tokens: Tensor, t_mask: Tensor) -> Tensor:
        """Encode both sides and score the aligned pairs → (B,)."""
        v_enc, _ = self.encode_video(feats, v_mask)
        t_enc, _ = self.encode_text(tokens, t_mask)
        return self.pair_scores(v_enc, v_mask, t_enc, t_mask)


def build(config: JSFusionConfig, inputs: ModelInputs) -> JSFusion:
    """A pair scorer (retrieval, multiple choice) or the fill-in-the-blank model
    (``config.output``, set from the task); the video arrays are read side by side per step."""
    return JSFusion(config, inputs.vocab_size, inputs.video_dim, inputs.word_vectors)
