"""CiSIN's person streams on real data (thesis §6.3.2): tracks from the persons store labelled
by the annotated tracks, faces given to the track they lie in, the face and body-part features,
V's face and body-part terms, and CiSIN re-identifying by faces through the task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlpipe.features.person_tracks import (
    KEYPOINTS,
    Track,
    assign_faces,
    detected_tracks,
    inside_fraction,
    iou,
    label_tracks,
)
from vlpipe.features.tracks import body_parts, face_feature, track_features
from vlpipe.planning import InputRef

from .conftest import CAST
from .helpers import train_task
from .test_characters import ColourGrids

FACE_DIM = 16


def test_inside_fraction_and_iou_by_hand() -> None:
    face = np.array([[0.4, 0.1, 0.6, 0.3]])  # 0.2 × 0.2
    persons = np.array([[0.3, 0.0, 0.7, 1.0], [0.5, 0.0, 1.0, 1.0]])
    assert inside_fraction(face, persons)[0] == pytest.approx([1.0, 0.5])
    assert iou(face, persons)[0] == pytest.approx([0.04 / 0.4, 0.02 / (0.04 + 0.5 - 0.02)])


def test_detected_tracks_group_the_stores_rows_by_track_in_time_order() -> None:
    persons = {"step": np.array([1, 0, 0, 2]), "track_id": np.array([0, 1, 0, 0]),
               "box": np.arange(16, dtype=np.float32).reshape(4, 4) / 16,
               "keypoints": np.zeros((4, KEYPOINTS, 3), np.float32)}
    tracks = detected_tracks(persons, np.array([0.0, 0.2, 0.4]))
    assert [t.times.tolist() for t in tracks] == [[0.0, 0.2, 0.4], [0.0]]
    np.testing.assert_array_equal(tracks[0].boxes, persons["box"][[2, 0, 3]])
    assert all(t.character == "" and t.keypoints.shape == (len(t.times), KEYPOINTS, 3)
               for t in tracks)


def _track(box, times=(0.0, 0.2, 0.4), character: str = "") -> Track:
    return Track(character, np.array(times), np.tile(np.array(box, np.float32), (len(times), 1)))


def test_label_tracks_take_the_character_of_the_annotated_track_inside() -> None:
    left, right = _track([0.0, 0.0, 0.5, 1.0]), _track([0.5, 0.0, 1.0, 1.0])
    stranger = _track([0.0, 0.0, 0.1, 0.1], times=(2.0,))  # nobody annotated there
    annotated = [_track([0.6, 0.1, 0.8, 0.3], character="Ann"),  # a face inside ``right``
                 _track([0.4, 0.1, 0.6, 0.3], times=(0.0,), character="Bob"),  # half in each
                 _track([0.1, 0.1, 0.3, 0.3], character="Cid"),  # in ``left`` throughout
                 _track([0.45, 0.1, 0.65, 0.3], character="Dee")]  # 3/4 in ``right``: Ann wins
    labelled = label_tracks([left, right, stranger], annotated)
    assert [t.character for t in labelled] == ["Cid", "Ann", ""]
    np.testing.assert_array_equal(labelled[0].boxes, left.boxes)


def test_each_face_goes_to_the_track_it_lies_in_best() -> None:
    tracks = [_track([0.0, 0.0, 0.6, 1.0]), _track([0.3, 0.0, 0.7, 1.0])]
    faces = {"step": np.array([0, 1, 1, 2, 5]),
             "box": np.array([[0.05, 0.1, 0.25, 0.3],  # only in the first
                              [0.35, 0.1, 0.55, 0.3],  # in both: the second fits it better
                              [0.8, 0.1, 0.9, 0.2],  # in neither
                              [0.5, 0.1, 0.7, 0.3],  # half in the first, whole in the second
                              [0.1, 0.1, 0.2, 0.2]], np.float32),  # at 1.0 s: no track there
             "embedding": np.eye(5, FACE_DIM, dtype=np.float32)}
    given = assign_faces(tracks, faces, np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]))
    np.testing.assert_array_equal(given[0].faces, faces["embedding"][[0]])
    np.testing.assert_array_equal(given[1].faces, faces["embedding"][[1, 3]])


def test_face_and_body_part_features_by_hand() -> None:
    face, has = face_feature(np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    assert has and face == pytest.approx(np.array([4.0, 2.0]) / np.hypot(4.0, 2.0))
    assert face_feature(np.zeros((0, 2)))[1] is False
    grid = np.arange(2 * 2 * 1, dtype=np.float32).reshape(2, 2, 1)  # cells 0 1 / 2 3
    keypoints = np.zeros((KEYPOINTS, 3), np.float32)
    keypoints[0] = [0.9, 0.1, 0.8]  # top right
    keypoints[1] = [0.2, 1.0, 0.5]  # bottom left (on the edge)
    keypoints[2] = [0.9, 0.9, 0.0]  # not kept
    parts, seen = body_parts(grid, keypoints)
    assert seen[:3].tolist() == [True, True, False] and not seen[3:].any()
    assert parts[:3, 0].tolist() == [1.0, 2.0, 0.0]
    track = Track("", np.array([0.0]), np.array([[0.0, 0.0, 1.0, 1.0]], np.float32),
                  keypoints[None], np.ones((2, 4), np.float32))
    found = track_features(grid[None], grid[None], np.array([0.0]), track, 1.0)
    assert found.has_face and found.face == pytest.approx([0.5] * 4)
    np.testing.assert_array_equal(found.parts, parts)


def test_face_and_part_terms_are_cosines_over_what_both_tracks_show() -> None:
    from vlpipe.models.cisin.model import cosines, part_cosines

    faces = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    found = cosines(faces, torch.tensor([[True, True, False]]))
    assert found[0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    parts = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    seen = torch.tensor([[[True, True], [True, False]]])
    found = part_cosines(parts, seen)  # track 1 shows keypoint 0 only: orthogonal to track 0's
    assert found[0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    seen = torch.tensor([[[False, True], [True, False]]])  # no keypoint in common
    assert part_cosines(parts, seen)[0, 0, 1].item() == 0.0


def grown(box: np.ndarray) -> np.ndarray:
    """The box 5 % wider and taller on each side, inside the frame."""
    width, height = box[2] - box[0], box[3] - box[1]
    return np.clip(box + np.array([-width, -height, width, height]) / 20, 0, 1)


def face_box(box: np.ndarray) -> np.ndarray:
    """The middle half of the box's top third."""
    width, height = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + width / 4, box[1], box[2] - width / 4, box[1] + height / 3])


# --- through the task -------------------------------------------------------------------------

class PersonStreams(ColourGrids):
    """The colour grids with a persons and a faces store's instances made from the world's
    tracks, as the extractors would find them: each character's box grown by a tenth with a
    second box of nobody in the corner of every clip, and a face in the top of each box whose
    embedding is its character's vector and noise."""

    def __init__(self, config, task_list) -> None:
        super().__init__(config)
        self.inputs = [InputRef("grid", "grid"), InputRef("persons", "persons"),
                       InputRef("faces", "faces")]
        rng = np.random.default_rng(0)
        tracks = {c: t for ids, clips in zip(task_list["clip_ids"], task_list["tracks"],
                                             strict=True) for c, t in zip(ids, clips, strict=True)}
        names = sorted({t["character"] for clip in tracks.values() for t in clip})
        identity = dict(zip(names, rng.normal(size=(len(names), FACE_DIM)), strict=True))
        self.instances: dict[tuple[str, str], dict] = {}
        for clip_id, clip in tracks.items():
            times = self.timeline(clip_id)
            persons = {"step": [], "track_id": [], "box": [], "keypoints": []}
            faces = {"step": [], "box": [], "embedding": []}
            for k, track in enumerate([*clip, None]):  # None: the stranger
                for step, time in enumerate(times):
                    if track is None:
                        box = np.array([0.0, 0.0, 0.15, 0.15])
                    else:
                        box = grown(np.reshape(track["boxes"], (-1, 4))[
                            np.abs(np.asarray(track["times"]) - time).argmin()])
                        faces["step"].append(step)
                        faces["box"].append(face_box(box))
                        faces["embedding"].append(identity[track["character"]]
                                                  + 0.3 * rng.normal(size=FACE_DIM))
                    keypoints = np.zeros((KEYPOINTS, 3))
                    keypoints[::2] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0.9]
                    persons["step"].append(step)
                    persons["track_id"].append(len(clip) - k)  # ids unlike the annotation's
                    persons["box"].append(box)
                    persons["keypoints"].append(keypoints)
            for extractor, rows in (("persons", persons), ("faces", faces)):
                self.instances[(extractor, clip_id)] = {
                    name: np.array(values, np.int64 if name in ("step", "track_id")
                                   else np.float32) for name, values in rows.items()}

    def shape(self, name: str) -> tuple[int, ...]:
        return () if name in ("persons", "faces") else super().shape(name)

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        counts = np.ones(len(self.grids[clip_id]))  # the stores' step arrays (unread)
        return {**super().read(clip_id), "persons": counts, "faces": counts}

    def step_times(self, extractor: str, clip_id: str) -> np.ndarray:
        return self.timeline(clip_id)

    def instance_shape(self, extractor: str, name: str) -> tuple[int, ...]:
        return self.instances[(extractor, "video0")][name].shape[1:]

    def read_instances(self, extractor: str, clip_id: str, names) -> dict[str, np.ndarray]:
        return {name: self.instances[(extractor, clip_id)][name] for name in names}


@pytest.fixture(scope="module")
def streams_task(cast_clips, task_list):
    from vlpipe.tasks.characters import FillInCharactersTask

    return FillInCharactersTask(cast_clips, PersonStreams(CAST, task_list), task_list=task_list,
                                batch_size=6)


def test_the_task_reads_the_stores_tracks_labelled_and_with_their_faces(streams_task,
                                                                        task_list) -> None:
    item = streams_task.sets["train"][0]
    annotated = [t["character"] for clip in task_list["tracks"][0] for t in clip]
    # per clip the tracker's order (the stranger first), each known character found again
    assert sorted(c for c in item.track_character if c) == sorted(annotated)
    assert item.track_character.count("") == len(item.clip_ids)
    strangers = np.array([c == "" for c in item.track_character])
    assert item.has_face[~strangers].all() and item.has_face[strangers].mean() < 0.5
    assert item.face.shape == (len(strangers), FACE_DIM)
    assert item.parts.shape[1] == KEYPOINTS and item.part_seen[:, ::2].all()
    assert not item.part_seen[:, 1::2].any()
    info = streams_task.report_info()
    assert info["tracks"] == "the persons store's, labelled by the annotated tracks"
    assert info["faces"] == "the faces store's"
    assert {f.name for f in streams_task.model_inputs().video} >= {"face", "parts"}


def test_cisin_reidentifies_tracks_by_their_faces(streams_task) -> None:
    from vlpipe.models import build_model

    torch.manual_seed(0)
    model = build_model("cisin", {"hidden": 32, "video_terms": ["face"]},
                        streams_task.model_inputs())
    assert set(model.reid) == {"face"}
    train_task(streams_task, model, epochs=20, lr=3e-3)
    found = streams_task.evaluate(model, "test", torch.device("cpu"))
    majority = streams_task.report_info()["all_different"]["video_reid"]
    assert found["video_reid"]["accuracy"] > max(majority + 15, 90), (found, majority)


def test_a_video_term_without_its_input_is_an_error_naming_the_input(cast_clips,
                                                                      task_list) -> None:
    from vlpipe.models import build_model
    from vlpipe.tasks.characters import FillInCharactersTask

    task = FillInCharactersTask(cast_clips, ColourGrids(CAST), task_list=task_list)
    with pytest.raises(ValueError, match=r"video_terms \['face'\] .* name a faces input"):
        build_model("cisin", {"hidden": 8, "video_terms": ["face", "bbox"]}, task.model_inputs())
