"""RGP, the gaze priors, GEAN and S2VT (thesis ch. 3) at tiny sizes on the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlpipe.models.gaze_prior import FAMILY as PRIOR_FAMILY
from vlpipe.models.gean import FAMILY as GEAN_FAMILY
from vlpipe.models.gean.config import GEANConfig
from vlpipe.models.gean.model import build as build_gean
from vlpipe.models.gean.model import fixed_gaze, mix_uniform, pooled_gaze, subsample
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.models.rgp import FAMILY as RGP_FAMILY
from vlpipe.models.rgp.config import GazePriorConfig, RGPConfig
from vlpipe.models.rgp.model import build as build_rgp
from vlpipe.models.rgp.model import build_prior
from vlpipe.models.s2vt.config import S2VTConfig
from vlpipe.models.s2vt.model import build as build_s2vt
from vlpipe.nn.beam_search import beam_search, greedy_decode

TINY_RGP = {"project_channels": 8, "state_channels": 4, "deconv_channels": (4, 4, 3)}
MOTION = FeatureInput("motion", "c3d/conv5b", (7, 7, 5))
SCENE = FeatureInput("scene", "googlenet/pool5", (6,))
FOVEA = FeatureInput("fovea", "googlenet/inception5b", (4, 4, 3))
VOCAB = 11


@pytest.fixture(autouse=True)
def one_thread():
    """Small convs run fastest on one thread (and beside other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaze_inputs(*video: FeatureInput) -> ModelInputs:
    return ModelInputs(video or (MOTION,), max_steps=8, predicts="gaze", vocab_size=0)


def caption_inputs(*video: FeatureInput) -> ModelInputs:
    return ModelInputs(video or (SCENE, MOTION, FOVEA), max_steps=8, predicts="caption",
                       vocab_size=VOCAB)


def tiny_gean(**overrides) -> torch.nn.Module:
    args = {"word_dim": 6, "attention_hidden": 5, "attention_gru": 7, "multimodal_gru": 9,
            "scene_width": 3, "motion_width": 4, "fovea_width": 5, "scene_steps": 4,
            "motion_steps": 5, "fovea_steps": 5, "rgp": TINY_RGP, **overrides}
    inputs = caption_inputs(*overrides.pop("video", ()))
    args.pop("video", None)
    return build_gean(GEANConfig(**args), inputs)


def clips(batch: int, steps: int, dim: int, lengths: list[int]) -> tuple[torch.Tensor, ...]:
    feats = torch.randn(batch, steps, dim)
    mask = torch.arange(steps)[None] < torch.tensor(lengths)[:, None]
    return feats, mask


# --- RGP -----------------------------------------------------------------------------------

def test_rgp_maps_are_distributions_over_49x49():
    torch.manual_seed(0)
    model = build_rgp(RGPConfig(**TINY_RGP), gaze_inputs())
    feats, mask = clips(2, 5, MOTION.size, [5, 3])
    log_probs = model(feats, mask)
    assert log_probs.shape == (2, 5, 49, 49)
    sums = log_probs.exp().flatten(2).sum(-1)
    torch.testing.assert_close(sums, torch.ones(2, 5))


def test_rgp_other_grid_sides_are_resized_to_the_map():
    model = build_rgp(RGPConfig(**TINY_RGP), gaze_inputs(FeatureInput("motion", "c3d/conv5b",
                                                                     (4, 3, 2))))
    assert model(torch.randn(1, 2, 24), torch.ones(1, 2, dtype=torch.bool)).shape == (1, 2, 49,
                                                                                        49)


@pytest.mark.parametrize("recurrent", ["conv_gru", "gru"])
def test_rgp_valid_steps_ignore_padding(recurrent):
    torch.manual_seed(0)
    model = build_rgp(RGPConfig(**TINY_RGP, recurrent=recurrent, gru_hidden=6), gaze_inputs())
    feats, _ = clips(1, 3, MOTION.size, [3])
    alone = model(feats, torch.ones(1, 3, dtype=torch.bool))
    padded = torch.cat([feats, 100 * torch.randn(1, 4, MOTION.size)], dim=1)  # garbage padding
    mask = torch.arange(7)[None] < 3
    torch.testing.assert_close(model(padded, mask)[:, :3], alone)
    other, _ = clips(1, 7, MOTION.size, [7])  # batched with a longer clip
    both = model(torch.cat([padded, other]), torch.cat([mask, torch.ones(1, 7, dtype=bool)]))
    torch.testing.assert_close(both[:1, :3], alone)


def test_rgp_needs_a_grid_named_motion():
    with pytest.raises(ValueError, match=r"'motion'.*pca"):
        build_rgp(RGPConfig(**TINY_RGP), gaze_inputs(FeatureInput("motion", "c3d/conv5b", (64,)),
                                                     SCENE))
    with pytest.raises(ValueError, match=r"remove input\(s\) \['scene'\]"):
        build_rgp(RGPConfig(**TINY_RGP), gaze_inputs(MOTION, SCENE))
    with pytest.raises(ValueError, match="deconv_channels"):
        RGPConfig(deconv_channels=())


def peaked_toy(batch: int, steps: int, generator: torch.Generator):
    """Grids (B, N, 7, 7, 2) with one bright cell per step and its 49×49 Gaussian target."""
    cells = torch.randint(0, 49, (batch, steps), generator=generator)
    grids = 0.1 * torch.randn(batch, steps, 49, 2, generator=generator)
    grids[..., 0].scatter_(-1, cells[..., None], 3.0)
    centre = torch.stack([cells // 7 * 7 + 3, cells % 7 * 7 + 3], dim=-1).float()
    ys, xs = torch.meshgrid(torch.arange(49.0), torch.arange(49.0), indexing="ij")
    dist = (ys - centre[..., :1, None]) ** 2 + (xs - centre[..., 1:, None]) ** 2
    target = torch.exp(-dist / 8.0)  # σ = 2 cells
    target = target / target.sum(dim=(-2, -1), keepdim=True)
    return grids.flatten(2), target


@pytest.mark.parametrize("recurrent", ["conv_gru", "gru"])
def test_rgp_learns_where_the_peak_is(recurrent):
    torch.manual_seed(0)
    grid = FeatureInput("motion", "c3d/conv5b", (7, 7, 2))
    model = build_rgp(RGPConfig(project_channels=16, state_channels=8, deconv_channels=(8, 8, 8),
                                recurrent=recurrent, gru_hidden=64), gaze_inputs(grid))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(8, 4, dtype=torch.bool)
    for _ in range(60):
        feats, target = peaked_toy(8, 4, generator)
        loss = -(target * model(feats, mask)).flatten(2).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    feats, target = peaked_toy(8, 4, generator)
    with torch.no_grad():
        held_out = -(target * model(feats, mask)).flatten(2).sum(-1).mean().item()
    assert held_out < 5.0, held_out  # uniform: log 2401 = 7.78; the targets' entropy: ~4.2


def test_conv_free_ablation_has_no_recurrence():
    model = build_rgp(RGPConfig(**TINY_RGP, recurrent="none"), gaze_inputs())
    feats, mask = clips(1, 3, MOTION.size, [3])
    torch.testing.assert_close(model(feats, mask)[:, 2:], model(feats[:, 2:], mask[:, 2:]))


def test_gru_ablation_is_recurrent_over_the_whole_grid():
    """C3D+GRU: a fully connected GRU, so a frame's map depends on earlier frames, and every
    cell of it on every cell of the grid (a conv-GRU's 3×3 reach would not span 7×7 in a
    step)."""
    torch.manual_seed(0)
    model = build_rgp(RGPConfig(**TINY_RGP, recurrent="gru", gru_hidden=6), gaze_inputs())
    assert isinstance(model.recurrent, torch.nn.GRU) and model.recurrent.hidden_size == 6
    feats, mask = clips(1, 3, MOTION.size, [3])
    assert not torch.allclose(model(feats, mask)[:, 2:], model(feats[:, 2:], mask[:, 2:]))
    grids = feats.unflatten(-1, MOTION.shape).clone()
    moved = grids.clone()
    moved[0, 0, 0, 0] += 5.0  # the first frame's top-left cell only
    before = model.logits(grids, mask)[0, 0]
    after = model.logits(moved, mask)[0, 0]
    assert (after - before)[-10:, -10:].abs().max() > 1e-4  # reaches the far corner at once


# --- gaze priors ---------------------------------------------------------------------------

def test_mean_prior_learns_a_fixed_map():
    model = build_prior(GazePriorConfig(kind="mean"), gaze_inputs())
    target = torch.rand(49, 49) ** 4
    target = target / target.sum()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    mask = torch.ones(2, 3, dtype=torch.bool)
    for _ in range(300):
        loss = -(target * model(torch.zeros(2, 3, 1), mask)).flatten(2).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probs = model(torch.zeros(2, 3, 1), mask).exp()
    assert probs.shape == (2, 3, 49, 49)
    assert (probs[1, 2] - target).abs().sum() < 0.05


def test_fixed_priors_have_nothing_to_train():
    central = build_prior(GazePriorConfig(kind="central", sigma=3.0), gaze_inputs())
    uniform = build_prior(GazePriorConfig(kind="uniform"), gaze_inputs())
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert not any(p.requires_grad for p in central.parameters())
    probs = central(torch.zeros(1, 2, 1), mask).exp()[0, 0]
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert divmod(int(probs.argmax()), 49) == (24, 24)
    assert probs[24, 27] / probs[24, 24] == pytest.approx(math.exp(-9 / 18), rel=1e-4)
    torch.testing.assert_close(uniform(torch.zeros(1, 2, 1), mask).exp(),
                               torch.full((1, 2, 49, 49), 1 / 2401))
    assert "map_logits" in central.state_dict()


# --- GEAN: spatial attention -------------------------------------------------------------------

def test_pooled_gaze_by_hand():
    gaze = torch.zeros(4, 4)
    gaze[0, 0] = 0.5
    gaze[3, 3] = 0.5  # avg-pool 2×2 → [[.125, 0], [0, .125]] → ℓ1 → [[.5, 0], [0, .5]]
    expected = (torch.tensor([[0.5, 0.0], [0.0, 0.5]]) + 0.6 / 4) / 1.6
    torch.testing.assert_close(pooled_gaze(gaze, (2, 2), 0.6), expected)
    assert mix_uniform(torch.ones(3, 3), 0.6).sum().item() == pytest.approx(1.0)


def test_fixed_maps_by_hand():
    e1, e2 = math.exp(-0.5), math.exp(-1.0)  # σ = 1: a side and a corner neighbour
    central = torch.tensor([[e2, e1, e2], [e1, 1.0, e1], [e2, e1, e2]])
    central = central / central.sum()
    torch.testing.assert_close(fixed_gaze("central", (), (3, 3), 1.0), central)
    peripheral = 1 - central / central.max()
    torch.testing.assert_close(fixed_gaze("peripheral", (), (3, 3), 1.0),
                               peripheral / peripheral.sum())
    torch.testing.assert_close(fixed_gaze("uniform", (2,), (3, 3), 1.0),
                               torch.full((2, 3, 3), 1 / 9))
    point = torch.tensor([[0.1, 0.9]])  # the cell (0, 2) of a 3×3 grid
    random = fixed_gaze("random", (1,), (3, 3), 1.0, point)[0]
    rows, cols = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    corner = torch.exp(-(rows**2 + (cols - 2) ** 2) / 2)
    torch.testing.assert_close(random, corner / corner.sum())


def test_uniform_and_central_weights_differ_as_specified():
    uniform, central = tiny_gean(gaze="uniform"), tiny_gean(gaze="central")
    alpha_u = uniform.spatial_weights((3, 3), (1, 2), None, None, torch.device("cpu"))
    alpha_c = central.spatial_weights((3, 3), (1, 2), None, None, torch.device("cpu"))
    torch.testing.assert_close(alpha_u, torch.full((1, 2, 3, 3), 1 / 9))
    torch.testing.assert_close(alpha_c[0, 0], mix_uniform(fixed_gaze("central", (), (3, 3), 1.0),
                                                          0.6))
    assert alpha_c[0, 0, 1, 1] > 1 / 9 > alpha_c[0, 0, 0, 0]


def test_pools_weight_the_grids():
    model = tiny_gean(gaze="central", gaze_uniform=0.0, pools=("fovea",), video=(FOVEA,))
    feats = torch.randn(1, 2, FOVEA.size)
    pools = model.encode(feats, torch.ones(1, 2, dtype=torch.bool))
    alpha = fixed_gaze("central", (), (4, 4), 1.0)
    expected = torch.einsum("hw,nhwc->nc", alpha, feats[0].view(2, 4, 4, 3))
    torch.testing.assert_close(pools["fovea"][0][0], expected)
    none = tiny_gean(gaze="none", pools=("fovea",), video=(FOVEA,))
    torch.testing.assert_close(none.encode(feats, torch.ones(1, 2, dtype=torch.bool))["fovea"][0],
                               feats.view(1, 2, 16, 3).mean(2))


def test_random_gaze_follows_the_torch_seed():
    model = tiny_gean(gaze="random").eval()
    feats, mask = clips(2, 3, caption_inputs().video_dim, [3, 2])
    torch.manual_seed(5)
    first = model.encode(feats, mask)["motion"][0]
    torch.manual_seed(5)
    torch.testing.assert_close(model.encode(feats, mask)["motion"][0], first)
    assert not torch.allclose(model.encode(feats, mask)["motion"][0], first)


def test_subsample_caps_pools_uniformly():
    values = torch.arange(50.0).view(1, 50, 1).expand(2, -1, -1)
    mask = torch.arange(50)[None] < torch.tensor([[50], [10]])
    picked, picked_mask = subsample(values, mask, 35)
    assert picked.shape == (2, 35, 1)
    expected = np.round(np.linspace(0, 49, 35))
    np.testing.assert_array_equal(picked[0, :, 0].numpy(), expected)
    assert picked_mask[0].all() and picked_mask[1].sum() == 10
    np.testing.assert_array_equal(picked[1, :10, 0].numpy(), np.arange(10))


# --- GEAN: decoder and interface -------------------------------------------------------------

def test_gean_interface_shapes_and_teacher_forcing():
    torch.manual_seed(0)
    model = tiny_gean().eval()
    dim = caption_inputs().video_dim
    feats, mask = clips(2, 8, dim, [8, 3])
    assert model.end_id == VOCAB
    state = model.start(feats, mask)
    assert state["scene"].shape == (2, 4, 6) and state["motion"].shape == (2, 5, 5)
    assert state["fovea_mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    tokens = torch.tensor([[VOCAB, 3, 4, 5], [VOCAB, 6, 7, 0]])
    log_probs = model(feats, mask, tokens)
    assert log_probs.shape == (2, 4, VOCAB + 1)
    steps = []
    for t in range(4):
        out, state = model.step(tokens[:, t], state)
        assert out.shape == (2, VOCAB + 1)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), log_probs)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 4))


def test_gean_trains_end_to_end_with_rgp():
    torch.manual_seed(0)
    model = tiny_gean()
    feats, mask = clips(2, 6, caption_inputs().video_dim, [6, 4])
    tokens = torch.tensor([[VOCAB, 3, 4], [VOCAB, 5, 6]])
    loss = F.nll_loss(model(feats, mask, tokens).flatten(0, 1), torch.tensor([3, 4, VOCAB, 5, 6,
                                                                             VOCAB]))
    loss.backward()
    assert model.rgp.project.weight.grad is not None  # not frozen: the caption loss trains it


def test_beam_search_runs_on_gean():
    torch.manual_seed(0)
    model = tiny_gean().eval()
    feats, mask = clips(3, 6, caption_inputs().video_dim, [6, 2, 4])
    settings = {"batch": 3, "start_id": VOCAB, "end_id": VOCAB, "max_len": 5}
    beams = beam_search(model.step, model.start(feats, mask), beam=3, **settings)
    greedy = greedy_decode(model.step, model.start(feats, mask), **settings)
    assert len(beams) == len(greedy) == 3
    assert all(len(seq) <= 5 and VOCAB not in seq for seq in beams)


def test_load_upstream_copies_and_freezes_the_rgp():
    torch.manual_seed(0)
    rgp = build_rgp(RGPConfig(**TINY_RGP), gaze_inputs())
    model = tiny_gean()
    copied = model.load_upstream(rgp.state_dict(), freeze=True)
    assert copied == sorted(f"rgp.{key}" for key in rgp.state_dict())
    for key, value in rgp.state_dict().items():
        torch.testing.assert_close(model.rgp.state_dict()[key], value)
    assert not any(p.requires_grad for p in model.rgp.parameters())
    model.train()
    assert not model.rgp.training and model.attention_gru.training
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.1)
    feats, mask = clips(2, 6, caption_inputs().video_dim, [6, 4])
    tokens = torch.tensor([[VOCAB, 3], [VOCAB, 5]])
    before = model.out.weight.detach().clone()
    model(feats, mask, tokens).sum().neg().backward()
    optimizer.step()
    for key, value in rgp.state_dict().items():
        torch.testing.assert_close(model.rgp.state_dict()[key], value)
    assert not torch.equal(model.out.weight, before)


def test_a_frozen_rgp_maps_each_clip_once():
    """A frozen RGP's maps are kept per clip: the same as computing them, zero on padding, and
    not recomputed when the clip comes again in another batch, padded otherwise."""
    torch.manual_seed(0)
    model = tiny_gean()
    model.load_upstream(build_rgp(RGPConfig(**TINY_RGP), gaze_inputs()).state_dict(),
                        freeze=True)
    grids, _ = clips(3, 6, MOTION.size, [6, 6, 6])
    grids = grids.unflatten(-1, MOTION.shape)  # (3, 6, 7, 7, 5)
    mask = torch.arange(6)[None] < torch.tensor([6, 4, 2])[:, None]
    calls = []
    log_maps = model.rgp.log_maps
    model.rgp.log_maps = lambda *args: calls.append(len(args[0])) or log_maps(*args)
    maps = model.gaze_maps(grids, mask)
    torch.testing.assert_close(maps[0], log_maps(grids[:1], mask[:1]).exp()[0])
    torch.testing.assert_close(maps[1, :4], log_maps(grids[1:2, :4], mask[1:2, :4]).exp()[0])
    assert maps[1, 4:].abs().sum() == 0 and maps[2, 2:].abs().sum() == 0
    again = model.gaze_maps(torch.cat([grids[2:, :2], grids[1:2, :2]]), mask[[2, 2]][:, :2])
    torch.testing.assert_close(again[0], maps[2, :2])
    assert calls == [3, 1]  # the second batch: only its new clip (clip 1's first 2 steps)


def test_load_upstream_errors():
    model = tiny_gean()
    other = build_rgp(RGPConfig(**{**TINY_RGP, "state_channels": 6}), gaze_inputs())
    with pytest.raises(ValueError, match=r"recurrent\.cell\.gate_conv\.weight"):
        model.load_upstream(other.state_dict(), freeze=True)
    with pytest.raises(ValueError, match="absent"):
        model.load_upstream({"unrelated": torch.zeros(1)}, freeze=True)
    with pytest.raises(ValueError, match="gaze='uniform' has no RGP"):
        tiny_gean(gaze="uniform").load_upstream(other.state_dict(), freeze=True)
    assert tiny_gean(gaze="uniform").rgp is None


def test_gean_build_checks_its_inputs():
    with pytest.raises(ValueError, match=r"needs input\(s\) \['motion'\]"):
        tiny_gean(video=(SCENE, FOVEA))
    tiny_gean(pools=("fovea",), video=(MOTION, FOVEA))  # GEAN+GNet with gaze from the RGP
    without_scene = tiny_gean(pools=("motion", "fovea"), gaze="uniform")  # GEAN+GNet+C3D
    assert set(without_scene.attention) == {"motion", "fovea"}
    feats, mask = clips(2, 4, sum(f.size for f in (SCENE, MOTION, FOVEA)), [4, 2])
    state = without_scene.start(feats, mask)
    assert "scene" not in state and state["fovea"].shape[0] == 2
    with pytest.raises(ValueError, match=r"reads no input\(s\) \['audio'\]"):
        tiny_gean(video=(SCENE, MOTION, FOVEA, FeatureInput("audio", "vggish/embedding", (4,))))
    flat = FeatureInput("fovea", "googlenet/inception5b", (16,))  # after PCA
    with pytest.raises(ValueError, match=r"'fovea'.*pca"):
        tiny_gean(video=(SCENE, MOTION, flat))
    tiny_gean(gaze="none", video=(SCENE, MOTION, flat))  # no spatial attention: vectors will do


def test_families_check_settings_without_torch_objects():
    assert GEAN_FAMILY.settings({"preset": "paper"}, "caption")["fovea_width"] == 512
    assert RGP_FAMILY.settings({"preset": "paper"}, "gaze")["state_channels"] == 128
    assert PRIOR_FAMILY.settings({"kind": "central"}, "gaze")["kind"] == "central"
    with pytest.raises(ValueError, match="gaze='gazer'"):
        GEAN_FAMILY.settings({"gaze": "gazer"}, "caption")
    with pytest.raises(ValueError, match=r"rgp: .*recurrent"):
        GEAN_FAMILY.settings({"rgp": {"recurrent": "lstm"}}, "caption")
    with pytest.raises(ValueError, match="pools"):
        GEAN_FAMILY.settings({"pools": ["scene", "audio"]}, "caption")
    # GEAN's RGP as gaze_prediction's: a preset too, expanded, so the upstream weights fit
    nested = GEANConfig(rgp={"preset": "paper", "state_channels": 64}).rgp_config
    assert (nested.project_channels, nested.state_channels) == (512, 64)
    with pytest.raises(ValueError, match=r"rgp: model_args.preset: 'small' is not a preset"):
        GEAN_FAMILY.settings({"rgp": {"preset": "small"}}, "caption")
    config = GEANConfig(**GEAN_FAMILY.settings({"preset": "paper"}, "caption"))
    assert config.word_dim + sum((config.scene_width, config.motion_width,
                                  config.fovea_width)) == 1536  # the multimodal GRU's input


# --- S2VT ------------------------------------------------------------------------------------

def test_s2vt_interface():
    torch.manual_seed(0)
    inputs = caption_inputs(FeatureInput("frames", "googlenet/pool5", (6,)))
    model = build_s2vt(S2VTConfig(word_dim=4, frame_dim=5, hidden=7), inputs).eval()
    feats, mask = clips(2, 5, 6, [5, 2])
    tokens = torch.tensor([[VOCAB, 3, 4], [VOCAB, 5, 0]])
    log_probs = model(feats, mask, tokens)
    assert log_probs.shape == (2, 3, VOCAB + 1)
    state = model.start(feats, mask)
    out, _ = model.step(tokens[:, 0], state)
    torch.testing.assert_close(out, log_probs[:, 0])
    alone = model(feats[1:, :2], mask[1:, :2], tokens[1:])  # padding changes nothing
    torch.testing.assert_close(log_probs[1:], alone)
    decoded = beam_search(model.step, model.start(feats, mask), batch=2, start_id=VOCAB,
                          end_id=VOCAB, max_len=4, beam=2)
    assert len(decoded) == 2
