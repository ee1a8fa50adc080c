"""The 3-D CNN window extractors (C3D, I3D): windows and step times, output shapes, the conv5b
layout, the head's pool, weight files."""

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.decode import decode_media
from vlpipe.extractors import MissingWeightsError
from vlpipe.extractors.c3d import C3D, C3DNet, stack_time_in_channels
from vlpipe.extractors.i3d import I3D
from vlpipe.extractors.job import extract_shard
from vlpipe.extractors.weights import file_digest
from vlpipe.features.store import FeatureStore
from vlpipe.manifest import SHARD_COLUMNS, with_file_identity

# The synthetic clips are 2 s at 10 fps: 20 decoded frames at 10 fps, 10 at 5 fps.
C3D_TINY = {"fps": 10, "window": 16, "stride": 2, "image_size": 32, "allow_random_init": True}
I3D_TINY = {"fps": 10, "window": 4, "image_size": 64, "allow_random_init": True}


@pytest.fixture(scope="module")
def c3d():
    return C3D(**C3D_TINY, outputs=["fc6", "conv5b", "fc7"])


@pytest.fixture(scope="module")
def i3d():
    return I3D(**I3D_TINY, outputs=["pooled", "grid"])


@pytest.fixture(scope="module")
def video(tiny_clips):
    return tiny_clips.video_path[0]


def _windows(extractor, count, seed=0):
    size = extractor.needs.size
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, extractor.window, size, size, 3), dtype=torch.uint8,
                         generator=generator)


def test_c3d_steps_end_every_stride_frames_with_o1_features(c3d, video):
    media = decode_media(video, [c3d.needs])
    frames, _ = media.frames[c3d.needs]
    assert len(frames) == 20
    units = c3d.prepare(media)
    assert units.inputs.shape == (3, 16, 32, 32, 3) and units.inputs.dtype == torch.uint8
    np.testing.assert_allclose(units.times, [1.5, 1.7, 1.9])  # windows end at frames 15, 17, 19
    np.testing.assert_array_equal(units.inputs[1].numpy(), frames[2:18])
    arrays = c3d.finish(units, c3d.forward(units.inputs))
    expected = {"fc6": (3, 4096), "fc7": (3, 4096), "conv5b": (3, 2, 2, 1024)}
    assert {k: v.shape for k, v in arrays.items()} == expected
    for name, spec in c3d.outputs.items():
        values = arrays[name]
        assert values.shape[1:] == spec.shape and spec.dtype == "float16"
        assert values.dtype == np.float32 and np.isfinite(values).all()
        # post-ReLU; the He re-init keeps a random C3D O(1), far from float16's limits
        assert values.min() >= 0 and 0.05 < values.std() < 5 and values.max() < 100
    assert not np.allclose(arrays["fc6"][0], arrays["fc6"][2])  # the shapes move
    assert (c3d.primary, c3d.frames_per_unit, c3d.weights_identity) == ("fc6", 16,
                                                                        "random-seed-0")


def test_c3d_has_the_sports1m_layout():
    with torch.device("meta"):  # shapes only, no compute
        net = C3DNet(window=16, image_size=112)
        out = net(torch.empty(1, 3, 16, 112, 112))
    assert out["conv5b"].shape == (1, 512, 2, 7, 7) and net.fc6.in_features == 8192
    layers = ["conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b",
              "fc6", "fc7"]
    assert list(net.state_dict()) == [f"{n}.{p}" for n in layers for p in ("weight", "bias")]
    with torch.device("meta"):  # the full-size extractor, without allocating its weights
        full = C3D(outputs=["conv5b", "fc6"], allow_random_init=True)
    assert full.outputs["conv5b"].shape == (7, 7, 1024)  # the "7×7×1024" of the papers
    assert full.needs.size == 112 and full.needs.fps == 25 and full.stride == 5


def test_conv5b_stacks_its_temporal_slices_into_channels(c3d):
    # by hand: x[0, c, t, 0, j] = 4c + 2t + j → channel order (t=0: c=0,1,2; t=1: c=0,1,2)
    x = torch.arange(12).view(1, 3, 2, 1, 2)
    np.testing.assert_array_equal(stack_time_in_channels(x)[0, 0],
                                  [[0, 4, 8, 2, 6, 10], [1, 5, 9, 3, 7, 11]])
    hooked = {}
    handle = c3d.net.conv5b.register_forward_hook(lambda m, i, o: hooked.update(raw=o))
    try:
        stored = c3d.forward(_windows(c3d, 2))["conv5b"]  # (2, 2, 2, 1024)
    finally:
        handle.remove()
    raw = torch.relu(hooked["raw"]).numpy()  # (N, 512, t=2, h, w), stored after its ReLU
    assert raw.shape == (2, 512, 2, 2, 2) and stored.shape == (2, 2, 2, 1024)
    np.testing.assert_array_equal(stored[..., :512], raw[:, :, 0].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(stored[..., 512:], raw[:, :, 1].transpose(0, 2, 3, 1))
    assert stored[1, 0, 1, 512 + 7] == raw[1, 7, 1, 0, 1]


def test_i3d_windows_do_not_overlap_and_pooled_is_what_the_classifier_reads(i3d, video):
    media = decode_media(video, [i3d.needs])
    frames, _ = media.frames[i3d.needs]
    units = i3d.prepare(media)
    assert units.inputs.shape == (5, 4, 64, 64, 3)
    np.testing.assert_allclose(units.times, [0.3, 0.7, 1.1, 1.5, 1.9])
    np.testing.assert_array_equal(units.inputs[2].numpy(), frames[8:12])
    arrays = i3d.finish(units, i3d.forward(units.inputs))
    assert arrays["pooled"].shape == (5, 2048) and arrays["grid"].shape == (5, 2, 2, 2048)
    assert all(np.isfinite(v).all() for v in arrays.values())
    assert 0.01 < arrays["pooled"].std() < 5
    # the grid is averaged over time only, pooled over time and space
    np.testing.assert_allclose(arrays["grid"].mean(axis=(1, 2)), arrays["pooled"], rtol=1e-5,
                               atol=1e-6)
    # pooled is the head pool's output in pytorchvideo's own forward, before dropout and the
    # 400-way projection
    head = i3d.net.blocks[-1]
    hooked = {}
    handle = head.pool.register_forward_hook(lambda m, i, o: hooked.update(pool=o))
    x = ((units.inputs.float() / 255 - 0.45) / 0.225).permute(0, 4, 1, 2, 3).contiguous()
    try:
        with torch.no_grad():
            logits = i3d.net(x)
    finally:
        handle.remove()
    np.testing.assert_allclose(hooked["pool"].flatten(1).numpy(), arrays["pooled"], rtol=1e-4,
                               atol=1e-5)
    with torch.no_grad():
        from_pooled = head.proj(torch.from_numpy(arrays["pooled"]))
    np.testing.assert_allclose(logits.numpy(), from_pooled.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["c3d", "i3d"])
def test_a_clip_shorter_than_a_window_gives_one_repeat_padded_step(name, request, video):
    extractor = request.getfixturevalue(name)
    media = decode_media(video, [extractor.needs], 0.0, 0.3)
    frames, _ = media.frames[extractor.needs]
    assert len(frames) == 3
    units = extractor.prepare(media)
    assert len(units) == 1
    np.testing.assert_allclose(units.times, [0.2])  # the last frame's time
    index = [0] * (extractor.window - 2) + [1, 2]  # the first frame repeated in front
    np.testing.assert_array_equal(units.inputs[0].numpy(), frames[index])
    arrays = extractor.finish(units, extractor.forward(units.inputs))
    assert all(len(v) == 1 and np.isfinite(v).all() for v in arrays.values())


def test_c3d_weights_round_trip(c3d, tmp_path):
    # c3d.pickle's keys: conv1 … fc7 as built here, plus the 487-way Sports-1M classifier fc8
    state = {**c3d.net.state_dict(), "fc8.weight": torch.randn(487, 4096),
             "fc8.bias": torch.zeros(487)}
    path = tmp_path / "c3d.pickle"
    torch.save(state, path)
    loaded = C3D(**{**C3D_TINY, "allow_random_init": False}, outputs=list(c3d.outputs),
                 weights_path=str(path), seed=5)  # seed 5: a different init, then loaded
    assert loaded.weights_identity == f"c3d.pickle@sha256:{file_digest(path)}"
    windows = _windows(c3d, 2, seed=1)
    expected, got = c3d.forward(windows), loaded.forward(windows)
    for name in c3d.outputs:
        np.testing.assert_array_equal(got[name], expected[name])
    with pytest.raises(ValueError, match=r"fc6 takes 2048 inputs.*image_size=64 give 4608"), \
            torch.device("meta"):
        C3D(**{**C3D_TINY, "image_size": 64}, weights_path=str(path))


def test_i3d_weights_round_trip(i3d, tmp_path):
    path = tmp_path / "I3D_8x8_R50.pyth"
    torch.save({"model_state": i3d.net.state_dict(), "epoch": 196}, path)
    loaded = I3D(**{**I3D_TINY, "allow_random_init": False}, outputs=list(i3d.outputs),
                 weights_path=str(path), seed=5)
    assert loaded.weights_identity == f"I3D_8x8_R50.pyth@sha256:{file_digest(path)}"
    windows = _windows(i3d, 2, seed=1)
    expected, got = i3d.forward(windows), loaded.forward(windows)
    for name in i3d.outputs:
        np.testing.assert_array_equal(got[name], expected[name])


def test_missing_weights_and_bad_settings_are_explained(tmp_path):
    missing = str(tmp_path / "nowhere.bin")
    with pytest.raises(MissingWeightsError, match=r"'c3d\.pickle'.*nowhere\.bin.*c3d-pytorch"):
        C3D(weights_path=missing)
    with pytest.raises(MissingWeightsError,
                       match=r"'I3D_8x8_R50\.pyth'.*nowhere\.bin.*fbaipublicfiles"):
        I3D(weights_path=missing)
    with pytest.raises(ValueError, match="window >= 16"):
        C3D(window=8, allow_random_init=True)
    with pytest.raises(ValueError, match=r"subset of \['pooled', 'grid'\]"):
        I3D(outputs=["logits"], allow_random_init=True)


def test_extract_job_stores_both(tiny_clips, tmp_path):
    shard = tmp_path / "shard.parquet"
    with_file_identity(tiny_clips.iloc[:2])[SHARD_COLUMNS].to_parquet(shard, index=False)
    settings = {"c3d": {**C3D_TINY, "stride": 4, "outputs": ["fc6", "conv5b"]},
                "i3d": {**I3D_TINY, "fps": 5, "image_size": 32}}
    stores = {name: tmp_path / f"{name}.zarr" for name in settings}
    results = extract_shard(shard, stores, settings, num_workers=0)
    assert {r["counts"]["recomputed"] for r in results.values()} == {2}
    clip = tiny_clips.clip_id[1]
    c3d_store, i3d_store = FeatureStore(stores["c3d"]), FeatureStore(stores["i3d"])
    assert c3d_store.primary == "fc6" and c3d_store.read(clip).shape == (2, 4096)
    assert c3d_store.read(clip, "conv5b").shape == (2, 2, 2, 1024)
    assert c3d_store.read(clip).dtype == np.float16
    np.testing.assert_allclose(c3d_store.read(clip, "times"), [1.5, 1.9], rtol=1e-6)
    assert i3d_store.primary == "pooled" and i3d_store.read(clip).shape == (2, 2048)
    np.testing.assert_allclose(i3d_store.read(clip, "times"), [0.6, 1.4], rtol=1e-6)
    assert pd.Series([c3d_store.attrs["provenance"]["weights"],
                      i3d_store.attrs["provenance"]["weights"]]).eq("random-seed-0").all()
