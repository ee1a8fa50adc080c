"""JSFusion's test-time JST and CHD convs as fused Triton kernels, for `PairScorer` (CUDA;
tests run them in Triton's interpreter, TRITON_INTERPRET=1, on the CPU).

The torch JST materialises t = v ⊙ w, the D2|D3 output, its activations, D4's output and the
gated J, each a (cells × 512) tensor: ≈ 25 MB of memory traffic per 40 × 40 pair in bfloat16,
which on an H100 costs about as long as the JST's matmuls. Here only D3's activations and J
are written:

1. `_hidden_kernel`, one GEMM over the cells of a (video block × sentence block): its A tile,
   t = D1v(frame) ⊙ D1w(word), is formed while loading and never stored. Epilogue: bias,
   activation; D2's columns are reduced against the attention vector into one partial logit
   per (cell, group of 64 columns), D3's columns are stored. (Groups of a fixed width, not one
   per tile, so that every tile size writes every partial: autotuning runs several.)
2. `_joint_kernel`, D4 over the stored D3 activations. Epilogue: bias, activation, times
   σ(Σ partial logits) and the valid-cell mask; J is stored as (P, n, m, d4), which is the CHD
   convs' channels-last layout.

Cells are numbered r = ((video · bt + sentence) · n + frame) · m + word, as in the torch path.

3. `_gated_conv_kernel`, a CHD stage (3x3 conv, stride 1 or 2, no padding) as an implicit GEMM
   over channels-last input. The 1-channel gate conv is a second, 16-column dot on the same A
   tile (weights zero but for column 0), so neither a padded output channel nor a second pass
   over the input is needed; epilogue: bias, activation, times σ(gate).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

# Activation codes (constexpr in the kernels).
IDENTITY, TANH, RELU, LEAKY_RELU = range(4)

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _configs() -> list[triton.Config]:
    """Tile configurations to autotune over on a GPU (Hopper-sized), or one small tile in the
    interpreter, which cannot time kernels."""
    if INTERPRETED:
        return [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32})]
    shapes = [(128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (128, 128, 64, 4, 4),
              (64, 128, 64, 4, 4), (256, 128, 64, 8, 3), (128, 64, 64, 4, 4)]
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps,
                          num_stages=stages) for bm, bn, bk, warps, stages in shapes]


_CONFIGS = _configs()
# Columns per partial attention logit: divides every BLOCK_N (the interpreter's 32 in two).
_LOGIT_GROUP = 16 if INTERPRETED else 64
_GATE_COLUMNS = 16  # width of the gate's dot in the conv kernel: the smallest N of tl.dot


def _input_precision(dtype: torch.dtype) -> str:
    """tl.dot's precision: exact for float32 inputs (the tests' reference path); the setting
    does not apply to bf16/fp16."""
    return "ieee" if dtype == torch.float32 else "tf32"


@dataclass(frozen=True)
class JSTWeights:
    """The JST with BatchNorm folded in, in the compute dtype: D2|D3 (d1, d2 + d3) with bias,
    the attention vector (d2,), D4 (d3, d4) with bias; one activation for D2, D3 and D4."""

    w23: Tensor
    b23: Tensor
    attention: Tensor
    w4: Tensor
    b4: Tensor
    activation: int
    negative_slope: float = 0.0

    @property
    def d2(self) -> int:
        return self.attention.shape[0]


@triton.jit
def _activate(x, kind: tl.constexpr, negative_slope):
    if kind == 1:  # TANH
        x = 2.0 * tl.sigmoid(2.0 * x) - 1.0
    elif kind == 2:  # RELU
        x = tl.maximum(x, 0.0)
    elif kind == 3:  # LEAKY_RELU
        x = tl.where(x >= 0.0, x, x * negative_slope)
    return x


@triton.jit
def _cells(pid_m, n_rows, bt, n, m, BLOCK_M: tl.constexpr):
    """The tile's cell indices (int64) and their (video, sentence, frame, word)."""
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    word = rows % m
    frame = (rows // m) % n
    pair = rows // (n * m)
    return rows, rows < n_rows, pair // bt, pair % bt, frame, word


@triton.autotune(configs=_CONFIGS, key=["d1", "d2", "d3"])
@triton.jit
def _hidden_kernel(v_ptr, w_ptr, weight_ptr, bias_ptr, attention_ptr, value_ptr, logit_ptr,
                   n_rows, bt, n, m, d1, d2, d3, n_groups, negative_slope,
                   ACTIVATION: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                   LOGIT_GROUP: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """value[r] = act(t_r D3 + b3) (n_rows, d3); logit[g, r] = act(t_r D2 + b2) · a over D2's
    column group g (n_groups, n_rows), t_r = v[video, frame] ⊙ w[sentence, word]."""
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rows, row_ok, video, sentence, frame, word = _cells(pid_m, n_rows, bt, n, m, BLOCK_M)
    v_rows = v_ptr + (video * n + frame)[:, None] * d1  # (BLOCK_M, 1) row pointers
    w_rows = w_ptr + (sentence * m + word)[:, None] * d1
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # of D2|D3
    col_ok = cols < d2 + d3
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, d1, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < d1
        a_mask = row_ok[:, None] & k_ok[None, :]
        t = (tl.load(v_rows + ks[None, :], mask=a_mask, other=0.0)
             * tl.load(w_rows + ks[None, :], mask=a_mask, other=0.0))  # (BLOCK_M, BLOCK_K)
        weight = tl.load(weight_ptr + ks[:, None] * (d2 + d3) + cols[None, :],
                         mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(t, weight, acc, input_precision=INPUT_PRECISION)
    bias = tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    hidden = _activate(acc + bias[None, :], ACTIVATION, negative_slope)
    if pid_n * BLOCK_N < d2:  # the tile has D2 (attention) columns
        attention = tl.load(attention_ptr + cols, mask=cols < d2, other=0.0).to(tl.float32)
        weighted = tl.reshape(hidden * attention[None, :],
                              (BLOCK_M, BLOCK_N // LOGIT_GROUP, LOGIT_GROUP))
        logit = tl.sum(weighted, axis=2)  # (BLOCK_M, groups of the tile)
        groups = pid_n * (BLOCK_N // LOGIT_GROUP) + tl.arange(0, BLOCK_N // LOGIT_GROUP)
        tl.store(logit_ptr + groups[None, :] * n_rows + rows[:, None], logit,
                 mask=row_ok[:, None] & (groups < n_groups)[None, :])
    if (pid_n + 1) * BLOCK_N > d2:  # the tile has D3 (value) columns
        value_cols = cols - d2
        tl.store(value_ptr + rows[:, None] * d3 + value_cols[None, :],
                 hidden.to(value_ptr.dtype.element_ty),
                 mask=row_ok[:, None] & ((cols >= d2) & col_ok)[None, :])


@triton.autotune(configs=_CONFIGS, key=["d3", "d4"])
@triton.jit
def _joint_kernel(value_ptr, weight_ptr, bias_ptr, logit_ptr, v_len_ptr, w_len_ptr, out_ptr,
                  n_rows, bt, n, m, d3, d4, n_groups, negative_slope,
                  ACTIVATION: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[r] = σ(Σ_g logit[g, r]) · act(value[r] D4 + b4) at valid cells, else 0."""
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rows, row_ok, video, sentence, frame, word = _cells(pid_m, n_rows, bt, n, m, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < d4
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, d3, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < d3
        value = tl.load(value_ptr + rows[:, None] * d3 + ks[None, :],
                        mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        weight = tl.load(weight_ptr + ks[:, None] * d4 + cols[None, :],
                         mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(value, weight, acc, input_precision=INPUT_PRECISION)
    logit = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for group in range(0, n_groups):
        logit += tl.load(logit_ptr + group * n_rows + rows, mask=row_ok, other=0.0)
    v_len = tl.load(v_len_ptr + video, mask=row_ok, other=0)
    w_len = tl.load(w_len_ptr + sentence, mask=row_ok, other=0)
    gate = tl.where((frame < v_len) & (word < w_len), tl.sigmoid(logit), 0.0)
    bias = tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    joint = _activate(acc + bias[None, :], ACTIVATION, negative_slope) * gate[:, None]
    tl.store(out_ptr + rows[:, None] * d4 + cols[None, :], joint.to(out_ptr.dtype.element_ty),
             mask=row_ok[:, None] & col_ok[None, :])


# The launchers run as they are under torch.compile (a graph break each): the kernels are fused
# already, and tracing Triton autotuners through dynamo would add a way to fail, not speed.
@torch.compiler.disable
def fused_joint(v: Tensor, v_len: Tensor, w: Tensor, w_len: Tensor,
                weights: JSTWeights) -> Tensor:
    """J of every (video, sentence) pair of a block: v (bv, n, d1), w (bt, m, d1) and their
    lengths (bv,), (bt,) → (bv·bt·n·m, d4) in v's dtype, zero at invalid cells."""
    (bv, n, d1), (bt, m, _) = v.shape, w.shape
    d2, d3, d4 = weights.d2, weights.w4.shape[0], weights.w4.shape[1]
    n_rows = bv * bt * n * m
    precision = _input_precision(v.dtype)
    v, w = v.contiguous(), w.contiguous()
    value = torch.empty(n_rows, d3, device=v.device, dtype=v.dtype)
    n_groups = triton.cdiv(d2, _LOGIT_GROUP)
    logits = torch.empty(n_groups, n_rows, device=v.device, dtype=torch.float32)
    _hidden_kernel[lambda meta: (triton.cdiv(n_rows, meta["BLOCK_M"]),
                                 triton.cdiv(d2 + d3, meta["BLOCK_N"]))](
        v, w, weights.w23, weights.b23, weights.attention, value, logits,
        n_rows, bt, n, m, d1, d2, d3, n_groups, weights.negative_slope,
        ACTIVATION=weights.activation, INPUT_PRECISION=precision, LOGIT_GROUP=_LOGIT_GROUP,
    )
    joint = torch.empty(n_rows, d4, device=v.device, dtype=v.dtype)
    _joint_kernel[lambda meta: (triton.cdiv(n_rows, meta["BLOCK_M"]),
                                triton.cdiv(d4, meta["BLOCK_N"]))](
        value, weights.w4, weights.b4, logits, v_len, w_len, joint,
        n_rows, bt, n, m, d3, d4, n_groups, weights.negative_slope,
        ACTIVATION=weights.activation, INPUT_PRECISION=precision,
    )
    return joint


@triton.autotune(configs=_CONFIGS, key=["c_in", "c_out", "STRIDE", "GATED"])
@triton.jit
def _gated_conv_kernel(x_ptr, weight_ptr, bias_ptr, gate_weight_ptr, gate_bias, out_ptr,
                       n_rows, height, width, out_height, out_width, c_in, c_out, negative_slope,
                       STRIDE: tl.constexpr, ACTIVATION: tl.constexpr, GATED: tl.constexpr,
                       INPUT_PRECISION: tl.constexpr, GATE_COLUMNS: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[p, y, x] = act(Σ_taps x[p, sy + dy, sx + dx] W_tap + b) · σ(gate) over channels-last
    x (P, H, W, c_in) → out (P, H', W', c_out); weights (9, c_in, c_out), gate (9, c_in, 16)."""
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # output cells (p, y, x)
    row_ok = rows < n_rows
    out_x = rows % out_width
    out_y = (rows // out_width) % out_height
    pair = rows // (out_height * out_width)
    corner = x_ptr + ((pair * height + out_y * STRIDE) * width + out_x * STRIDE) * c_in  # (M,)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < c_out
    gate_cols = tl.arange(0, GATE_COLUMNS)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    gate_acc = tl.zeros((BLOCK_M, GATE_COLUMNS), dtype=tl.float32)
    for tap in range(0, 9):
        tap_rows = corner + ((tap // 3) * width + tap % 3) * c_in  # (BLOCK_M,) pointers
        for k0 in range(0, c_in, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_ok = ks < c_in
            a = tl.load(tap_rows[:, None] + ks[None, :], mask=row_ok[:, None] & k_ok[None, :],
                        other=0.0)  # (BLOCK_M, BLOCK_K)
            weight_rows = (tap * c_in + ks)[:, None]
            weight = tl.load(weight_ptr + weight_rows * c_out + cols[None, :],
                             mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            acc = tl.dot(a, weight, acc, input_precision=INPUT_PRECISION)
            if GATED:
                gate_weight = tl.load(gate_weight_ptr + weight_rows * GATE_COLUMNS
                                      + gate_cols[None, :], mask=k_ok[:, None], other=0.0)
                gate_acc = tl.dot(a, gate_weight, gate_acc, input_precision=INPUT_PRECISION)
    bias = tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    out = _activate(acc + bias[None, :], ACTIVATION, negative_slope)
    if GATED:  # columns 1.. of the gate weights are zero: the row sum is column 0
        out = out * tl.sigmoid(tl.sum(gate_acc, axis=1) + gate_bias)[:, None]
    tl.store(out_ptr + rows[:, None] * c_out + cols[None, :], out.to(out_ptr.dtype.element_ty),
             mask=row_ok[:, None] & col_ok[None, :])


@dataclass(frozen=True)
class GatedConv:
    """One CHD stage for `_gated_conv_kernel`: built from a conv (C_out, C_in, 3, 3) + bias and
    an optional gate conv (1, C_in, 3, 3) + bias by `GatedConv.build`."""

    weight: Tensor  # (9, C_in, C_out)
    bias: Tensor  # (C_out,)
    gate_weight: Tensor | None  # (9, C_in, 16), zero but for column 0
    gate_bias: float
    stride: int
    activation: int
    negative_slope: float = 0.0

    @classmethod
    def build(cls, conv: tuple[Tensor, Tensor], gate: tuple[Tensor, Tensor] | None, stride: int,
              activation: int, negative_slope: float = 0.0) -> GatedConv:
        weight, bias = conv
        c_out, c_in = weight.shape[:2]
        taps = weight.permute(2, 3, 1, 0).reshape(9, c_in, c_out).contiguous()  # (dy, dx) order
        gate_weight, gate_bias = None, 0.0
        if gate is not None:
            gate_weight = taps.new_zeros(9, c_in, _GATE_COLUMNS)
            gate_weight[:, :, 0] = gate[0][0].permute(1, 2, 0).reshape(9, c_in)
            gate_bias = float(gate[1][0])
        return cls(taps, bias.contiguous(), gate_weight, gate_bias, stride, activation,
                   negative_slope)

    @torch.compiler.disable  # as fused_joint
    def __call__(self, x: Tensor) -> Tensor:
        """x (P, C_in, H, W) over channels-last memory → (P, C_out, H', W'), likewise."""
        pairs, c_in, height, width = x.shape
        c_out = self.weight.shape[2]
        out_height, out_width = (height - 3) // self.stride + 1, (width - 3) // self.stride + 1
        x = x.permute(0, 2, 3, 1).contiguous()  # (P, H, W, C_in): a view when channels-last
        out = torch.empty(pairs, out_height, out_width, c_out, device=x.device, dtype=x.dtype)
        n_rows = pairs * out_height * out_width
        gated = self.gate_weight is not None
        _gated_conv_kernel[lambda meta: (triton.cdiv(n_rows, meta["BLOCK_M"]),
                                         triton.cdiv(c_out, meta["BLOCK_N"]))](
            x, self.weight, self.bias, self.gate_weight if gated else self.weight,
            self.gate_bias, out, n_rows, height, width, out_height, out_width, c_in, c_out,
            self.negative_slope, STRIDE=self.stride, ACTIVATION=self.activation, GATED=gated,
            INPUT_PRECISION=_input_precision(x.dtype),
            GATE_COLUMNS=_GATE_COLUMNS,
        )
        return out.permute(0, 3, 1, 2)
