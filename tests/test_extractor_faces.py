"""Face extractor: MTCNN's shipped weights find the astronaut's face in a real encoded clip; the
synthetic world (shapes only) has none; outputs go through a feature store unchanged; ArcFace's
alignment puts the face's landmarks on its template, and its ONNX model is what runs."""

from __future__ import annotations

import re
from fractions import Fraction
from importlib.metadata import version

import av
import numpy as np
import pytest
import torch
from facenet_pytorch import InceptionResnetV1
from skimage import data
from skimage.transform import resize

from vlpipe.decode import decode_media
from vlpipe.extractors.base import Units
from vlpipe.extractors.faces import EMBEDDER_FILE, FaceExtractor
from vlpipe.extractors.weights import MissingWeightsError, file_digest
from vlpipe.features.store import ClipFeatures, FeatureStore, StoreWriter

SETTINGS = {"fps": 10.0, "image_size": 160, "embedder": "facenet", "allow_random_init": True,
            "seed": 0}
CLIP_WIDTH, CLIP_HEIGHT, CLIP_FRAMES = 320, 256, 4
# The astronaut's face (eyebrows to chin, ear to ear), checked by eye on the 512×512 image;
# in the clip the image is halved and sits at the left of a 320×256 frame.
FACE_PX_512 = np.array([180, 60, 270, 175], np.float32)
FACE_BOX = FACE_PX_512 / 2 / np.array([CLIP_WIDTH, CLIP_HEIGHT] * 2, np.float32)
INSTANCE_NAMES = ("step", "box", "prob", "landmarks", "embedding", "crop")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def _write_astronaut_clip(path) -> None:
    """``CLIP_FRAMES`` identical frames at 10 fps, losslessly coded: the astronaut (256 px) on
    the left of a grey 320×256 frame (aspect 1.25, squashed by ``crop=False``)."""
    frame = np.full((CLIP_HEIGHT, CLIP_WIDTH, 3), 128, np.uint8)
    frame[:, :256] = (resize(data.astronaut(), (256, 256), anti_aliasing=True) * 255).round()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"qp": "0", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = CLIP_WIDTH, CLIP_HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        for index in range(CLIP_FRAMES):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The CPU is shared: one intra-op thread keeps these small networks from oversubscribing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def no_weights(tmp_path_factory):
    """Empty weight caches: the embedder is a labelled random init, whatever this machine has."""
    empty = tmp_path_factory.mktemp("no-weights")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLPIPE_WEIGHTS", str(empty))
        patch.setenv("TORCH_HOME", str(empty))
        yield


@pytest.fixture(scope="module")
def extractor(no_weights) -> FaceExtractor:
    return FaceExtractor(**SETTINGS)


def _run(extractor: FaceExtractor, path: str) -> tuple[Units, dict[str, np.ndarray]]:
    units = extractor.prepare(decode_media(path, [extractor.needs]))
    return units, extractor.finish(units, extractor.forward(units.inputs))


@pytest.fixture(scope="module")
def astronaut(extractor, tmp_path_factory) -> tuple[Units, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("astronaut") / "astronaut.mp4"
    _write_astronaut_clip(path)
    return _run(extractor, str(path))


@pytest.fixture(scope="module")
def shapes_only(extractor, tiny_clips) -> tuple[Units, dict[str, np.ndarray]]:
    return _run(extractor, tiny_clips.video_path.iloc[0])


def _check_specs(extractor: FaceExtractor, arrays: dict[str, np.ndarray], steps: int) -> None:
    assert set(arrays) == {"count", *INSTANCE_NAMES}
    for name, spec in extractor.outputs.items():
        rows = steps if spec.axis == "step" else len(arrays["step"])
        assert arrays[name].shape == (rows, *spec.shape), name
        assert arrays[name].dtype == np.dtype(spec.dtype), name


def test_settings_and_identity(extractor):
    assert extractor.needs.fps == 10.0 and extractor.needs.size == 160
    assert extractor.needs.crop is False
    assert extractor.weights_identity == \
        f"facenet-pytorch-{version('facenet-pytorch')}-mtcnn+random-seed-0"
    assert extractor.primary == "count" and extractor.outputs["embedding"].shape == (512,)
    assert extractor.outputs["crop"].shape == (112, 112, 3)
    assert extractor.outputs["count"].axis == "step"
    assert all(extractor.outputs[n].axis == "instance" for n in INSTANCE_NAMES)


def test_astronaut_face_in_every_frame(extractor, astronaut):
    units, arrays = astronaut
    frames = units.inputs.numpy()
    assert frames.shape == (CLIP_FRAMES, 160, 160, 3)
    assert all(np.array_equal(frames[0], f) for f in frames)  # lossless, identical frames
    _check_specs(extractor, arrays, CLIP_FRAMES)
    assert (arrays["count"] >= 1).all()
    np.testing.assert_array_equal(arrays["step"],
                                  np.repeat(np.arange(CLIP_FRAMES), arrays["count"]))
    first = np.concatenate([[0], np.cumsum(arrays["count"])[:-1]])  # each step's best face
    for i in first:
        box, marks = arrays["box"][i], arrays["landmarks"][i]
        assert arrays["prob"][i] > 0.95
        assert _iou(box, FACE_BOX) > 0.5
        assert (marks >= box[:2]).all() and (marks <= box[2:]).all()
        eyes, nose, mouth = marks[:2], marks[2], marks[3:]
        assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # left before right
        assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()  # top to bottom
    # the crop is the box's region of the decoded frame, resized: same mean colour
    x1, y1, x2, y2 = (arrays["box"][0] * 160).astype(int)
    region = frames[0, y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(arrays["crop"][0].reshape(-1, 3).mean(axis=0), region, atol=3)
    assert arrays["crop"][0].std() > 20
    embedding = arrays["embedding"][first].astype(np.float32)
    assert np.isfinite(embedding).all()
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-2)
    assert all(np.array_equal(embedding[0], e) for e in embedding)


def test_shapes_only_clip_has_no_faces(extractor, shapes_only):
    units, arrays = shapes_only
    _check_specs(extractor, arrays, len(units.times))
    assert len(units.times) == 20  # 2 s at 10 fps
    assert (arrays["count"] == 0).all()
    assert all(len(arrays[name]) == 0 for name in INSTANCE_NAMES)


def test_batch_entries_are_ragged_and_independent(extractor, astronaut):
    frame = astronaut[0].inputs[:1]
    batch = torch.cat([frame, torch.zeros_like(frame), frame])
    outputs = extractor.forward(batch)
    assert set(outputs) == set(INSTANCE_NAMES) - {"step"}
    assert [len(e) for e in outputs["prob"]] == [1, 0, 1]
    assert outputs["embedding"][1].shape == (0, 512)
    single = extractor.forward(frame)
    np.testing.assert_array_equal(outputs["crop"][2], single["crop"][0])
    for name in ("box", "prob", "landmarks", "embedding"):  # batch size may change rounding
        np.testing.assert_allclose(outputs[name][2], single[name][0], atol=1e-5)
    arrays = extractor.finish(Units(batch, np.arange(3.0)), outputs)
    np.testing.assert_array_equal(arrays["count"], [1, 0, 1])
    np.testing.assert_array_equal(arrays["step"], [0, 2])


def test_min_prob_and_keep_crops(extractor, astronaut):
    frame = astronaut[0].inputs[:1]
    reference = extractor.forward(frame)
    prob = float(reference["prob"][0][0])
    kept = FaceExtractor(**SETTINGS, min_prob=prob, keep_crops=False)
    assert "crop" not in kept.outputs
    outputs = kept.forward(frame)
    assert "crop" not in outputs and len(outputs["prob"][0]) == 1
    np.testing.assert_array_equal(outputs["embedding"][0], reference["embedding"][0])
    arrays = kept.finish(Units(frame, np.zeros(1)), outputs)
    assert set(arrays) == {"count", *INSTANCE_NAMES} - {"crop"}
    above = FaceExtractor(**SETTINGS, min_prob=float(np.nextafter(np.float32(prob), 2)))
    assert len(above.forward(frame)["prob"][0]) == 0


def test_store_round_trip(extractor, astronaut, shapes_only, tmp_path):
    specs = {k: (v.shape, v.dtype, v.axis) for k, v in extractor.outputs.items()}
    clips = [ClipFeatures(clip_id, clip_id, units.times, arrays) for clip_id, (units, arrays)
             in [("astronaut", astronaut), ("shapes", shapes_only)]]
    with StoreWriter(tmp_path / "faces.zarr", specs, {"provenance": extractor.provenance()}) as w:
        for clip in clips:
            w.add(clip)
    store = FeatureStore(tmp_path / "faces.zarr")
    assert store.primary == "count"
    for clip in clips:
        for name, values in clip.arrays.items():
            stored = store.read(clip.clip_id, name)
            assert stored.dtype == values.dtype
            np.testing.assert_array_equal(stored, values)
    assert store.index["instance"]["shapes"][1] == 0
    assert store.index["instance"]["astronaut"][1] == astronaut[1]["count"].sum()


def test_pretrained_file_loads_without_its_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("VLPIPE_WEIGHTS", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError, match=re.escape(f"v2.2.9/{EMBEDDER_FILE}")):
        FaceExtractor(fps=5.0, embedder="facenet")
    torch.manual_seed(1)
    # the released file: InceptionResnetV1 with its VGGFace2 classifier (fewer classes here)
    released = InceptionResnetV1(classify=True, num_classes=3).state_dict()
    assert {k for k in released if k.startswith("logits.")} == {"logits.weight", "logits.bias"}
    (tmp_path / "cache").mkdir()
    torch.save(released, tmp_path / "cache" / EMBEDDER_FILE)
    loaded = FaceExtractor(fps=5.0, embedder="facenet")
    digest = file_digest(tmp_path / "cache" / EMBEDDER_FILE)
    assert loaded.weights_identity.endswith(f"+{EMBEDDER_FILE}@sha256:{digest}")
    state = loaded.net["embedder"].state_dict()
    assert set(state) == set(released) - {"logits.weight", "logits.bias"}
    assert all(torch.equal(state[k], released[k]) for k in state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_matches_cpu(extractor, astronaut):
    frames = astronaut[0].inputs
    cpu = extractor.forward(frames)
    gpu_extractor = FaceExtractor(**SETTINGS).to("cuda")
    assert gpu_extractor.mtcnn.device.type == "cuda"
    gpu = gpu_extractor.forward(frames)
    assert [len(p) for p in gpu["prob"]] == [len(p) for p in cpu["prob"]]
    for i in range(len(frames)):
        # MTCNN's cascade (thresholds, NMS, crops at whole pixels) turns rounding differences
        # into slightly different boxes: 1.5 px and 1e-3 in probability on an H100.
        assert _iou(gpu["box"][i][0], cpu["box"][i][0]) > 0.8
        np.testing.assert_allclose(gpu["prob"][i], cpu["prob"][i], atol=0.01)
        a, b = gpu["embedding"][i].ravel(), cpu["embedding"][i].ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.99


# --- ArcFace ---------------------------------------------------------------------------------

POOL = 16  # the stand-in model: 16×16 average pooling of the normalised face, then a linear map


def _arcface_stand_in(path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An ONNX model with ArcFace's signature, (N, 3, 112, 112) → (N, 512), built with onnx's
    helpers (the published file cannot be downloaded here); its linear map (W, b)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(3 * (112 // POOL) ** 2, 512)).astype(np.float32)
    bias = rng.normal(size=512).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["data"], ["pooled"], name="pool",
                          kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
         helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
         helper.make_node("Gemm", ["flat", "W", "b"], ["fc1"], name="fc")],
        "arcface-stand-in",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return weight, bias


@pytest.fixture(scope="module")
def arcface(tmp_path_factory):
    path = tmp_path_factory.mktemp("arcface") / "w600k_r50.onnx"
    weight, bias = _arcface_stand_in(path)
    return FaceExtractor(fps=10.0, image_size=160, weights_path=str(path)), weight, bias


def test_arcface_aligns_the_face_by_its_landmarks_and_runs_the_onnx_file(arcface, astronaut):
    from insightface.utils.face_align import arcface_dst

    extractor, weight, bias = arcface
    frame = astronaut[0].inputs[:1]
    outputs = extractor.forward(frame)
    crop = outputs["crop"][0][0]  # (112, 112, 3) RGB
    assert crop.shape == (112, 112, 3) and crop.std() > 20
    # MTCNN finds the aligned face's eyes, nose and mouth where ArcFace's template has them (a
    # least-squares fit of 5 points: a face's own proportions leave the nose and mouth a few
    # pixels off; an unaligned crop would be tens of pixels off)
    _, _, points = extractor.mtcnn.detect(torch.from_numpy(crop)[None], landmarks=True)
    error = np.abs(points[0][0].astype(np.float32) - arcface_dst)  # (5, 2) pixels of 112
    assert error.mean() < 3 and error[:2].max() < 3 and error.max() < 7, points[0][0]
    # the embedding is the ONNX model's on that crop, (x − 127.5) / 127.5, unit length
    x = (crop.astype(np.float32) - 127.5) / 127.5  # (112, 112, 3)
    pooled = x.reshape(7, POOL, 7, POOL, 3).mean(axis=(1, 3)).transpose(2, 0, 1).reshape(-1)
    expected = pooled @ weight + bias
    np.testing.assert_allclose(outputs["embedding"][0][0], expected / np.linalg.norm(expected),
                               atol=1e-4)


def test_arcface_identity_names_the_file_and_a_missing_file_says_how_to_get_it(
        arcface, tmp_path, monkeypatch):
    extractor = arcface[0]
    assert re.fullmatch(rf"facenet-pytorch-{re.escape(version('facenet-pytorch'))}-mtcnn\+"
                        r"w600k_r50\.onnx@sha256:[0-9a-f]{12}", extractor.weights_identity)
    assert extractor.outputs["crop"].shape == (112, 112, 3)
    with pytest.raises(ValueError, match=r"face_size=160, margin=0: ArcFace aligns"):
        FaceExtractor(fps=5.0, face_size=160, weights_path=extractor.embedder.path)
    monkeypatch.setenv("VLPIPE_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"w600k_r50.onnx.*buffalo_l.zip.*embedder: "
                       r"facenet.*vlpipe weights fetch arcface"):
        FaceExtractor(fps=5.0, allow_random_init=True)
