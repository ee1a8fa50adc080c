"""PairScorer: equal to JSFusion.score_matrix in eval mode; BatchNorm folding; FLOP count."""

import pytest
import torch
from torch import nn

from vlpipe.models.jsfusion.config import JSFusionConfig
from vlpipe.models.jsfusion.scoring import (
    PairScorer,
    fold_batch_norm,
    jsfusion_pair_flops,
)
from vlpipe.nn.layers import Dense

from .test_jsfusion import calibrate_batch_norm, padded_batch, tiny_model

# Ragged, with sequences shorter than the CHD receptive field (7).
VIDEO_LENGTHS, TEXT_LENGTHS = [9, 2, 5, 12, 7, 3, 11], [3, 10, 1, 6, 8]


pytestmark = pytest.mark.usefixtures("single_thread")


def encoded(model, seed=0):
    feats, v_mask, tokens, t_mask = padded_batch(VIDEO_LENGTHS, TEXT_LENGTHS, seed, 3)
    with torch.no_grad():
        return (*model.encode_video(feats, v_mask), *model.encode_text(tokens, t_mask))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"chd_pool": "max"},
        {"chd_pool": "mean", "conv_activation": "leaky_relu", "activation": "leaky_relu"},
        {"chd_gates": False, "conv_activation": "relu"},
        {"chd_pool": "max", "chd_gates": False},
        {"text_encoder": "fc", "video_encoder": "blstm"},
        {"text_encoder": "lstm", "activation": "relu"},
        {"batch_norm": False},
        {"fusion": "lstm"},
    ],
)
def test_equals_score_matrix(overrides):
    model = calibrate_batch_norm(tiny_model(**overrides))
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs)  # (7, 5)
    spread = expected.std()  # batch_norm=False scores are nearly constant: ~1e-4
    assert spread > 1e-5
    scorer = PairScorer(model)
    assert (scorer.fallback_reason is None) == (overrides.get("fusion") != "lstm")
    for blocks in [(3, 2), (2, 4), (7, 5), (None, None)]:  # most do not divide (7, 5)
        scores = scorer(*inputs, *blocks)
        torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
        assert (scores - expected).abs().max() < 1e-3 * spread


def test_unfused_gates_and_function_form():
    model = calibrate_batch_norm(tiny_model())
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs)
    torch.testing.assert_close(PairScorer(model, fuse_gates=False)(*inputs, 3, 2), expected)
    torch.testing.assert_close(PairScorer(model)(*inputs, 2, 3), expected)


def test_tiny_memory_budget_gives_one_pair_blocks():
    model = calibrate_batch_norm(tiny_model())
    scorer = PairScorer(model, block_bytes=1)
    assert scorer.block_sizes(40, 40, 7, 5) == (1, 1)
    assert PairScorer(model).block_sizes(40, 40, 7, 5) == (7, 5)
    inputs = encoded(model)
    with torch.no_grad():
        torch.testing.assert_close(scorer(*inputs), model.score_matrix(*inputs))


def test_bfloat16_ranks_like_float32():
    model = calibrate_batch_norm(tiny_model())
    inputs = encoded(model)
    exact = PairScorer(model)(*inputs)
    low = PairScorer(model, dtype=torch.bfloat16)(*inputs)
    assert low.dtype == torch.float32
    assert torch.corrcoef(torch.stack([low.flatten(), exact.flatten()]))[0, 1] > 0.99


def test_batch_norm_without_running_statistics_falls_back():
    model = calibrate_batch_norm(tiny_model())
    model.fusion.jst.value[1].norm = nn.BatchNorm1d(8, track_running_stats=False)
    scorer = PairScorer(model)
    assert "running statistics" in scorer.fallback_reason
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs, block_videos=3, block_texts=2)
    torch.testing.assert_close(scorer(*inputs, 3, 2), expected)


def test_training_mode_and_word_output_are_rejected():
    with pytest.raises(ValueError, match="eval mode"):
        PairScorer(tiny_model().train())
    with pytest.raises(ValueError, match="output='word'"):
        PairScorer(tiny_model(output="word", d7=8).eval())


def test_fold_batch_norm_by_hand():
    dense = Dense(2, 2, activation=None)  # Linear (no bias) → BatchNorm1d
    norm = dense.norm
    norm.eps = 0.0
    with torch.no_grad():
        dense.linear.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        norm.running_mean.copy_(torch.tensor([1.0, -1.0]))
        norm.running_var.copy_(torch.tensor([4.0, 0.25]))  # σ = 2, 0.5
        norm.weight.copy_(torch.tensor([2.0, 1.0]))  # γ
        norm.bias.copy_(torch.tensor([0.5, 0.0]))  # β
    weight, bias = fold_batch_norm(dense.linear, norm)
    # W' = W·γ/σ; b' = (0 − μ)·γ/σ + β
    torch.testing.assert_close(weight, torch.tensor([[1.0, 2.0], [6.0, 8.0]], dtype=torch.double))
    torch.testing.assert_close(bias, torch.tensor([-0.5, 2.0], dtype=torch.double))
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(x @ weight.float().T + bias.float(), dense.eval()(x))

    linear = nn.Linear(2, 2)  # a bias, no BatchNorm: unchanged
    weight, bias = fold_batch_norm(linear, nn.Identity())
    torch.testing.assert_close(weight.float(), linear.weight.detach())
    torch.testing.assert_close(bias.float(), linear.bias.detach())


def test_pair_flops_by_hand():
    config = JSFusionConfig(d1=2, d2=3, d3=4, d4=5, conv_channels=6, d5=7, d6=8, d7=9)
    jst_cell = 2 * 3 + 3 + 2 * 4 + 4 * 5  # D2, w, D3, D4 multiply-adds: 37
    head = 6 * 7 + 7 * 8 + 8 * 9 + 9  # D5-D8 on the 6 CHD channels: 179
    conv1, conv = (6 + 1) * 5 * 9, (6 + 1) * 6 * 9  # per output cell, gate included
    # 8 × 8 → 6 × 6 → 4 × 4 → 1 × 1 (stride 2)
    assert jsfusion_pair_flops(8, 8, config) == 2 * (
        64 * jst_cell + 36 * conv1 + 16 * conv + 1 * conv + head
    )
    # 3 frames: the CHD grid is extended to 7 × 8 → 5 × 6 → 3 × 4 → 1 × 1
    assert jsfusion_pair_flops(3, 8, config) == 2 * (
        24 * jst_cell + 30 * conv1 + 12 * conv + 1 * conv + head
    )
    fixed_pool = JSFusionConfig(**{**vars(config), "chd_pool": "max", "chd_gates": False})
    assert jsfusion_pair_flops(8, 8, fixed_pool) == 2 * (64 * jst_cell + 5 * 7 + 7 * 8 + 8 * 9 + 9)
    lstm = JSFusionConfig(**{**vars(config), "fusion": "lstm"})
    assert jsfusion_pair_flops(8, 8, lstm) == 2 * (2 * 7 + 7 * 8 + 8 * 9 + 9)
    # Paper sizes: 40 → 38 → 36 → 17, 512-wide JST, 256-channel CHD: ≈ 7.8 GFLOP.
    assert jsfusion_pair_flops(40, 40, JSFusionConfig()) == 2 * (
        1600 * (3 * 512 * 512 + 512)
        + (38 * 38 * 512 + 36 * 36 * 256 + 17 * 17 * 256) * 257 * 9
        + 2 * 256 * 256 + 256 * 128 + 128
    )
    assert round(jsfusion_pair_flops(40, 40, JSFusionConfig()) / 1e9, 2) == 7.82


@pytest.mark.slow
def test_compiled_equals_eager():
    model = calibrate_batch_norm(tiny_model())
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs)
    compiled = PairScorer(model, compile_mode="default")
    torch.testing.assert_close(compiled(*inputs, 3, 2), expected, rtol=1e-4, atol=1e-5)
