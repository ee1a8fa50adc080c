"""Person tracks: ByteTrack linking (with a colour-threshold test double for the detector), the
real YOLO-pose end to end offline (random init) and the state-dict weights round trip."""

import socket

import av
import numpy as np
import pytest
import torch

from vlpipe.decode import DecodedMedia, decode_media
from vlpipe.extractors.base import Units
from vlpipe.extractors.persons import (
    KEYPOINTS,
    PAD_GREY,
    Detections,
    PersonTracks,
    build_pose_model,
    letterbox,
    unletterbox_boxes,
)
from vlpipe.extractors.weights import MissingWeightsError, file_digest
from vlpipe.features.store import ClipFeatures, FeatureStore, StoreWriter

SIZE, STEPS = 96, 20
RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 30)
SPRITE_W, SPRITE_H = 12, 24
KEYPOINT_CONF = np.where(np.arange(KEYPOINTS) % 2 == 0, 0.9, 0.2)  # odd ones fall below 0.3


def _sprite_boxes(step: int) -> dict[tuple, tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1), x1/y1 exclusive, of what frame ``step`` shows: red moves
    right from the start, blue appears halfway and moves left, green flashes in one frame."""
    boxes = {RED: (4 + 3 * step, 20)}
    if step >= STEPS // 2:
        boxes[BLUE] = (80 - 2 * (step - STEPS // 2), 60)
    if step == 5:
        boxes[GREEN] = (40, 66)
    return {c: (x, y, x + SPRITE_W, y + SPRITE_H) for c, (x, y) in boxes.items()}


def _video() -> np.ndarray:
    frames = np.full((STEPS, SIZE, SIZE, 3), 128, np.uint8)
    for step, frame in enumerate(frames):
        for colour, (x0, y0, x1, y1) in _sprite_boxes(step).items():
            frame[y0:y1, x0:x1] = colour
    return frames


class ColourDetector(PersonTracks):
    """Finds each sprite colour's pixels: score 0.9, every keypoint at the box centre."""

    def detect(self, frames: torch.Tensor) -> list[Detections]:
        result = []
        for frame in frames.numpy():
            boxes = []
            for colour in (RED, BLUE, GREEN):
                ys, xs = np.nonzero((frame == colour).all(axis=-1))
                if len(xs):
                    boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            boxes = np.array(boxes, np.float32).reshape(-1, 4)
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            keypoints = np.concatenate([np.repeat(centres[:, None], KEYPOINTS, axis=1),
                                        np.broadcast_to(KEYPOINT_CONF[None, :, None],
                                                        (len(boxes), KEYPOINTS, 1))], axis=-1)
            result.append(Detections(boxes, np.full(len(boxes), 0.9, np.float32), keypoints))
        return result


@pytest.fixture(scope="module")
def tracked():
    torch.set_num_threads(1)
    extractor = ColourDetector(fps=5, image_size=SIZE, allow_random_init=True)
    times = np.arange(STEPS) / 5
    units = extractor.prepare(DecodedMedia(frames={extractor.needs: (_video(), times)}))
    return extractor, units, extractor.finish(units, extractor.forward(units.inputs))


def test_one_track_per_sprite_and_blips_dropped(tracked):
    extractor, _, arrays = tracked
    late = STEPS // 2
    assert {k: (v.dtype.name, v.shape[1:]) for k, v in arrays.items()} == {
        k: (np.dtype(spec.dtype).name, spec.shape) for k, spec in extractor.outputs.items()}
    # red: one track over all 20 steps; blue: another one, its first frame included (ByteTrack
    # confirms it one frame later); the one-frame green blip is no track
    np.testing.assert_array_equal(arrays["step"], np.r_[np.arange(late),
                                                         np.repeat(np.arange(late, STEPS), 2)])
    red = np.r_[np.arange(late), late + 2 * np.arange(late)]
    blue = red[late:] + 1
    np.testing.assert_array_equal(arrays["track_id"][red], 0)
    np.testing.assert_array_equal(arrays["track_id"][blue], 1)
    np.testing.assert_array_equal(arrays["count"], np.r_[np.ones(late), np.full(late, 2)])
    expected_red = np.array([_sprite_boxes(s)[RED] for s in range(STEPS)]) / SIZE
    expected_blue = np.array([_sprite_boxes(s)[BLUE] for s in range(late, STEPS)]) / SIZE
    np.testing.assert_allclose(arrays["box"][red], expected_red, atol=1e-6)
    np.testing.assert_allclose(arrays["box"][blue], expected_blue, atol=1e-6)
    np.testing.assert_allclose(arrays["score"], 0.9, atol=1e-6)


def test_keypoints_normalised_and_low_confidence_zeroed(tracked):
    _, _, arrays = tracked
    keypoints, box = arrays["keypoints"][0], arrays["box"][0]  # red at step 0
    centre = (box[:2] + box[2:]) / 2  # (10 / 96, 32 / 96)
    np.testing.assert_allclose(centre, [10 / SIZE, 32 / SIZE], atol=1e-6)
    np.testing.assert_allclose(keypoints[::2], np.tile([*centre, 0.9], (9, 1)), atol=1e-6)
    np.testing.assert_array_equal(keypoints[1::2], 0.0)


def test_each_clip_gets_a_fresh_tracker(tracked):
    extractor, units, arrays = tracked
    again = extractor.finish(units, extractor.forward(units.inputs))
    for name, value in arrays.items():
        np.testing.assert_array_equal(again[name], value)


def test_clip_without_detections(tracked):
    extractor, _, _ = tracked
    frames = torch.full((3, SIZE, SIZE, 3), 128, dtype=torch.uint8)
    arrays = extractor.finish(Units(frames, np.arange(3) / 5), extractor.forward(frames))
    np.testing.assert_array_equal(arrays["count"], [0, 0, 0])
    assert arrays["box"].shape == (0, 4) and arrays["keypoints"].shape == (0, KEYPOINTS, 3)
    empty = extractor.finish(Units(frames[:0], np.zeros(0)), {})
    assert empty["count"].shape == (0,) and empty["step"].shape == (0,)


class BrightDetector(PersonTracks):
    """Finds the bright pixels of each frame (one box, score 0.9, keypoints at its centre) and
    keeps the pixel boxes it found in the network's input."""

    seen: list

    def detect(self, frames: torch.Tensor) -> list[Detections]:
        result = []
        for frame in frames.numpy():
            ys, xs = np.nonzero(frame.mean(axis=-1) > 150)
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
            self.seen.append(box[0])
            centre = (box[:, :2] + box[:, 2:]) / 2
            keypoints = np.concatenate([np.repeat(centre[:, None], KEYPOINTS, axis=1),
                                        np.full((1, KEYPOINTS, 1), 0.9)], axis=-1)
            result.append(Detections(box, np.full(1, 0.9, np.float32), keypoints))
        return result


def test_non_square_frames_are_letterboxed_and_boxes_map_back(tmp_path):
    """A 128×64 video with a bright 16×16 square at x 80-96, y 24-40: the network sees the
    frame letterboxed (aspect kept, grey bars above and below), the square still square; the
    stored box is the square's place in the frame, normalised to its width and height."""
    path = tmp_path / "wide.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
        stream.options = {"qp": "0"}
        image = np.full((64, 128, 3), 40, np.uint8)
        image[24:40, 80:96] = 230
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    extractor = BrightDetector(fps=5, image_size=64, allow_random_init=True)
    extractor.seen = []
    units = extractor.prepare(decode_media(str(path), [extractor.needs]))
    inputs = units.inputs.numpy()
    assert inputs.shape == (5, 64, 64, 3)
    assert units.context["content"] == (16, 0, 32, 64)  # 128×64 → 64×32, 16 px bars
    assert (inputs[:, :16] == PAD_GREY).all() and (inputs[:, 48:] == PAD_GREY).all()
    arrays = extractor.finish(units, extractor.forward(units.inputs))
    # in the input: x 40-48, y 16 + 12 to 16 + 20 (a square, not squashed to 8×16)
    np.testing.assert_allclose(extractor.seen, np.tile([40, 28, 48, 36], (5, 1)), atol=1)
    np.testing.assert_allclose(arrays["box"], np.tile([80 / 128, 24 / 64, 96 / 128, 40 / 64],
                                                      (5, 1)), atol=1.5 / 64)
    np.testing.assert_allclose(arrays["keypoints"][:, :, :2],
                               np.tile([88 / 128, 32 / 64], (5, KEYPOINTS, 1)), atol=1.5 / 64)


@pytest.mark.parametrize(("height", "width"), [(37, 100), (64, 23), (50, 50)])
def test_letterbox_matches_ultralytics(height, width):
    """Padding and the mapping back agree with ultralytics' LetterBox(auto=False) and
    scale_boxes, odd paddings included."""
    import cv2
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes

    size = 64
    image = np.random.default_rng(0).integers(0, 114, (height, width, 3), dtype=np.uint8)
    theirs = LetterBox(new_shape=(size, size), auto=False)(image=image)
    scale = size / max(height, width)
    fitted = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                        interpolation=cv2.INTER_LINEAR)
    ours, content = letterbox(fitted[None], size)
    np.testing.assert_array_equal(ours[0], theirs)
    pixels = np.array([[5.0, 20.0, 41.5, 44.0], [0.0, 0.0, 64.0, 64.0]], np.float32)
    expected = scale_boxes((size, size), pixels.copy(), (height, width)) / np.tile([width,
                                                                                    height], 2)
    np.testing.assert_allclose(unletterbox_boxes(pixels / size, content, (size, size)),
                               expected, atol=1e-5)


def test_unknown_tracker_setting_is_an_error():
    for wrong in ("track_bufer", "tracker_type"):
        with pytest.raises(KeyError, match=wrong):
            PersonTracks(image_size=32, allow_random_init=True, tracker={wrong: 10})


@pytest.fixture
def no_network(monkeypatch):
    """Any connection or name lookup fails the test."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []


def test_yolo_pose_end_to_end_offline(tiny_world, tmp_path, no_network):
    from ultralytics import utils

    assert not utils.ONLINE  # imported with YOLO_OFFLINE: no DNS probe, no downloads
    torch.set_num_threads(1)
    # min_score 0 keeps the random network's (meaningless) boxes so the shapes are exercised;
    # the tracker thresholds drop to 0 so some become instances
    extractor = PersonTracks(fps=5, image_size=64, min_score=0.0, allow_random_init=True,
                             tracker={"track_high_thresh": 0.0, "track_low_thresh": 0.0,
                                      "new_track_thresh": 0.0})
    assert extractor.weights_identity == "random-seed-0"
    media = decode_media(tiny_world / "videos" / "video0.mp4", [extractor.needs])
    units = extractor.prepare(media)
    assert units.inputs.shape == (10, 64, 64, 3)
    outputs = extractor.forward(units.inputs)
    assert [len(outputs[k]) for k in ("boxes", "scores", "keypoints")] == [10, 10, 10]
    for boxes, scores, keypoints in zip(*outputs.values(), strict=True):
        n = len(boxes)
        assert 0 < n <= 300 and scores.shape == (n,) and keypoints.shape == (n, KEYPOINTS, 3)
        assert boxes.dtype == scores.dtype == keypoints.dtype == np.float32
        assert (boxes >= 0).all() and (boxes <= 1).all() and (keypoints[..., :2] <= 1).all()
        assert (np.diff(scores) <= 0).all()  # NMS order
    arrays = extractor.finish(units, outputs)
    specs = {k: (s.shape, s.dtype, s.axis) for k, s in extractor.outputs.items()}
    with StoreWriter(tmp_path / "persons.zarr", specs, {"provenance": extractor.provenance()}) \
            as writer:
        writer.add(ClipFeatures("video0", "id", units.times, arrays))
    store = FeatureStore(tmp_path / "persons.zarr")
    count, times = store["video0"]
    assert count.dtype == np.int16 and count.shape == times.shape == (10,)
    assert count[0] > 0  # ByteTrack confirms every first-frame detection at once
    assert count.sum() == len(store.read("video0", "box")) == len(arrays["step"])


def test_state_dict_weights_round_trip(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path / "yolo11n-pose.state_dict.pt"
    torch.save(build_pose_model("yolo11n-pose").state_dict(), path)
    settings = {"image_size": 64, "min_score": 0.0}
    random = PersonTracks(allow_random_init=True, seed=0, **settings)
    loaded = PersonTracks(weights_path=str(path), **settings)
    other = PersonTracks(allow_random_init=True, seed=1, **settings)
    assert loaded.weights_identity == f"{path.name}@sha256:{file_digest(path)}"
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3),
                                                                dtype=np.uint8))
    expected, got = random.forward(frames), loaded.forward(frames)
    for name in expected:
        for a, b in zip(expected[name], got[name], strict=True):
            assert len(a) > 0
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(other.forward(frames)["keypoints"][0], expected["keypoints"][0])
    # no file anywhere: an error that says how to make one
    monkeypatch.setenv("VLPIPE_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError, match=r"state_dict\(\)"):
        PersonTracks(image_size=64)
