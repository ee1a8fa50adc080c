"""Person tracks from the extractors, as CiSIN builds them on real data (thesis §6.3.2): the
persons store's ByteTrack tracks (YOLO-pose boxes and keypoints per step), each labelled with
the character of the annotated track (``dataset.characters.tracks``: M-VAD Names' face tracks)
that lies inside it best, and the faces store's faces (MTCNN boxes and embeddings), each given
to the track it lies inside best.

"Inside" is the fraction of the smaller box (a face, an annotated track's box) covered by the
person's box. The thesis gives a face to "the track of highest IoU", but a face's IoU with its
own person's box is small by construction (a face is a few per cent of a body), so the covered
fraction decides, at least `MIN_INSIDE`, and IoU breaks ties (a face inside two overlapping
persons goes to the box it fills most). Boxes are matched in time: a track's box nearest a
face's (or an annotated box's) time, within half the spacing of the coarser of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

MIN_INSIDE = 0.5  # at least half of a face (or an annotated box) inside the person's box
KEYPOINTS = 17  # COCO person keypoints (the persons extractor's pose models)


@dataclass(frozen=True)
class Track:
    """One person track of a clip: ``boxes (n, 4)`` x1 y1 x2 y2 as fractions of the frame at
    ``times (n,)`` (s); ``keypoints (n, 17, 3)`` x, y, confidence (all zero below the persons
    extractor's threshold) where the track is detected; ``faces (F, D)`` the embeddings of the
    faces given to it; ``character`` "" where unknown."""

    character: str
    times: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray | None = None
    faces: np.ndarray | None = None


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def _intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4), (B, 4) → (A, B) intersection areas."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return (high - low).clip(0).prod(axis=-1)


def inside_fraction(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """(A, 4), (B, 4) → (A, B): the fraction of each ``inner`` box covered by each ``outer``."""
    return _intersections(inner, outer) / np.maximum(_areas(inner)[:, None], 1e-12)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4), (B, 4) → (A, B) intersection over union."""
    overlap = _intersections(a, b)
    return overlap / np.maximum(_areas(a)[:, None] + _areas(b)[None] - overlap, 1e-12)


def spacing(times: np.ndarray) -> float:
    """The median interval of ascending ``times`` (0 for fewer than two)."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def detected_tracks(persons: dict[str, np.ndarray], step_times: np.ndarray) -> list[Track]:
    """One clip's persons-store instances (``step``, ``track_id``, ``box``, ``keypoints``; the
    store's step times ``step_times``) → its tracks in id order, characters unknown."""
    tracks = []
    for track_id in np.unique(persons["track_id"]):
        rows = np.flatnonzero(persons["track_id"] == track_id)
        rows = rows[np.argsort(persons["step"][rows], kind="stable")]
        tracks.append(Track("", step_times[persons["step"][rows]].astype(np.float64),
                            persons["box"][rows].astype(np.float32),
                            persons["keypoints"][rows].astype(np.float32)))
    return tracks


def _boxes_at(tracks: list[Track], time: float, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """The tracks with a box within ``tolerance`` of ``time`` (K,) and those boxes (K, 4)."""
    present, boxes = [], []
    for k, track in enumerate(tracks):
        nearest = int(np.abs(track.times - time).argmin())
        if abs(track.times[nearest] - time) <= tolerance + 1e-6:
            present.append(k)
            boxes.append(track.boxes[nearest])
    return np.array(present, np.int64), np.array(boxes, np.float32).reshape(-1, 4)


def _tolerance(times: np.ndarray, tracks: list[Track]) -> float:
    """Half the spacing of the coarser of two time grids."""
    return max([spacing(times), *(spacing(t.times) for t in tracks)]) / 2


def label_tracks(detected: list[Track], annotated: list[Track],
                 min_inside: float = MIN_INSIDE) -> list[Track]:
    """Each detected track with the character of the annotated track that lies inside it best:
    the mean, over the annotated track's boxes, of their fraction inside the detected track's
    box at that time (0 where it has none), at least ``min_inside`` (the mean IoU breaks ties);
    a detected track claimed by several annotated tracks keeps the best of them."""
    best: dict[int, tuple[float, float, str]] = {}
    for reference in annotated:
        if not reference.character or not detected:
            continue
        inside, overlap = np.zeros(len(detected)), np.zeros(len(detected))
        tolerance = _tolerance(reference.times, detected)
        for time, box in zip(reference.times, reference.boxes, strict=True):
            present, boxes = _boxes_at(detected, time, tolerance)
            if len(present):
                inside[present] += inside_fraction(box[None], boxes)[0]
                overlap[present] += iou(box[None], boxes)[0]
        inside, overlap = inside / len(reference.times), overlap / len(reference.times)
        k = int(np.lexsort((-overlap, -inside))[0])  # most inside, then highest IoU
        score = (float(inside[k]), float(overlap[k]), reference.character)
        if score[0] >= min_inside and score > best.get(k, (0.0, 0.0, "")):
            best[k] = score
    return [replace(track, character=best[k][2]) if k in best else track
            for k, track in enumerate(detected)]


def assign_faces(tracks: list[Track], faces: dict[str, np.ndarray], step_times: np.ndarray,
                 min_inside: float = MIN_INSIDE) -> list[Track]:
    """Each face of the faces store's instances (``step``, ``box``, ``embedding``; the store's
    step times ``step_times``) given to the track whose box at the face's time covers it most
    (at least ``min_inside``; IoU breaks ties): the tracks with their ``faces``."""
    given: list[list[np.ndarray]] = [[] for _ in tracks]
    tolerance = _tolerance(step_times, tracks)
    for step, box, embedding in zip(faces["step"], faces["box"], faces["embedding"],
                                    strict=True):
        present, boxes = _boxes_at(tracks, float(step_times[step]), tolerance)
        if not len(present):
            continue
        inside, overlap = inside_fraction(box[None], boxes)[0], iou(box[None], boxes)[0]
        best = np.lexsort((-overlap, -inside))[0]  # most inside, then highest IoU
        if inside[best] >= min_inside:
            given[present[best]].append(np.asarray(embedding, np.float32))
    width = faces["embedding"].shape[-1]
    return [replace(track, faces=np.stack(rows) if rows else np.zeros((0, width), np.float32))
            for track, rows in zip(tracks, given, strict=True)]
