"""JSFusion: paper shapes, padding invariance, blockwise scoring, ablations, and learning."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from vlpipe import models
from vlpipe.metrics import bidirectional_retrieval
from vlpipe.models import FAMILIES, build_model
from vlpipe.models.jsfusion.config import PRESETS, JSFusionConfig
from vlpipe.models.jsfusion.model import CHDStage, ConvHierarchicalDecoder, JSFusion
from vlpipe.models.jsfusion.scoring import PairScorer
from vlpipe.nn.encoders import SequenceEncoder, TextEmbedding
from vlpipe.nn.layers import lengths_to_mask
from vlpipe.nn.losses import in_batch_ranking_loss

from .helpers import model_inputs

VOCAB, VIDEO_DIM = 30, 10
TINY = dict(
    word_dim=12, encoder_hidden=8, d1=8, d2=8, d3=8, d4=8, conv_channels=6, d5=8, d6=8, d7=4
)


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_model(**overrides) -> JSFusion:
    torch.manual_seed(0)
    return JSFusion(JSFusionConfig(**{**TINY, **overrides}), VOCAB, VIDEO_DIM)


def padded_batch(video_lengths, text_lengths, seed=0, extra_padding=0):
    """Random right-padded batch whose padded positions hold garbage, not zeros."""
    g = torch.Generator().manual_seed(seed)
    v_len, t_len = torch.tensor(video_lengths), torch.tensor(text_lengths)
    v_mask = lengths_to_mask(v_len, int(v_len.max()) + extra_padding)
    t_mask = lengths_to_mask(t_len, int(t_len.max()) + extra_padding)
    feats = torch.randn(*v_mask.shape, VIDEO_DIM, generator=g)
    tokens = torch.randint(1, VOCAB, t_mask.shape, generator=g)
    return feats, v_mask, tokens, t_mask


def with_new_padding(feats, v_mask, tokens, t_mask, seed=1):
    """Same batch with different garbage in every padded position."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.where(v_mask[..., None], feats, 100 * torch.randn(feats.shape, generator=g))
    tokens = torch.where(t_mask, tokens, torch.randint(1, VOCAB, tokens.shape, generator=g))
    return feats, v_mask, tokens, t_mask


def calibrate_batch_norm(model: JSFusion, steps: int = 5) -> JSFusion:
    """Set BatchNorm running statistics to averages over a few train-mode passes; eval mode."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average instead of an exponential one
    model.train()
    with torch.no_grad():
        for seed in range(steps):
            model(*padded_batch([9, 4, 7, 8], [6, 9, 3, 8], seed=seed))
    return model.eval()


# The configurations whose code paths differ: encoders, fusion, gates, pooling.
VARIANTS = [
    {},
    {"fusion": "lstm"},
    {"video_encoder": "blstm", "text_encoder": "lstm"},
    {"video_encoder": "fc", "text_encoder": "fc", "chd_gates": False},
    {"chd_pool": "max", "video_encoder": "lstm"},
    {"chd_pool": "mean", "conv_activation": "leaky_relu", "activation": "leaky_relu"},
]


def test_registry():
    assert FAMILIES["jsfusion"].config is JSFusionConfig
    assert FAMILIES["jsfusion"].presets is PRESETS
    model = build_model("jsfusion", TINY, model_inputs(3, 5))
    assert isinstance(model, JSFusion) and model.config == JSFusionConfig(**TINY)
    assert model.video_encoder.out_dim == model.video_encoder.state_dim + 3  # video_dim
    assert model.word_embedding.num_embeddings == 5  # vocab_size
    # fill in the blank: the task's predicts="word" sets the output, not model_args
    words = build_model("jsfusion", {**TINY, "d7": 8}, model_inputs(3, 5, predicts="word"))
    assert words.config == JSFusionConfig(**{**TINY, "d7": 8}, output="word")
    with pytest.raises(ValueError, match="'caption'"):
        build_model("jsfusion", TINY, model_inputs(3, 5, predicts="caption"))
    with pytest.raises(KeyError, match="jsfusion"):
        build_model("nope", {}, model_inputs(3, 5))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hiden'\]"):
        build_model("jsfusion", {"hiden": 3}, model_inputs(3, 5))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['output'\]"):  # set by the task
        build_model("jsfusion", {"output": "word"}, model_inputs(3, 5))
    with pytest.raises(ValueError, match="chd_pool"):  # the config's own check, named
        build_model("jsfusion", {"chd_pool": "median"}, model_inputs(3, 5))
    # a preset expands into the paper's sizes; explicit keys override it
    settings = FAMILIES["jsfusion"].settings({"preset": "paper_fib", "dropout": 0.1}, "word")
    assert settings == {**PRESETS["paper_fib"], "dropout": 0.1, "output": "word"}
    with pytest.raises(ValueError, match="'huge' is not a preset"):
        FAMILIES["jsfusion"].settings({"preset": "huge"}, "score")


def test_the_test_time_scorer_is_the_dense_pair_scorer():
    model = tiny_model().eval()
    scorer = models.test_time_scorer(model)  # imported as pytest would collect it
    assert isinstance(scorer, PairScorer)
    feats, v_mask, tokens, t_mask = padded_batch([9, 4, 7], [6, 9, 3, 8, 2])
    encoded = (*model.encode_video(feats, v_mask), *model.encode_text(tokens, t_mask))
    with torch.no_grad():
        torch.testing.assert_close(scorer(*encoded), model.score_matrix(*encoded),
                                   rtol=1e-4, atol=1e-5)
    other = nn.Linear(2, 2)
    other.score_matrix = lambda *a: None
    assert models.test_time_scorer(other) == other.score_matrix  # no scorer registered: its own


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="chd_pool"):
        JSFusionConfig(chd_pool="median")


def test_paper_sizes_jst_and_chd():
    """Default config at N = M = 40: J is (B, 512, 40, 40) and the CHD gives 38 → 36 → 17."""
    torch.manual_seed(0)
    model = JSFusion(JSFusionConfig(), vocab_size=50, video_dim=2176).eval()
    shapes = []
    record = lambda module, inputs, output: shapes.append(tuple(output.shape))  # noqa: E731
    model.fusion.jst.register_forward_hook(record)
    for stage in model.fusion.chd.stages:
        stage.register_forward_hook(record)
    mask = torch.ones(2, 40, dtype=torch.bool)
    with torch.no_grad():
        scores = model(torch.randn(2, 40, 2176), mask, torch.randint(1, 50, (2, 40)), mask)
    assert shapes == [(2, 512, 40, 40), (2, 256, 38, 38), (2, 256, 36, 36), (2, 256, 17, 17)]
    assert scores.shape == (2,)
    assert model.video_encoder.out_dim == 1024 + 2176  # [GLU conv output; frame feature]
    assert model.text_encoder.out_dim == 2 * 512 + 300  # [h_fwd; h_bwd; word]


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_fixed_pooling_keeps_jst_channels(pool):
    model = tiny_model(chd_pool=pool).eval()
    shapes = []
    for stage in model.fusion.chd.stages:
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        model(*padded_batch([40], [40]))
    assert shapes == [(1, 8, 38, 38), (1, 8, 36, 36), (1, 8, 17, 17)]


def test_chd_valid_cells_need_a_fully_valid_window():
    """A cell is valid iff its whole 3x3 window is; sequences < 7 are extended to 7."""
    chd = ConvHierarchicalDecoder(4, JSFusionConfig(**TINY))
    assert chd.receptive_field == 7
    frames = lengths_to_mask(torch.tensor([10, 3]), 12)
    words = lengths_to_mask(torch.tensor([12, 20]), 20)
    mask = chd.input_mask(frames, words)
    assert mask.shape == (2, 12, 20)
    expected_rectangles = [
        [(8, 10), (5, 18)],  # (10, 12) → (8, 10); (3 → 7, 20) → (5, 18)
        [(6, 8), (3, 16)],
        [(2, 3), (1, 7)],  # stride 2: (6 - 3) // 2 + 1 = 2, (8 - 3) // 2 + 1 = 3
    ]
    for stage, rectangles in zip(chd.stages, expected_rectangles, strict=True):
        mask = stage.propagate_mask(mask)
        for pair_mask, (rows, cols) in zip(mask, rectangles, strict=True):
            expected = torch.zeros_like(pair_mask)
            expected[:rows, :cols] = True
            assert torch.equal(pair_mask, expected)


def test_chd_stage_gate_is_broadcast_over_channels():
    stage = CHDStage(in_channels=4, out_channels=6, stride=2)
    assert stage.gate.out_channels == 1
    assert stage(torch.randn(2, 4, 9, 9)).shape == (2, 6, 4, 4)


@pytest.mark.parametrize("kind", ["blstm", "lstm", "fc", "conv"])
def test_sequence_encoder_ignores_padding(kind):
    torch.manual_seed(0)
    encoder = SequenceEncoder(VIDEO_DIM, kind, hidden=5).eval()
    feats, mask, _, _ = padded_batch([6, 2, 4], [1, 1, 1])
    long_feats = torch.cat([feats, torch.randn(3, 4, VIDEO_DIM)], dim=1)  # more garbage
    long_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        out, long_out = encoder(feats, mask), encoder(long_feats, long_mask)
    assert out.shape == (3, 6, encoder.out_dim)
    assert encoder.out_dim == encoder.state_dim + VIDEO_DIM
    torch.testing.assert_close(long_out[:, :6], out)
    assert long_out[:, 6:].abs().max() == 0
    states = encoder.final_state(out, mask)
    assert states.shape == (3, encoder.state_dim)
    torch.testing.assert_close(encoder.final_state(long_out, long_mask), states)


@pytest.mark.parametrize("kind", ["blstm", "lstm", "fc", "conv"])
def test_sequence_encoder_reads_an_empty_row_as_zeros(kind):
    """A sentence with no in-vocabulary word has no valid step: it encodes to zeros (outputs
    and final state) and the other rows come out as they do without it."""
    torch.manual_seed(0)
    encoder = SequenceEncoder(VIDEO_DIM, kind, hidden=5).eval()
    feats, mask, _, _ = padded_batch([4, 1, 3], [1, 1, 1])
    mask[1] = False  # row 1: length 0
    with torch.no_grad():
        out = encoder(feats, mask)
        states = encoder.final_state(out, mask)
        alone = encoder(feats[[0, 2]], mask[[0, 2]])
    assert out[1].abs().max() == 0 and states[1].abs().max() == 0
    torch.testing.assert_close(out[[0, 2]], alone)
    torch.testing.assert_close(states[[0, 2]], encoder.final_state(alone, mask[[0, 2]]))


@pytest.mark.parametrize("overrides", [{"text_encoder": "blstm"}, {"text_encoder": "lstm"},
                                       {"fusion": "lstm"}])
def test_a_sentence_without_words_scores_and_trains(overrides):
    model = tiny_model(**overrides)
    feats, v_mask, tokens, t_mask = padded_batch([5, 8, 3], [4, 0, 2])
    scores = model(feats, v_mask, tokens, t_mask)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    scores.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_blstm_final_state_is_last_forward_and_first_backward_step():
    torch.manual_seed(0)
    encoder = SequenceEncoder(VIDEO_DIM, "blstm", hidden=5).eval()
    x = torch.randn(1, 4, VIDEO_DIM)
    with torch.no_grad():
        h, _ = encoder.net(x)  # (1, 4, 10) unpadded reference
        padded = torch.cat([x, torch.randn(1, 3, VIDEO_DIM)], dim=1)
        mask = lengths_to_mask(torch.tensor([4]), 7)
        state = encoder.final_state(encoder(padded, mask), mask)
    torch.testing.assert_close(state, torch.cat([h[:, 3, :5], h[:, 0, 5:]], dim=-1))


def test_text_embedding_init_and_freezing():
    init = np.arange(12, dtype=np.float32).reshape(4, 3)
    embedding = TextEmbedding(4, 3, init=init, trainable=False)
    assert not embedding.weight.requires_grad
    assert embedding.weight[0].abs().sum() == 0  # padding row
    torch.testing.assert_close(embedding(torch.tensor([2])), torch.tensor([[6.0, 7.0, 8.0]]))


@pytest.mark.parametrize("overrides", VARIANTS)
def test_scores_ignore_padded_content(overrides):
    batch = padded_batch([9, 4, 7, 8], [6, 9, 3, 8], extra_padding=2)
    eval_model = calibrate_batch_norm(tiny_model(**overrides))
    # Train mode too (BatchNorm statistics skip padding); dropout off for determinism.
    train_model = tiny_model(**overrides, dropout=0.0).train()
    for model in (eval_model, train_model):
        with torch.no_grad():
            torch.testing.assert_close(model(*with_new_padding(*batch)), model(*batch))


@pytest.mark.parametrize("overrides", VARIANTS)
def test_score_matrix_equals_pair_scores(overrides):
    model = calibrate_batch_norm(tiny_model(**overrides))
    video_lengths, text_lengths = [9, 2, 5, 12, 7], [3, 10, 1, 6]
    feats, v_mask, tokens, t_mask = padded_batch(video_lengths, text_lengths)
    with torch.no_grad():
        matrix = model.score_matrix(
            *model.encode_video(feats, v_mask),
            *model.encode_text(tokens, t_mask),
            block_videos=2,
            block_texts=3,
        )
        # Every (video i, sentence j) as an aligned pair, padded to a different length.
        vi, tj = torch.meshgrid(torch.arange(5), torch.arange(4), indexing="ij")
        vi, tj = vi.flatten(), tj.flatten()
        pairs = padded_batch(
            [video_lengths[i] for i in vi], [text_lengths[j] for j in tj], extra_padding=3
        )
        pair_feats, pair_v_mask, pair_tokens, pair_t_mask = pairs
        pair_feats[:, :12] = torch.where(v_mask[vi, :, None], feats[vi], pair_feats[:, :12])
        pair_tokens[:, :10] = torch.where(t_mask[tj], tokens[tj], pair_tokens[:, :10])
        pair_scores = model(pair_feats, pair_v_mask, pair_tokens, pair_t_mask)
    assert matrix.shape == (5, 4)
    assert matrix.std() > 1e-3  # not a degenerate constant scorer
    torch.testing.assert_close(matrix, pair_scores.view(5, 4), rtol=1e-4, atol=1e-5)


FUSION_VARIANTS = [
    {"fusion": "jst", "chd_gates": gates, "chd_pool": pool}
    for gates, pool in itertools.product([True, False], ["conv", "max", "mean"])
] + [{"fusion": "lstm"}]


@pytest.mark.parametrize(
    ("text_encoder", "video_encoder", "fusion"),
    list(itertools.product(["blstm", "lstm", "fc"], ["conv", "blstm", "lstm", "fc"],
                           FUSION_VARIANTS)),
)
def test_every_ablation_builds_and_scores(text_encoder, video_encoder, fusion):
    model = tiny_model(text_encoder=text_encoder, video_encoder=video_encoder, **fusion)
    feats, v_mask, tokens, t_mask = padded_batch([5, 8, 3], [4, 2, 7])
    scores = model(feats, v_mask, tokens, t_mask)
    assert scores.shape == (3,)
    assert torch.isfinite(scores).all()
    scores.sum().backward()
    model.eval()
    with torch.no_grad():
        matrix = model.score_matrix(
            *model.encode_video(feats[:2], v_mask[:2]), *model.encode_text(tokens, t_mask)
        )
    assert matrix.shape == (2, 3)
    assert torch.isfinite(matrix).all()


def test_training_learns_which_prototype_a_sentence_names():
    """K classes: the video shows prototype k, the sentence contains word k among fillers."""
    num_classes = 6
    g = torch.Generator().manual_seed(0)
    prototypes = 2 * torch.randn(num_classes, VIDEO_DIM, generator=g)

    def sample_batch():  # one pair per class, so the in-batch negatives are true negatives
        v_len = torch.randint(4, 10, (num_classes,), generator=g)
        t_len = torch.randint(3, 9, (num_classes,), generator=g)
        v_mask, t_mask = lengths_to_mask(v_len, 9), lengths_to_mask(t_len, 8)
        feats = prototypes[:, None, :] + 0.5 * torch.randn(num_classes, 9, VIDEO_DIM, generator=g)
        tokens = torch.randint(num_classes + 1, VOCAB, (num_classes, 8), generator=g)
        slot = (torch.rand(num_classes, generator=g) * t_len).long()
        tokens[torch.arange(num_classes), slot] = torch.arange(1, num_classes + 1)
        return feats, v_mask, tokens, t_mask

    width = dict(encoder_hidden=16, d1=16, d2=16, d3=16, d4=16, conv_channels=16, d5=16, d6=16)
    model = tiny_model(**width, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        feats, v_mask, tokens, t_mask = sample_batch()
        matrix = model.score_matrix(
            *model.encode_video(feats, v_mask), *model.encode_text(tokens, t_mask)
        )
        loss = in_batch_ranking_loss(matrix, margin=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])

    model.eval()
    recall_at_1 = []
    with torch.no_grad():
        for _ in range(5):
            feats, v_mask, tokens, t_mask = sample_batch()
            matrix = model.score_matrix(
                *model.encode_video(feats, v_mask), *model.encode_text(tokens, t_mask)
            )
            recall_at_1.append(bidirectional_retrieval(matrix.T.numpy())["t2v"]["R@1"])
    assert np.mean(recall_at_1) > 2 * 100 / num_classes  # chance is 1 / num_classes


def test_fill_in_blank_head_gives_word_logits_with_the_blank_skip():
    with pytest.raises(ValueError, match=r"d1 \(8\) must equal d7"):
        JSFusionConfig(output="word", d1=8, d7=4)
    with pytest.raises(ValueError, match="fusion='jst'"):
        JSFusionConfig(output="word", fusion="lstm", d1=4, d7=4)
    model = tiny_model(output="word", d7=8).eval()
    feats, v_mask, tokens, t_mask = padded_batch([9, 4, 7], [6, 9, 3])
    encoded = (*model.encode_video(feats, v_mask), *model.encode_text(tokens, t_mask))
    blank = torch.tensor([0, 5, 2])
    logits = model.word_logits(*encoded, blank)
    assert logits.shape == (3, VOCAB)
    # the skip term is D1w at the blank: another blank position changes only via the skip
    moved = model.word_logits(*encoded, torch.tensor([1, 5, 2]))
    assert not torch.allclose(logits[0], moved[0]) and torch.equal(logits[1:], moved[1:])
    with pytest.raises(RuntimeError, match="output='word'"):
        tiny_model().word_logits(*encoded, blank)
