"""Test-time JSFusion scoring of every (video, sentence) pair, dense and batched.

`PairScorer` returns what `JSFusion.score_matrix` returns for a model in eval mode, computed
for one (video block × sentence block) at a time with no per-pair work in Python:

- D1 runs once per video and per sentence (float32), as in the model;
- the JST is computed DENSE over the block's (frame, word) grid by broadcasting, then multiplied
  by the valid-cell mask. In eval mode every BatchNorm is a per-cell affine map, so this equals
  the model's sparse computation (which exists to keep padding out of the training statistics);
- each eval BatchNorm is folded into its Linear once (W' = W·γ/σ, b' = (b − μ)·γ/σ + β), D2 and
  D3 share one GEMM, and each CHD stage's 1-channel gate conv is fused into its main conv;
- J and the CHD activations are channels-last, which is what cuDNN wants;
- computation runs in bfloat16 on CUDA by default (ScoreHead stays float32, as in the model);
- videos and sentences are sorted by length so that each block is trimmed to its own longest
  sequence; `torch.compile` of the block function is optional (`compile_mode`);
- `backend` "triton-jst" computes the JST with the fused kernels of
  `vlpipe.models.jsfusion.triton_kernels` instead of torch ops; "triton" the CHD's gated convs too.

Models this does not accelerate (fusion="lstm", which scores pooled states and is cheap already;
BatchNorm without running statistics; an unknown activation) fall back to `model.score_matrix`,
named by `PairScorer.fallback_reason`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.jsfusion.config import JSFusionConfig
from vlpipe.models.jsfusion.model import CHDStage, ConvHierarchicalDecoder, JSFusion

if TYPE_CHECKING:  # triton is imported only when a Triton backend is asked for
    from vlpipe.models.jsfusion.triton_kernels import GatedConv

Activation = Callable[[Tensor], Tensor]
_CHANNEL_ALIGN = 8  # fused conv outputs are padded to a multiple of this (tensor-core tiles)


def jsfusion_pair_flops(n_frames: int, n_words: int, config: JSFusionConfig) -> float:
    """FLOPs (2 × multiply-adds) of the per-pair part of JSFusion for one pair of lengths.

    Counted: every matmul / conv that runs per pair — the JST on the n_frames × n_words valid
    cells (D2, w, D3, D4), each CHD stage's conv and gate conv over the grid extended to the
    receptive field (7), and the score head D5-D8. Not counted: D1 (once per sequence, not per
    pair), element-wise work (Hadamard products, BatchNorm, activations, gating, pooling).
    Paper sizes (40 × 40, default config): ≈ 7.82e9. fusion="lstm": the head on d1 only.
    A score per pair (output="score"): D8 has one output.
    """
    c = config
    head_in = c.d1
    macs = 0
    if c.fusion == "jst":
        macs += n_frames * n_words * (c.d1 * c.d2 + c.d2 + c.d1 * c.d3 + c.d3 * c.d4)
        k, rf = CHDStage.kernel_size, 1
        for stride in reversed(ConvHierarchicalDecoder.strides):
            rf = (rf - 1) * stride + k  # receptive field: 7
        height, width, channels = max(n_frames, rf), max(n_words, rf), c.d4
        out_channels = c.conv_channels if c.chd_pool == "conv" else c.d4
        for stride in ConvHierarchicalDecoder.strides:
            height, width = (height - k) // stride + 1, (width - k) // stride + 1
            per_cell = (c.chd_pool == "conv") * out_channels + c.chd_gates  # output channels
            macs += height * width * per_cell * channels * k * k
            channels = out_channels
        head_in = channels
    dims = (head_in, c.d5, c.d6, c.d7, 1)
    macs += sum(a * b for a, b in pairwise(dims))
    return 2.0 * macs


def fold_batch_norm(linear: nn.Linear, norm: nn.Module) -> tuple[Tensor, Tensor]:
    """Linear followed by an eval-mode BatchNorm1d (or Identity) as one affine map.

    Returns (weight (out, in), bias (out,)) in float64: W' = W·γ/σ, b' = (b − μ)·γ/σ + β with
    σ = sqrt(running_var + eps).
    """
    weight = linear.weight.detach().double()
    bias = (
        linear.bias.detach().double()
        if linear.bias is not None
        else weight.new_zeros(weight.shape[0])
    )
    if isinstance(norm, nn.Identity):
        return weight, bias
    if not isinstance(norm, nn.BatchNorm1d) or norm.running_mean is None:
        raise ValueError(f"cannot fold {norm!r}: needs a BatchNorm1d with running statistics")
    scale = (norm.running_var.double() + norm.eps).rsqrt()  # (out,) 1/σ
    shift = -norm.running_mean.double()
    if norm.affine:
        gamma, beta = norm.weight.detach().double(), norm.bias.detach().double()
        return weight * (scale * gamma)[:, None], (bias + shift) * scale * gamma + beta
    return weight * scale[:, None], (bias + shift) * scale


def _identity(x: Tensor) -> Tensor:
    return x


def _activation_code(module: nn.Module) -> tuple[int, float]:
    """(code, negative slope) of `module` for the Triton kernels."""
    from vlpipe.models.jsfusion import triton_kernels as jsfusion_triton

    codes = {nn.Identity: jsfusion_triton.IDENTITY, nn.Tanh: jsfusion_triton.TANH,
             nn.ReLU: jsfusion_triton.RELU, nn.LeakyReLU: jsfusion_triton.LEAKY_RELU}
    if type(module) not in codes:
        raise ValueError(f"the Triton JST has no activation {module!r}")
    return codes[type(module)], float(getattr(module, "negative_slope", 0.0))


def _inplace_activation(module: nn.Module) -> Activation:
    """An in-place function computing `module` (identity / tanh / ReLU / leaky ReLU)."""
    if isinstance(module, nn.Identity):
        return _identity
    if isinstance(module, nn.Tanh):
        return torch.tanh_
    if isinstance(module, nn.ReLU):
        return torch.relu_
    if isinstance(module, nn.LeakyReLU):
        return partial(F.leaky_relu_, negative_slope=module.negative_slope)
    raise ValueError(f"no in-place version of activation {module!r}")


@dataclass
class _Stage:
    """One CHD stage, ready to run: transform (a conv, or 3x3 pooling) and optional gate."""

    stride: int
    pool: str  # "conv" | "max" | "mean"
    conv: tuple[Tensor, Tensor] | None  # (C', C_in, 3, 3) channels-last, (C',); C' ≥ channels
    channels: int  # the transform's output channels (conv only)
    activation: Activation  # after the conv
    gate: tuple[Tensor, Tensor] | None  # separate (1, C_in, 3, 3) gate conv
    fused_gate: bool  # the gate is the conv's output channel `channels`

    def __call__(self, x: Tensor) -> Tensor:
        """(P, C_in, H, W) channels-last → (P, C, H', W') channels-last."""
        if self.conv is not None:
            y = F.conv2d(x, *self.conv, self.stride)  # (P, C', H', W')
            out = self.activation(y[:, : self.channels])
            if self.fused_gate:
                return out * torch.sigmoid(y[:, self.channels : self.channels + 1])
        elif self.pool == "max":
            out = F.max_pool2d(x, CHDStage.kernel_size, self.stride)
        else:
            out = F.avg_pool2d(x, CHDStage.kernel_size, self.stride)
        if self.gate is not None:
            out = out * torch.sigmoid(F.conv2d(x, *self.gate, self.stride))
        return out


class PairScorer:
    """Scores (Nv, Nt) of every (video, sentence) pair of a JSFusion model in eval mode.

    Weights are folded and cast when the scorer is built, so build a new one after the model's
    weights change. `dtype`: compute dtype of JST + CHD (default bfloat16 on CUDA, else
    float32). `block_bytes`: working-memory budget of one block, used when the block sizes
    are not given. `fuse_gates`: compute each gate as an extra output channel of its stage's
    conv. `compile_mode`: `torch.compile` the block function in this mode ("default",
    "max-autotune", ...); None runs it eagerly. `backend`: "torch"; "triton-jst", the fused
    Triton JST; "triton", the Triton JST and gated CHD convs (the Triton ones need CUDA, or
    TRITON_INTERPRET=1 on the CPU).
    """

    backends = ("torch", "triton-jst", "triton")

    def __init__(
        self,
        model: JSFusion,
        dtype: torch.dtype | None = None,
        block_bytes: int = 2 << 30,
        fuse_gates: bool = True,
        compile_mode: str | None = None,
        backend: str = "torch",
    ) -> None:
        if backend not in self.backends:
            raise ValueError(f"backend={backend!r}; allowed: {self.backends}")
        if model.training:
            raise ValueError("PairScorer needs a model in eval mode")
        if model.config.output != "score":
            raise ValueError(f"PairScorer scores pairs; output={model.config.output!r} does not")
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.block_bytes = block_bytes
        self.backend = backend
        self.fallback_reason: str | None = None
        if model.config.fusion != "jst":
            self.fallback_reason = f"fusion={model.config.fusion!r} is scored by the model"
        else:
            try:
                self._prepare(model, fuse_gates)
            except ValueError as error:
                self.fallback_reason = str(error)
        self.compiled = compile_mode is not None
        self._block = (
            torch.compile(self._score_block, mode=compile_mode)
            if self.compiled
            else self._score_block
        )

    def _prepare(self, model: JSFusion, fuse_gates: bool) -> None:
        """Fold and cast the JST and CHD weights once."""
        jst, chd = model.fusion.jst, model.fusion.chd
        cast = partial(torch.Tensor.to, device=self.device, dtype=self.dtype)
        d2_dense, (d3_dense, d4_dense) = jst.attention_hidden, jst.value
        w2, b2 = fold_batch_norm(d2_dense.linear, d2_dense.norm)
        w3, b3 = fold_batch_norm(d3_dense.linear, d3_dense.norm)
        w4, b4 = fold_batch_norm(d4_dense.linear, d4_dense.norm)
        self.d2 = w2.shape[0]
        self.w23t = cast(torch.cat([w2, w3]).T)  # (d1, d2 + d3)
        self.b23 = cast(torch.cat([b2, b3]))
        self.w4t, self.b4 = cast(w4.T), cast(b4)  # (d3, d4)
        self.attention = cast(jst.attention_weight.weight.detach()[0])  # (d2,)
        self.activations = [_inplace_activation(d.activation) for d in (d2_dense, d3_dense)]
        self.d4_activation = _inplace_activation(d4_dense.activation)
        self.receptive_field = chd.receptive_field
        self.head = chd.head
        if self.backend != "torch" and self.device.type != "cuda":
            from vlpipe.models.jsfusion import triton_kernels as jsfusion_triton

            if not jsfusion_triton.INTERPRETED:
                raise RuntimeError(f"backend={self.backend!r} needs a CUDA device (or "
                                   "TRITON_INTERPRET=1 before triton is imported); the model "
                                   f"is on {self.device}")
        self.stages = [self._prepare_stage(stage, fuse_gates) for stage in chd.stages]
        self._joint = self._joint_torch
        if self.backend != "torch":
            self._joint = self._triton_joint(d2_dense, d3_dense, d4_dense)

    def _triton_joint(self, *layers: nn.Module) -> Callable[..., Tensor]:
        """`jsfusion_triton.fused_joint` bound to this model's folded weights."""
        from vlpipe.models.jsfusion import triton_kernels as jsfusion_triton

        activations = {_activation_code(layer.activation) for layer in layers}
        if len(activations) > 1:
            raise ValueError(f"the Triton JST needs one activation for D2-D4, not {activations}")
        (code, slope), = activations
        weights = jsfusion_triton.JSTWeights(
            self.w23t.contiguous(), self.b23, self.attention, self.w4t.contiguous(), self.b4,
            code, slope)
        return partial(jsfusion_triton.fused_joint, weights=weights)

    def _prepare_stage(self, stage: CHDStage, fuse_gates: bool) -> _Stage | GatedConv:
        """A CHD stage as a function of channels-last (P, C_in, H, W): a `_Stage`, or the
        Triton `GatedConv` for a conv stage when backend="triton"."""

        def params(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
            weight = conv.weight.detach().to(self.device, self.dtype)
            bias = conv.bias.detach().to(self.device, self.dtype)
            return weight.contiguous(memory_format=torch.channels_last), bias

        pool = {nn.MaxPool2d: "max", nn.AvgPool2d: "mean"}.get(type(stage.transform), "conv")
        conv = params(stage.transform[0]) if pool == "conv" else None
        gate = params(stage.gate) if stage.gate is not None else None
        if self.backend == "triton" and conv is not None:
            from vlpipe.models.jsfusion.triton_kernels import GatedConv

            code, slope = _activation_code(stage.transform[1])
            return GatedConv.build(conv, gate, stage.stride, code, slope)
        channels = conv[0].shape[0] if conv is not None else 0
        fused = conv is not None and gate is not None and fuse_gates
        if fused:  # (C, C_in, 3, 3) + (1, C_in, 3, 3) gate + zeros → (C', C_in, 3, 3)
            padding = -(channels + 1) % _CHANNEL_ALIGN
            weight = F.pad(torch.cat([conv[0], gate[0]]), (0, 0, 0, 0, 0, 0, 0, padding))
            bias = F.pad(torch.cat([conv[1], gate[1]]), (0, padding))
            conv, gate = (weight.contiguous(memory_format=torch.channels_last), bias), None
        activation = _inplace_activation(stage.transform[1]) if pool == "conv" else _identity
        return _Stage(stage.stride, pool, conv, channels, activation, gate, fused)

    def _score_block(self, v: Tensor, v_len: Tensor, w: Tensor, w_len: Tensor) -> Tensor:
        """Video block v (bv, n, d1) × sentence block w (bt, m, d1) → scores (bv, bt), fp32.

        v_len (bv,), w_len (bt,): true lengths; n, m ≥ the receptive field, rows past a length
        are arbitrary (masked here).
        """
        (bv, n, _), (bt, m, _) = v.shape, w.shape
        joint = self._joint(v, v_len, w, w_len)  # (bv·bt·n·m, d4), zero at invalid cells
        # (bv·bt, n, m, d4) memory viewed channels-first: (P, d4, n, m), channels-last.
        x = joint.view(bv * bt, n, m, -1).permute(0, 3, 1, 2)
        # CHD valid cells are the rectangle (rows, cols) of the lengths raised to ≥ rf.
        rows = v_len.clamp(min=self.receptive_field)
        cols = w_len.clamp(min=self.receptive_field)
        for stage in self.stages:
            x = stage(x)  # (P, C, H', W')
            rows = (rows - CHDStage.kernel_size) // stage.stride + 1
            cols = (cols - CHDStage.kernel_size) // stage.stride + 1
        height, width = x.shape[2:]
        valid_rows = torch.arange(height, device=x.device) < rows[:, None]  # (bv, H)
        valid_cols = torch.arange(width, device=x.device) < cols[:, None]  # (bt, W)
        valid = valid_rows[:, None, :, None] & valid_cols[None, :, None, :]  # (bv, bt, H, W)
        # Masked mean pool (P, C, H, W) → (P, C), accumulated in float32.
        pooled = (x * valid.view(bv * bt, 1, height, width)).sum(dim=(2, 3), dtype=torch.float32)
        count = (rows[:, None] * cols[None, :]).view(-1, 1)  # (P, 1)
        return self.head(pooled / count).view(bv, bt)

    def _joint_torch(self, v: Tensor, v_len: Tensor, w: Tensor, w_len: Tensor) -> Tensor:
        """J of every pair of the block with torch ops: (bv·bt·n·m, d4), zero at invalid
        cells (arguments as in `_score_block`)."""
        (n, d1), m = v.shape[1:], w.shape[1]
        frames = torch.arange(n, device=v.device) < v_len[:, None]  # (bv, n)
        words = torch.arange(m, device=w.device) < w_len[:, None]  # (bt, m)
        cells = frames[:, None, :, None] & words[None, :, None, :]  # (bv, bt, n, m)
        # JST, dense: t = D1v(x_v,n) ⊙ D1w(x_w,m) for every cell of every pair.
        t = (v[:, None, :, None, :] * w[None, :, None, :, :]).view(-1, d1)  # (bv·bt·n·m, d1)
        hidden = torch.addmm(self.b23, t, self.w23t)  # (R, d2 + d3): D2 and D3 together
        del t
        attention_hidden, value_hidden = hidden[:, : self.d2], hidden[:, self.d2 :]
        self.activations[0](attention_hidden)
        self.activations[1](value_hidden)
        gate = torch.sigmoid(attention_hidden @ self.attention) * cells.view(-1)  # (R,)
        joint = self.d4_activation(torch.addmm(self.b4, value_hidden, self.w4t))  # (R, d4)
        del hidden, attention_hidden, value_hidden
        return joint.mul_(gate[:, None])  # zero at invalid cells

    def block_sizes(self, n: int, m: int, n_videos: int, n_texts: int) -> tuple[int, int]:
        """(block_videos, block_texts): square-ish blocks whose JST working set (t, D2|D3, D4
        at n frames × m words) fits `block_bytes`."""
        c = self.model.config
        per_pair = n * m * (c.d1 + c.d2 + c.d3 + c.d4) * self.dtype.itemsize
        pairs = max(1, self.block_bytes // per_pair)
        block_texts = min(n_texts, max(1, math.isqrt(pairs)))
        return min(n_videos, max(1, pairs // block_texts)), block_texts

    @torch.inference_mode()
    def __call__(
        self,
        v_enc: Tensor,
        v_mask: Tensor,
        t_enc: Tensor,
        t_mask: Tensor,
        block_videos: int | None = None,
        block_texts: int | None = None,
    ) -> Tensor:
        """Scores (Nv, Nt), float32, from encodings (Nv, N, Dv), (Nt, M, Dt) and bool masks.

        Blocks default to the largest square-ish ones within `block_bytes`.
        """
        if self.fallback_reason is not None:
            low_precision = self.dtype != torch.float32
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=low_precision):
                blocks = {"block_videos": block_videos or 32, "block_texts": block_texts or 32}
                return self.model.score_matrix(v_enc, v_mask, t_enc, t_mask, **blocks).float()
        with torch.autocast(self.device.type, enabled=False):  # dtypes are explicit here
            return self._score_all(v_enc, v_mask, t_enc, t_mask, block_videos, block_texts)

    def _score_all(
        self,
        v_enc: Tensor,
        v_mask: Tensor,
        t_enc: Tensor,
        t_mask: Tensor,
        block_videos: int | None,
        block_texts: int | None,
    ) -> Tensor:
        rf = self.receptive_field
        if block_videos is None or block_texts is None:
            n, m = max(v_mask.shape[1], rf), max(t_mask.shape[1], rf)
            sizes = self.block_sizes(n, m, len(v_mask), len(t_mask))
            block_videos, block_texts = block_videos or sizes[0], block_texts or sizes[1]
        fusion = self.model.fusion
        v, v_len, v_order = self._sorted(fusion.project_video, v_enc, v_mask, block_videos)
        t, t_len, t_order = self._sorted(fusion.project_text, t_enc, t_mask, block_texts)
        v_lengths, t_lengths = v_len.tolist(), t_len.tolist()  # the only host sync
        scores = torch.empty(len(v), len(t), device=v.device)  # (Nv', Nt'), sorted order
        for i in range(0, len(v), block_videos):
            n = max(v_lengths[i], rf)  # the block's longest video comes first
            for j in range(0, len(t), block_texts):
                m = max(t_lengths[j], rf)
                scores[i : i + block_videos, j : j + block_texts] = self._block(
                    v[i : i + block_videos, :n],
                    v_len[i : i + block_videos],
                    t[j : j + block_texts, :m],
                    t_len[j : j + block_texts],
                )
        out = torch.empty(len(v_order), len(t_order), device=v.device)
        out[v_order[:, None], t_order[None, :]] = scores[: len(v_order), : len(t_order)]
        return out

    def _sorted(
        self, project: Callable[[Tensor, Tensor], Tensor], enc: Tensor, mask: Tensor, block: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """D1 of one side's sequences, sorted longest first: (B', T', d1) zero-padded to
        T' ≥ rf steps, lengths (B',), and the order (B,). When compiled, B' is a whole number
        of blocks (the extra sequences are empty), so that every block has the same shape."""
        x = project(enc.float(), mask).to(self.dtype)  # (B, T, d1), D1 in float32
        lengths = mask.sum(dim=1)  # (B,)
        order = torch.argsort(lengths, descending=True, stable=True)
        extra = -len(x) % block if self.compiled else 0
        x = F.pad(x[order], (0, 0, 0, max(0, self.receptive_field - x.shape[1]), 0, extra))
        return x, F.pad(lengths[order], (0, extra)), order
