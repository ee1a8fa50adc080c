"""ShallowNet (the thesis's image-saliency baseline, Table 3.2) and the frames extractor it
reads, at tiny sizes on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlpipe.decode import decode_media
from vlpipe.extractors import extractor_factory
from vlpipe.models import build_model
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.models.shallownet.config import ShallowNetConfig

FRAMES = FeatureInput("frames", "frames/pixels", (16, 16, 3))
TINY = {"conv_channels": [4, 8], "conv_kernels": [5, 3], "hidden": 16, "map_size": 9}


def gaze_inputs(*video: FeatureInput) -> ModelInputs:
    return ModelInputs(video=video or (FRAMES,), max_steps=8, predicts="gaze", vocab_size=0)


def shallownet(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("shallownet", {**TINY, **overrides}, gaze_inputs())


def test_maps_are_distributions_and_frames_are_independent_without_the_gru():
    model = shallownet()
    feats, mask = torch.rand(2, 4, FRAMES.size), torch.ones(2, 4, dtype=torch.bool)
    log_probs = model(feats, mask)
    assert log_probs.shape == (2, 4, 9, 9)
    torch.testing.assert_close(log_probs.exp().flatten(2).sum(-1), torch.ones(2, 4))
    torch.testing.assert_close(log_probs[:, 3:], model(feats[:, 3:], mask[:, 3:]))


def test_the_gru_variant_carries_earlier_frames_and_ignores_padding():
    model = shallownet(recurrent="gru")
    feats, mask = torch.rand(1, 3, FRAMES.size), torch.ones(1, 3, dtype=torch.bool)
    assert not torch.allclose(model(feats, mask)[:, 2:], model(feats[:, 2:], mask[:, 2:]))
    padded = torch.cat([feats, torch.rand(1, 2, FRAMES.size)], dim=1)
    torch.testing.assert_close(model(padded, torch.arange(5)[None] < 3)[:, :3],
                               model(feats, mask))


def test_maxout_takes_the_largest_piece():
    model = shallownet(maxout_pieces=3)
    assert model.maxout.out_features == 16 * 3
    with torch.no_grad():
        model.maxout.weight.zero_()
        model.maxout.bias.copy_(torch.arange(48.0))  # unit k's pieces: 3k, 3k + 1, 3k + 2
        hidden = model.maxout(torch.zeros(1, model.maxout.in_features))
    torch.testing.assert_close(hidden.unflatten(-1, (16, -1)).amax(-1),
                               3 * torch.arange(16.0)[None] + 2)


def test_learns_where_the_bright_square_is():
    """Frames with one bright 4×4 square; the target is a Gaussian on its cell of the 9×9 map:
    the net must learn to find it (a fixed map cannot: the square is anywhere)."""
    model = shallownet()
    generator = torch.Generator().manual_seed(0)

    def batch(size: int):
        cells = torch.randint(0, 4, (size, 2), generator=generator)  # the square's 4×4 block
        frames = 0.1 * torch.rand(size, 16, 16, 3, generator=generator)
        target = torch.zeros(size, 9, 9)
        for i, (row, col) in enumerate(cells.tolist()):
            frames[i, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = 1.0
            target[i, 2 * row + 1, 2 * col + 1] = 1.0  # the block's centre cell
        return frames.flatten(1)[:, None], target[:, None]

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    mask = torch.ones(32, 1, dtype=torch.bool)
    for _ in range(150):
        feats, target = batch(32)
        loss = -(target * model(feats, mask)).flatten(2).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    feats, target = batch(32)
    with torch.no_grad():
        held_out = -(target * model(feats, mask)).flatten(2).sum(-1).mean().item()
    assert held_out < 1.0, held_out  # uniform: log 81 = 4.39; knowing the block: log 1 = 0


def test_settings_and_inputs_are_checked():
    with pytest.raises(ValueError, match="one kernel per conv"):
        ShallowNetConfig(conv_channels=[4, 8], conv_kernels=[5])
    with pytest.raises(ValueError, match="must be odd"):
        ShallowNetConfig(conv_kernels=[4, 3, 3])
    with pytest.raises(ValueError, match="recurrent"):
        ShallowNetConfig(recurrent="lstm")
    with pytest.raises(ValueError, match="too small"):
        build_model("shallownet", {**TINY, "conv_channels": [4] * 5, "conv_kernels": [3] * 5},
                    gaze_inputs())
    flat = FeatureInput("frames", "frames/pixels", (768,))
    with pytest.raises(ValueError, match="not a \\(h, w, C\\) grid"):
        build_model("shallownet", TINY, gaze_inputs(flat))
    with pytest.raises(ValueError, match="remove input"):
        build_model("shallownet", TINY, gaze_inputs(FRAMES, FeatureInput("scene", "x/y", (4,))))


def test_frames_extractor_keeps_the_whole_frame_in_0_1(tiny_clips):
    frames = extractor_factory("frames")(fps=5, image_size=24)
    media = decode_media(tiny_clips.video_path[0], [frames.needs])
    decoded, times = media.frames[frames.needs]
    units = frames.prepare(media)
    pixels = frames.finish(units, frames.forward(units.inputs))["pixels"]
    assert pixels.shape == (len(times), 24, 24, 3) == (10, 24, 24, 3)
    assert frames.outputs["pixels"].shape == (24, 24, 3) and frames.needs.crop is False
    np.testing.assert_allclose(pixels, decoded / 255.0, atol=1e-6)
    assert 0.0 <= pixels.min() < pixels.max() <= 1.0
    with pytest.raises(ValueError, match="image_size"):
        extractor_factory("frames")(image_size=0)
