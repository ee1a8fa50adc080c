"""Person boxes and 17 COCO pose keypoints per frame (ultralytics YOLO-pose), linked into tracks
with ultralytics' ByteTrack (CiSIN's person stream: the largest box of a track is its
representative image; keypoints count where their confidence is above 0.3).

The model is built offline from its ultralytics YAML and loaded from a state-dict file (see
``weights_how_to_get``); nothing is downloaded. Detection is ``detect`` (replaceable, e.g. by a
test double); ``finish`` runs one fresh ByteTrack per clip over the frames in time order.

Frames are letterboxed as ultralytics does for a fixed input shape (``LetterBox(auto=False)``):
resized with their aspect ratio kept, the longer side to ``image_size``, and padded to a square
with grey 114, centred; boxes and keypoints are mapped back to the frame (normalised to [0, 1]
of its width and height) as ultralytics' ``scale_boxes`` does. A square is one input shape for
batches that mix clips of any aspect ratio.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# ultralytics reads these on import: a writable settings folder outside $HOME, and no online
# checks (it otherwise probes DNS). Set before the first import of ultralytics; user values win.
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "vlpipe-ultralytics"))
os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from ultralytics.engine.results import Boxes
from ultralytics.nn.tasks import PoseModel, yaml_model_load
from ultralytics.trackers import BYTETracker
from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace, nms

from vlpipe.decode import FIT, DecodedMedia, FrameSpec
from vlpipe.extractors.base import ArraySpec, Extractor, Outputs, Units
from vlpipe.extractors.weights import resolve_weights, state_dict_command
from vlpipe.features.person_tracks import KEYPOINTS

PERSON = 0  # the pose models' one class
NMS_IOU, MAX_DETECTIONS = 0.7, 300  # ultralytics' predict defaults
PAD_GREY = 114  # ultralytics' letterbox grey
PAD_VALUE = PAD_GREY / 255
BYTETRACK_YAML = ROOT / "cfg" / "trackers" / "bytetrack.yaml"


def weights_how_to_get(model: str) -> str:
    """The one-off conversion of ultralytics' pickled checkpoint into a state dict."""
    return (f"On a machine with internet run: "
            f"{state_dict_command(f'{model}.pt', f'{model}.state_dict.pt')} and put the file "
            f"into $VLPIPE_WEIGHTS (or set weights_path).")


def build_pose_model(model: str) -> PoseModel:
    """The (unfused, randomly initialised) ultralytics pose model ``model`` (e.g. "yolo11n-pose")
    with one class, person, as ultralytics' COCO-pose checkpoints have."""
    config = yaml_model_load(f"{model}.yaml")
    config["nc"] = 1
    return PoseModel(config, verbose=False)


@dataclass
class Detections:
    """One frame's persons: ``boxes (n, 4)`` xyxy, ``scores (n,)``, ``keypoints (n, 17, 3)``
    (x, y, confidence); coordinates in pixels of the network input (the letterboxed frame)."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray


class PersonTracks(Extractor):
    """Frames → per-frame person detections with pose → tracks within each clip.

    Instances are the detections that ByteTrack links into a confirmed track (boxes as
    detected, not Kalman-smoothed). ByteTrack confirms a track started after the clip's first
    frame only when the next frame matches it; that first detection is kept, with the track's
    id. Detections never part of a confirmed track (one-frame blips, low-score boxes that extend
    no track) are dropped: they are what the tracker itself treats as noise.
    """

    name = "persons"
    version = "2"  # 2: letterboxed frames (1 squashed them)

    def __init__(self, model: str = "yolo11n-pose", fps: float = 5.0, image_size: int = 640,
                 crop: bool = False, min_score: float = 0.25, min_keypoint_score: float = 0.3,
                 tracker: dict | None = None, weights_path: str | None = None,
                 allow_random_init: bool = False, seed: int = 0,
                 precision: str = "auto") -> None:
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
        self.model, self.precision = model, precision
        self.min_score, self.min_keypoint_score = min_score, min_keypoint_score
        # crop=False letterboxes the whole frame (persons at the sides stay in view, undistorted);
        # crop=True takes the centre square. Coordinates are normalised to what was kept.
        self.needs = FrameSpec(fps, image_size, True if crop else FIT)
        resolved = resolve_weights(f"{model}.state_dict.pt", path=weights_path,
                                   allow_random_init=allow_random_init, seed=seed,
                                   how_to_get=weights_how_to_get(model))
        torch.manual_seed(seed)
        net = build_pose_model(model)
        if resolved.pretrained:
            net.load_state_dict(resolved.state_dict)
        # YOLO26 heads are NMS-free (one-to-one branch); YOLO11 heads need NMS.
        net.end2end = bool(net.yaml.get("end2end", False))
        self.net = net.fuse(verbose=False).eval().requires_grad_(False)
        self.stride = int(net.stride.max())
        self.weights_identity = resolved.identity
        settings = YAML.load(BYTETRACK_YAML)
        del settings["tracker_type"]  # always ByteTrack
        unknown = set(tracker or {}) - set(settings)
        if unknown:
            raise KeyError(f"unknown tracker settings {sorted(unknown)}; known: {sorted(settings)}")
        self.tracker_settings = {**settings, **(tracker or {})}
        self.outputs = {
            "step": ArraySpec((), "int32", "instance"),
            "track_id": ArraySpec((), "int32", "instance"),
            "box": ArraySpec((4,), "float32", "instance"),
            "score": ArraySpec((), "float32", "instance"),
            "keypoints": ArraySpec((KEYPOINTS, 3), "float32", "instance"),
            "count": ArraySpec((), "int16", "step"),
        }
        # The primary array is read as one row per step (FeatureStore[clip] pairs it with the
        # step times), so it must be a step array: the number of tracked persons in view.
        self.primary = "count"

    def autocast(self) -> contextlib.AbstractContextManager:
        """fp16 on CUDA for "auto", as ultralytics runs YOLO: bf16's 8-bit mantissa rounds pixel
        coordinates at 640 px to steps of 4 px (on an H100, keypoints differed from fp32 by
        0.30 px on average in bf16, 0.035 px in fp16)."""
        cuda_auto = self.precision == "auto" and self.device.type == "cuda"
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype,
                              enabled=cuda_auto or self.precision in ("bf16", "fp16"))

    def prepare(self, media: DecodedMedia) -> Units:
        """The clip's frames letterboxed: ``(T, size, size, 3)`` uint8, the frame at
        ``context["content"]`` = (top, left, height, width) pixels, the rest grey 114."""
        frames, times = media.frames[self.needs]
        padded, content = letterbox(frames, self.needs.size)
        return Units(torch.from_numpy(padded), times, {"content": content})

    @torch.inference_mode()
    def detect(self, frames: torch.Tensor) -> list[Detections]:
        """``frames (N, H, W, 3) uint8`` RGB → each frame's persons with score ≥ ``min_score``."""
        height, width = frames.shape[1:3]
        # (N, H, W, 3) uint8 → (N, 3, H', W') in [0, 1], padded right/bottom to the stride
        x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        x = F.pad(x, (0, -width % self.stride, 0, -height % self.stride), value=PAD_VALUE)
        with self.autocast():
            predictions = self.net(x)
        predictions = predictions[0] if isinstance(predictions, tuple | list) else predictions
        kept = nms.non_max_suppression(
            predictions.float(), self.min_score, NMS_IOU, classes=[PERSON],
            max_det=MAX_DETECTIONS, nc=self.net.model[-1].nc, end2end=self.net.end2end)
        result = []
        for rows in kept:  # (n, 6 + 17 * 3): x1 y1 x2 y2 score class keypoints
            rows = rows.cpu().numpy()
            boxes = rows[:, :4].copy()
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
            keypoints = rows[:, 6:].reshape(len(rows), KEYPOINTS, 3)
            keypoints[..., 0] = keypoints[..., 0].clip(0, width)
            keypoints[..., 1] = keypoints[..., 1].clip(0, height)
            result.append(Detections(boxes, rows[:, 4].copy(), keypoints))
        return result

    def forward(self, inputs: torch.Tensor) -> Outputs:
        """``inputs (N, H, W, 3) uint8`` → N ragged entries each of ``boxes (n, 4)`` (xyxy in
        [0, 1] of the input, letterbox included; ``finish`` maps them to the frame),
        ``scores (n,)`` and ``keypoints (n, 17, 3)`` (x, y likewise, confidence; keypoints with
        confidence ≤ ``min_keypoint_score`` are all zero)."""
        height, width = inputs.shape[1:3]
        scale = np.array([width, height], dtype=np.float32)
        outputs: Outputs = {"boxes": [], "scores": [], "keypoints": []}
        for found in self.detect(inputs):
            keypoints = found.keypoints.astype(np.float32)
            keypoints[..., :2] /= scale
            keypoints[keypoints[..., 2] <= self.min_keypoint_score] = 0.0
            outputs["boxes"].append(found.boxes.astype(np.float32) / np.tile(scale, 2))
            outputs["scores"].append(found.scores.astype(np.float32))
            outputs["keypoints"].append(keypoints)
        return outputs

    def finish(self, units: Units, outputs: Outputs) -> dict[str, np.ndarray]:
        """Map the clip's detections from the letterboxed input to its frames; link them frame
        by frame with a fresh ByteTrack; keep those in confirmed tracks, track ids renumbered
        0, 1, ... by first appearance."""
        steps = len(units.times)
        size = units.inputs.shape[1:3]
        content = units.context.get("content", (0, 0, *size))
        boxes = [unletterbox_boxes(b, content, size) for b in outputs.get("boxes", [])]
        outputs = {**outputs, "keypoints": [unletterbox_keypoints(k, content, size)
                                            for k in outputs.get("keypoints", [])]}
        tracker = BYTETracker(IterableSimpleNamespace(**self.tracker_settings))
        links, confirmed = [], set()  # links: (step, detection index, tracker id)
        for step, (frame_boxes, frame_scores) in enumerate(
                zip(boxes, outputs.get("scores", []), strict=True)):
            # (n, 6): x1 y1 x2 y2 score class, as ultralytics' Boxes hold them; boxes in [0, 1]
            # suit ByteTrack (IoU and its Kalman noise, set relative to box height, are scale-free)
            rows = np.column_stack([frame_boxes, frame_scores, np.full(len(frame_scores), PERSON)])
            tracker.update(Boxes(rows.reshape(-1, 6), orig_shape=(1, 1)))
            for track in tracker.tracked_stracks:
                if track.frame_id == tracker.frame_id:  # matched a detection of this frame
                    links.append((step, int(track.idx), track.track_id))
                    if track.is_activated:
                        confirmed.add(track.track_id)
        links = sorted(link for link in links if link[2] in confirmed)
        renumber: dict[int, int] = {}
        for _, _, track_id in links:
            renumber.setdefault(track_id, len(renumber))
        step = np.array([s for s, _, _ in links], dtype=np.int32)
        return {
            "step": step,
            "track_id": np.array([renumber[t] for _, _, t in links], dtype=np.int32),
            "box": np.array([boxes[s][i] for s, i, _ in links], np.float32).reshape(-1, 4),
            "score": np.array([outputs["scores"][s][i] for s, i, _ in links], np.float32),
            "keypoints": np.array([outputs["keypoints"][s][i] for s, i, _ in links],
                                  np.float32).reshape(-1, KEYPOINTS, 3),
            "count": np.bincount(step, minlength=steps).astype(np.int16),
        }


def letterbox(frames: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``frames (T, h, w, 3)`` (resized with their aspect ratio kept, max(h, w) ≤ ``size``) →
    ``(T, size, size, 3)`` padded with grey 114, centred as ultralytics' ``LetterBox`` centres
    (the odd pixel at the bottom/right), and where the frames are: (top, left, h, w)."""
    height, width = frames.shape[1:3]
    if (height, width) == (size, size):
        return frames, (0, 0, size, size)
    if max(height, width) > size:
        raise ValueError(f"frames of {height}×{width} do not fit a {size}×{size} letterbox")
    top, left = (size - height) // 2, (size - width) // 2
    padded = np.full((len(frames), size, size, 3), PAD_GREY, np.uint8)
    padded[:, top : top + height, left : left + width] = frames
    return padded, (top, left, height, width)


def unletterbox_boxes(boxes: np.ndarray, content: tuple[int, int, int, int],
                      size: tuple[int, int]) -> np.ndarray:
    """``boxes (n, 4)`` xyxy in [0, 1] of the letterboxed input (``size`` = its (H, W)) → xyxy
    in [0, 1] of the frame at ``content`` = (top, left, h, w) pixels, clipped to it."""
    xy = unletterbox_points(np.asarray(boxes, np.float32).reshape(-1, 2, 2), content, size)
    return xy.reshape(-1, 4)


def unletterbox_keypoints(keypoints: np.ndarray, content: tuple[int, int, int, int],
                          size: tuple[int, int]) -> np.ndarray:
    """``keypoints (n, 17, 3)`` as ``unletterbox_boxes`` maps boxes; zeroed (low-confidence)
    keypoints stay all zero."""
    keypoints = np.array(keypoints, np.float32)
    kept = keypoints[..., 2] > 0
    keypoints[..., :2] = unletterbox_points(keypoints[..., :2], content, size)
    keypoints[~kept] = 0.0
    return keypoints


def unletterbox_points(xy: np.ndarray, content: tuple[int, int, int, int],
                       size: tuple[int, int]) -> np.ndarray:
    """``xy (..., 2)`` in [0, 1] of the (H, W) ``size`` input → in [0, 1] of its ``content``."""
    top, left, height, width = content
    if (top, left, height, width) == (0, 0, *size):
        return xy
    full = np.array([size[1], size[0]], np.float32)
    offset, extent = np.array([left, top], np.float32), np.array([width, height], np.float32)
    return ((xy * full - offset) / extent).clip(0.0, 1.0).astype(np.float32)
