import json
import math

import numpy as np
import pytest
import torch

from vlpipe.decode import AudioSpec, DecodedMedia, FrameSpec, decode_media
from vlpipe.extractors.logmel import (
    frame_count,
    hertz_to_mel,
    log_mel_spectrogram,
    mel_matrix,
    periodic_hann,
    waveform_to_examples,
)
from vlpipe.extractors.vggish import PCA_FILE, WEIGHTS_FILE, PCAQuantize, VGGish, VGGishNetwork
from vlpipe.extractors.weights import MissingWeightsError
from vlpipe.features.store import ClipFeatures, FeatureStore, write_store
from vlpipe.synthetic import WorldConfig, generate_world

RATE = 16_000
PORT_KEYS = {f"{block}.{i}.{kind}" for block, layers in
             (("features", (0, 3, 6, 8, 11, 13)), ("embeddings", (0, 2, 4)))
             for i in layers for kind in ("weight", "bias")}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_weight_caches(tmp_path, monkeypatch):
    """Nothing in the library's or torch's weight caches."""
    monkeypatch.setenv("VLPIPE_WEIGHTS", str(tmp_path / "vlpipe-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(scope="module")
def random_vggish(tmp_path_factory):
    caches = tmp_path_factory.mktemp("empty-caches")
    with pytest.MonkeyPatch.context() as patch:  # real weights on this machine stay unused
        patch.setenv("VLPIPE_WEIGHTS", str(caches / "vlpipe"))
        patch.setenv("TORCH_HOME", str(caches / "torch"))
        return VGGish(fps=5, allow_random_init=True, seed=0)


@pytest.fixture(scope="module")
def audio_world(tmp_path_factory):
    """4 clips of 2 s, one of them written without an audio stream."""
    root = tmp_path_factory.mktemp("audio_world")
    config = WorldConfig(seed=3, n_clips=4, size=32, silent_fraction=0.25)
    generate_world(root, config)
    assert len(config.silent_clips()) == 1
    with open(root / "annotations" / "scenes.jsonl") as handle:
        scenes = [json.loads(line) for line in handle]
    return root, scenes


# ---- front end -----------------------------------------------------------------------------

def test_mel_matrix_is_htk_triangles_without_dc():
    weights = mel_matrix(257)
    assert weights.shape == (257, 64)
    assert np.all(weights[0] == 0) and weights.min() >= 0 and weights.max() <= 1
    assert hertz_to_mel(700.0) == pytest.approx(1127.0 * math.log(2))
    # band i peaks at the linear bin nearest its centre edge (edges: 66 mel-spaced points)
    centres = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)[1:-1]
    bins_mel = hertz_to_mel(np.linspace(0, 8000, 257))
    for band in (0, 20, 63):
        assert weights[:, band].argmax() == np.abs(bins_mel - centres[band]).argmin()
    # the lowest band starts at 125 Hz, the highest ends at 7500 Hz (bins are 31.25 Hz apart)
    hertz = np.linspace(0, 8000, 257)
    assert hertz[weights[:, 0] > 0].min() > 125 and hertz[weights[:, 0] > 0].min() < 160
    assert hertz[weights[:, 63] > 0].max() < 7500 and hertz[weights[:, 63] > 0].max() > 7460


def test_window_is_periodic_hann():
    np.testing.assert_allclose(periodic_hann(4), [0.0, 0.5, 1.0, 0.5], atol=1e-12)
    assert len(periodic_hann(400)) == 400 and periodic_hann(400)[200] == 1.0


@pytest.mark.parametrize("frequency", [440.0, 1000.0, 3000.0])
def test_pure_sine_peaks_in_the_band_that_contains_it(frequency):
    t = np.arange(RATE) / RATE
    log_mel = log_mel_spectrogram(0.5 * np.sin(2 * np.pi * frequency * t))
    assert log_mel.shape == (1 + (RATE - 400) // 160, 64)
    centres = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)[1:-1]
    expected = np.abs(centres - hertz_to_mel(frequency)).argmin()
    assert np.all(log_mel.argmax(axis=1) == expected)


def test_silence_is_log_of_the_offset():
    examples = waveform_to_examples(np.zeros(RATE, np.float32))
    assert examples.shape == (1, 96, 64) and examples.dtype == np.float32
    np.testing.assert_allclose(examples, math.log(0.01), rtol=1e-6)


@pytest.mark.parametrize(("samples", "by_hand"), [
    (0, 0), (399, 0), (400, 0), (15_599, 0), (15_600, 1), (30_959, 1), (30_960, 2), (32_000, 2),
    (160_000, 10)])
def test_example_count_follows_the_reference_formula(samples, by_hand):
    # reference: frames = 1 + floor((S - 400) / 160); examples = 1 + floor((frames - 96) / 96),
    # where a count below one means no example
    frames = 1 + math.floor((samples - 400) / 160)
    assert max(0, 1 + math.floor((frames - 96) / 96)) == by_hand
    assert frame_count(samples, 400, 160) == max(0, frames)
    examples = waveform_to_examples(np.ones(samples, np.float32))
    assert examples.shape == (by_hand, 96, 64) and examples.dtype == np.float32


# ---- network and postprocessing ------------------------------------------------------------

def test_network_shapes_and_port_state_dict_names():
    torch.manual_seed(0)
    net = VGGishNetwork().eval()
    state = net.state_dict()
    assert set(state) == PORT_KEYS
    assert state["features.0.weight"].shape == (64, 1, 3, 3)
    assert state["features.13.weight"].shape == (512, 512, 3, 3)
    assert state["embeddings.0.weight"].shape == (4096, 512 * 4 * 6)
    assert state["embeddings.4.weight"].shape == (128, 4096)
    with torch.inference_mode():
        out = net(torch.randn(3, 1, 96, 64))
    assert out.shape == (3, 128) and torch.isfinite(out).all() and (out >= 0).all()


def test_first_fc_reads_features_in_tensorflow_channels_last_order():
    net = VGGishNetwork().eval()
    with torch.no_grad():
        for layer in net.embeddings[::2]:
            layer.weight.zero_()
            layer.bias.zero_()
        h, w, c = 4, 2, 300  # a feature at row h, column w, channel c of the (6, 4, 512) grid
        net.embeddings[0].weight[0, (h * 4 + w) * 512 + c] = 1.0
        net.embeddings[2].weight[0, 0] = 1.0
        net.embeddings[4].weight[0, 0] = 1.0
        x = torch.randn(2, 1, 96, 64)
        grid = net.features(x)  # (2, 512, 6, 4)
        out = net(x)
    torch.testing.assert_close(out[:, 0], grid[:, c, h, w])
    assert (out[:, 1:] == 0).all()


def test_pca_quantisation_by_hand():
    values = torch.tensor([-3.0, -2.0, -1.0, 0.0, 0.5, 1.999, 2.0, 5.0])
    embeddings = torch.zeros(2, 128)
    embeddings[0, :8] = values
    quantise = PCAQuantize(torch.eye(128), torch.zeros(128))
    out = quantise(embeddings)
    # (clip(x, -2, 2) + 2) · 255 / 4, truncated: -1 → 63.75 → 63, 0 → 127.5 → 127, ...
    assert out[0, :8].tolist() == [0, 0, 63, 127, 159, 254, 255, 255]
    assert (out[0, 8:] == 127).all() and (out[1] == 127).all()
    # means are subtracted before the matrix, whose rows are the output components
    vectors = torch.zeros(128, 128)
    vectors[0, 1] = 2.0  # component 0 = 2 · (x1 - m1)
    vectors[1, 0] = -1.0  # component 1 = -(x0 - m0)
    means = torch.zeros(128)
    means[1] = 1.0
    out = PCAQuantize(vectors, means)(torch.tensor([[0.5, 1.5] + [0.0] * 126]))
    # component 0: 2 · 0.5 = 1 → 191.25 → 191; component 1: -0.5 → 95.625 → 95
    assert out[0, :3].tolist() == [191, 95, 127]
    with pytest.raises(ValueError, match="PCA parameters"):
        PCAQuantize(torch.eye(64), torch.zeros(64))


def test_weights_round_trip_through_configured_files(tmp_path, no_weight_caches):
    torch.manual_seed(1)
    weights = tmp_path / WEIGHTS_FILE
    torch.save({k: v.half() for k, v in VGGishNetwork().state_dict().items()}, weights)
    pca = tmp_path / PCA_FILE  # the released file holds numpy arrays
    torch.save({"pca_eigen_vectors": np.eye(128) * 4.0, "pca_means": np.full(128, 0.1)}, pca)
    extractor = VGGish(weights_path=str(weights), pca_path=str(pca))
    vggish_id, pca_id = extractor.weights_identity.split("+")
    assert vggish_id.startswith(f"{WEIGHTS_FILE}@sha256:") and len(vggish_id) == 12 + len(
        f"{WEIGHTS_FILE}@sha256:")
    assert pca_id.startswith(f"{PCA_FILE}@sha256:")
    assert extractor.provenance()["weights"] == extractor.weights_identity
    examples = torch.from_numpy(waveform_to_examples(
        np.random.default_rng(0).uniform(-0.5, 0.5, 2 * RATE)))
    out = extractor.forward(examples)["embedding"]
    assert out.shape == (2, 128)
    assert np.all(out == np.floor(out)) and out.min() >= 0 and out.max() <= 255
    raw = extractor.net["vggish"](examples.unsqueeze(1)).detach().numpy()
    expected = np.floor((np.clip(4.0 * (raw - 0.1), -2, 2) + 2) * 255 / 4)
    assert np.abs(out - expected).max() <= 1  # float32 rounding at integer boundaries

    # Pretrained network without its PCA file: an error unless random init is allowed,
    # and then the identity says the PCA was skipped.
    with pytest.raises(MissingWeightsError, match=PCA_FILE):
        VGGish(weights_path=str(weights))
    no_pca = VGGish(weights_path=str(weights), allow_random_init=True)
    assert no_pca.weights_identity == f"{vggish_id}+no-pca" and "pca" not in no_pca.net


def test_random_init_is_labelled_and_skips_pca(random_vggish, no_weight_caches):
    assert random_vggish.weights_identity == "random-seed-0+no-pca"
    assert "pca" not in random_vggish.net
    assert random_vggish.needs == AudioSpec(rate=16_000)
    assert random_vggish.dim == 128
    with pytest.raises(MissingWeightsError, match=WEIGHTS_FILE):
        VGGish()


# ---- alignment to the frame rate ----------------------------------------------------------

def test_steps_take_the_example_that_contains_them(random_vggish):
    # 2.5 s of audio = 248 log-mel frames = 2 whole examples covering [0, 1.92) s
    media = DecodedMedia(duration=2.5, audio={AudioSpec(RATE): np.zeros(40_000, np.float32)})
    units = random_vggish.prepare(media)
    assert len(units) == 2 and units.inputs.shape == (2, 96, 64)
    np.testing.assert_allclose(units.times, np.arange(13) / 5)  # ceil(2.5 · 5) = 13 steps
    fake = {"embedding": np.arange(2, dtype=np.float32)[:, None] * np.ones((1, 128))}
    arrays = random_vggish.finish(units, fake)
    # t = 0 .. 0.8 → example 0; 1.0 .. 1.8 → example 1; 2.0 .. 2.4 → past the last example:
    # clamped to it, mask 0
    assert arrays["embedding"][:, 0].tolist() == [0] * 5 + [1] * 8
    assert arrays["mask"].tolist() == [1] * 10 + [0] * 3 and arrays["mask"].dtype == np.uint8

    # no audio stream, audio shorter than one example, unknown duration
    for audio, duration, steps in ((None, 1.0, 5), (np.zeros(8000, np.float32), 0.5, 3),
                                   (np.zeros(RATE, np.float32), math.nan, 5)):
        units = random_vggish.prepare(DecodedMedia(duration, audio={AudioSpec(RATE): audio}))
        assert len(units.times) == steps
        if len(units) == 0:
            arrays = random_vggish.finish(units, {})
            assert arrays["embedding"].shape == (steps, 128) and not arrays["embedding"].any()
            assert not arrays["mask"].any()
        else:
            assert len(units) == 1  # 1 s of audio: one example covering t < 0.96
            assert random_vggish.finish(units, fake)["mask"].tolist() == [1] * 5


def test_extract_synthetic_world_with_silent_clips(random_vggish, audio_world, tmp_path):
    root, scenes = audio_world
    image_spec = FrameSpec(5, 16)
    clips, units, image_steps = [], [], {}
    for scene in scenes:
        path = str(root / "videos" / f"{scene['video_id']}.mp4")
        media = decode_media(path, [image_spec, random_vggish.needs])
        assert (media.audio[random_vggish.needs] is None) == (not scene["has_audio"])
        image_steps[scene["video_id"]] = media.frames[image_spec][1]
        units.append(random_vggish.prepare(media))
    # one batch across clips, as the extraction job does
    outputs = random_vggish.forward(torch.cat([u.inputs for u in units]))
    assert outputs["embedding"].shape == (sum(len(u) for u in units), 128)
    offset = 0
    for scene, clip_units in zip(scenes, units, strict=True):
        clip_outputs = {k: v[offset: offset + len(clip_units)] for k, v in outputs.items()}
        offset += len(clip_units)
        arrays = random_vggish.finish(clip_units, clip_outputs)
        clips.append(ClipFeatures(scene["video_id"], "id", clip_units.times, arrays))
    specs = {k: (v.shape, v.dtype, v.axis) for k, v in random_vggish.outputs.items()}
    write_store(tmp_path / "vggish.zarr", clips, specs,
                {"provenance": random_vggish.provenance()})

    store = FeatureStore(tmp_path / "vggish.zarr")
    embeddings = {}
    for scene in scenes:
        video = scene["video_id"]
        embedding, times = store[video]
        mask = store.read(video, "mask")
        assert embedding.dtype == np.float16 and mask.dtype == np.uint8
        assert embedding.shape == (10, 128) and mask.shape == (10,)
        np.testing.assert_allclose(times, image_steps[video], atol=1e-6)  # same steps as images
        if not scene["has_audio"]:
            assert not mask.any() and not embedding.any()
            continue
        assert mask.all() and np.isfinite(embedding).all()
        # steps 0..4 (t < 0.96) share example 0, steps 5..9 example 1
        assert (embedding[:5] == embedding[0]).all() and (embedding[5:] == embedding[5]).all()
        assert np.abs(embedding[0].astype(np.float32) - embedding[5]).mean() > 0.01
        embeddings[video] = embedding.astype(np.float32)

    # clips whose shapes (hence pitches) differ give different embeddings
    shapes = {s["video_id"]: {o["shape"] for o in s["scene"]["objects"]} for s in scenes
              if s["has_audio"]}
    pairs = [(a, b) for a in shapes for b in shapes if a < b and shapes[a] != shapes[b]]
    assert pairs
    for a, b in pairs:
        difference = np.abs(embeddings[a] - embeddings[b]).mean()
        assert difference > 0.05 * np.abs(embeddings[a]).mean()
