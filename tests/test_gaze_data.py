"""Gaze data: simulated viewers, the gaze adapter's layouts, ground-truth maps and the store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlpipe.datasets import read_dataset
from vlpipe.datasets.base import AnnotationError
from vlpipe.datasets.gaze import GAZE_COLUMNS, check_gaze_settings, gaze_files, read_gaze
from vlpipe.decode import DecodeError, picture_size
from vlpipe.features.store import FeatureStore
from vlpipe.gaze_maps import fixation_grid, gaze_map, write_gaze_store
from vlpipe.synthetic import WorldConfig, generate_world
from vlpipe.synthetic.gaze import GAZE_FILE, SAMPLE_RATE, gaze_rng, sample_fixations
from vlpipe.synthetic.render import object_state
from vlpipe.synthetic.scene import Action, Scene, SceneObject, sample_scene
from vlpipe.synthetic.world import (
    _clip_rngs,
    _write_gaze,
    synthetic_annotation_files,
    synthetic_dataset_options,
    synthetic_gaze_files,
    synthetic_gaze_settings,
    synthetic_videos,
)

TINY = WorldConfig(seed=5, n_clips=4, size=32, duration_s=1.0, sentences_per_clip=2)
GAZE = replace(TINY, gaze_subjects=3, salient_captions=True)


def _two_object_scenes(count: int) -> list[Scene]:
    scenes = []
    for seed in range(100):
        scene = sample_scene(np.random.default_rng(seed), 2.0)
        if len(scene.objects) == 2:
            scenes.append(scene)
        if len(scenes) == count:
            return scenes
    raise AssertionError("too few two-object scenes")


def test_viewers_follow_the_salient_object() -> None:
    to_salient, to_distractor, on_salient = [], [], []
    for k, scene in enumerate(_two_object_scenes(6)):
        for _, t, x, y in sample_fixations(scene, 4, np.random.default_rng(k)):
            salient, distractor = (object_state(obj, t) for obj in scene.objects)
            if not salient.opacity:
                continue
            to_salient.append(np.hypot(x - salient.centre[0], y - salient.centre[1]))
            to_distractor.append(np.hypot(x - distractor.centre[0], y - distractor.centre[1]))
            on_salient.append(to_salient[-1] < salient.radius)
    assert np.mean(to_salient) < 0.3 * np.mean(to_distractor)
    assert np.mean(on_salient) > 0.8
    assert np.mean(to_salient) < 0.12


def test_viewers_are_deterministic_and_sampled_at_the_fixed_rate() -> None:
    scene = _two_object_scenes(1)[0]
    first = sample_fixations(scene, 3, np.random.default_rng(7))
    assert first == sample_fixations(scene, 3, np.random.default_rng(7))
    assert first != sample_fixations(scene, 3, np.random.default_rng(8))
    per_subject = round(scene.duration * SAMPLE_RATE)
    assert len(first) == 3 * per_subject
    assert [s for s, *_ in first] == [s for s in range(3) for _ in range(per_subject)]
    assert np.allclose([t for _, t, *_ in first[:per_subject]],
                       np.arange(per_subject) / SAMPLE_RATE)
    assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for *_, x, y in first)


def test_gaze_waits_near_the_centre_until_the_salient_object_appears() -> None:
    obj = SceneObject(colour="red", shape="square", size="medium", radius=0.16,
                      centre=(0.2, 0.5), angle=0.0,
                      action=Action("appear", start=1.0, end=1.0, events=(1.0,)))
    scene = Scene(background="black", duration=2.0, objects=(obj,))
    samples = np.array(sample_fixations(scene, 8, np.random.default_rng(0)))
    before = samples[samples[:, 1] < 1.0]
    after = samples[samples[:, 1] >= 1.1]
    assert np.median(np.hypot(before[:, 2] - 0.5, before[:, 3] - 0.5)) < 0.05
    assert np.median(np.abs(after[:, 2] - 0.2)) < 0.08


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    plain, gaze = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("gaze")
    generate_world(plain, TINY)
    generate_world(gaze, replace(TINY, gaze_subjects=3))
    return plain, gaze


def test_gaze_adds_one_file_and_changes_none(worlds: tuple[Path, Path]) -> None:
    plain, gaze = worlds
    assert _files(gaze) - _files(plain) == {GAZE_FILE}
    for name in _files(plain) - {"annotations/videodatainfo.json"}:
        assert (gaze / name).read_bytes() == (plain / name).read_bytes(), name
    config = json.loads((plain / "annotations/videodatainfo.json").read_text())["info"]["config"]
    assert "gaze_subjects" not in config and "salient_captions" not in config
    assert "gaze_subjects" not in TINY.info() and "salient_captions" not in TINY.info()
    assert replace(TINY, gaze_subjects=3).info()["gaze_subjects"] == 3
    assert synthetic_gaze_files(TINY, "msrvtt") == []
    assert synthetic_gaze_files(replace(TINY, gaze_subjects=3), "msrvtt") == [GAZE_FILE]
    with pytest.raises(ValueError, match="gaze_subjects"):
        replace(TINY, gaze_subjects=-1)


def test_the_adapter_reads_the_world_gaze_back(worlds: tuple[Path, Path]) -> None:
    _, root = worlds
    config = replace(TINY, gaze_subjects=3)
    settings = synthetic_gaze_settings(config, "msrvtt")
    assert gaze_files(root, settings) == synthetic_gaze_files(config, "msrvtt")
    clips = read_dataset("msrvtt", root, **synthetic_dataset_options("msrvtt")).clips
    table, report = read_gaze(root, settings, clip_ids=clips["clip_id"])
    per_clip = config.gaze_subjects * round(config.duration_s * SAMPLE_RATE)
    assert list(table.columns) == GAZE_COLUMNS
    assert report.samples == report.kept == len(table) == config.n_clips * per_clip
    assert report.missing == report.outside == 0
    assert table.groupby("clip_id").size().to_dict() == {c: per_clip for c in clips["clip_id"]}
    assert table[["x", "y"]].to_numpy().min() >= 0 and table[["x", "y"]].to_numpy().max() <= 1
    # the samples are the viewers' (pixels to 2 decimals of a 32-pixel frame)
    scene = sample_scene(_clip_rngs(config.seed, 1)[0], config.duration_s)
    expected = np.array(sample_fixations(scene, 3, gaze_rng(config.seed, 1)))[:, 1:]
    got = table[table["clip_id"] == "video1"][["time", "x", "y"]].to_numpy()
    assert np.allclose(got, expected, atol=0.01)
    # the store over the world's sampled frames (fps 2: 2 frames a clip)
    durations = dict.fromkeys(clips["clip_id"], config.duration_s)
    attrs = write_gaze_store(root / "gaze.zarr", table, clips, 2.0, durations=durations)
    assert attrs["counts"]["frames_with_gaze"] == attrs["counts"]["frames"] == 2 * config.n_clips
    assert FeatureStore(root / "gaze.zarr").read("video0", "map").shape == (2, 49, 49)


def test_each_clip_has_its_own_gaze_stream(tmp_path: Path) -> None:
    _write_gaze(tmp_path / "a", replace(TINY, gaze_subjects=2, n_clips=3))
    _write_gaze(tmp_path / "b", replace(TINY, gaze_subjects=2, n_clips=2))
    a = (tmp_path / "a" / GAZE_FILE).read_text().splitlines()
    b = (tmp_path / "b" / GAZE_FILE).read_text().splitlines()
    assert a[: len(b)] == b and len(a) > len(b)
    assert a[0] == "clip_id,subject,time,x,y"


def test_salient_captions_name_only_the_salient_object(tmp_path: Path) -> None:
    generate_world(tmp_path, GAZE)
    records = [json.loads(line) for line in (tmp_path / "annotations/scenes.jsonl").open()]
    assert any(len(r["scene"]["objects"]) == 2 for r in records)
    for record in records:
        salient, *others = record["scene"]["objects"]
        for caption in record["captions"]:
            assert f"{salient['colour']} {salient['shape']}" in caption
            assert record["scene"]["background"] in caption
            assert all(f"{o['colour']} {o['shape']}" not in caption for o in others)
    info = json.loads((tmp_path / "annotations/videodatainfo.json").read_text())["info"]
    assert info["config"]["salient_captions"] is True


# --------------------------------------------------------------------------------------------
# The adapter's layouts and errors

SIZE = [200, 100]


def _table(tmp_path: Path, text: str, **extra) -> tuple[pd.DataFrame, object]:
    (tmp_path / "fix.csv").write_text(text)
    return read_gaze(tmp_path, {"layout": "table", "files": "fix.csv", "frame_size": SIZE,
                                **extra}, clip_ids=["a", "b"])


def test_table_layout_normalises_and_drops_what_is_not_a_fixation(tmp_path: Path) -> None:
    table, report = _table(tmp_path, "clip_id,subject,time,x,y,pupil\n"
                                     "b,s1,0.5,100,50,3\n"
                                     "a,s2,0.25,0,100,3\n"
                                     "a,s2,0.30,.,.,3\n"  # a blink: no position
                                     "a,s1,0.1,201,50,3\n"  # off the frame
                                     "a,s1,0.0,nan,20,3\n")
    assert report.to_dict() == {"samples": 5, "kept": 2, "missing": 2, "outside": 1}
    assert table.to_dict("list") == {"clip_id": ["a", "b"], "subject": ["s2", "s1"],
                                     "time": [0.25, 0.5], "x": [0.0, 0.5], "y": [1.0, 0.5]}


def test_table_layout_with_frames(tmp_path: Path) -> None:
    table, _ = _table(tmp_path, "subject,frame,clip_id,x,y\n1,5,a,20,10\n", fps=25)
    assert table.to_dict("list") == {"clip_id": ["a"], "subject": ["1"], "time": [0.2],
                                     "x": [0.1], "y": [0.1]}
    with pytest.raises(AnnotationError, match=r"fix.csv:1: a 'frame' column needs gaze.fps"):
        _table(tmp_path, "subject,frame,clip_id,x,y\n1,5,a,20,10\n")
    with pytest.raises(AnnotationError, match=r"fix.csv:2: frame '1.5' must be a whole"):
        _table(tmp_path, "subject,frame,clip_id,x,y\n1,1.5,a,20,10\n", fps=25)


@pytest.mark.parametrize(("text", "message"), [
    ("clip_id,subject,time,x,y\na,1,0.1,10,10\na,1,0.2,abc,10\n",
     r"fix.csv:3: x 'abc' is not a number"),
    ("clip_id,subject,time,y\na,1,0.1,10\n", r"fix.csv:1: header lacks column\(s\) \['x'\]"),
    ("clip_id,subject,x,y\na,1,10,10\n", r"fix.csv:1: header lacks a 'time'"),
    ("clip_id,subject,time,x,y\na,1,-0.1,10,10\n", r"fix.csv:2: time '-0.1' must be"),
    ("clip_id,subject,time,x,y\na,1,0.1,10,10\nzz,1,0.1,10,10\n",
     r"fix.csv:3: unknown clip 'zz'"),
    ("clip_id,subject,time,x,y\na,1,0.1,10\n", r"fix.csv:2: 4 columns; expected 5"),
    ("clip_id,subject,time,x,y\na,,0.1,10,10\n", r"fix.csv:2: empty subject"),
])
def test_table_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        _table(tmp_path, text)


def _write_subjects(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / "em" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "em" / name).write_text(text)


def test_per_subject_layout_round_trip(tmp_path: Path) -> None:
    _write_subjects(tmp_path, {
        "s07/clipA.txt": "# subject 07\n0 20 10\n\n40 nan nan\n80 250 10\n120 200 100\n",
        "s07/clipB.txt": "500\t100.5\t50\n",
        "s03/clipA.txt": "  10 0 0\n",
        "s03/notes.md": "not gaze\n",
        "README": "ignored\n"})
    settings = {"layout": "per_subject", "dir": "em", "frame_size": SIZE}
    assert gaze_files(tmp_path, settings) == ["em/s03/clipA.txt", "em/s07/clipA.txt",
                                              "em/s07/clipB.txt"]
    table, report = read_gaze(tmp_path, settings, clip_ids=["clipA", "clipB"])
    assert report.to_dict() == {"samples": 6, "kept": 4, "missing": 1, "outside": 1}
    assert table.to_dict("list") == {
        "clip_id": ["clipA", "clipA", "clipA", "clipB"], "subject": ["s03", "s07", "s07", "s07"],
        "time": [0.01, 0.0, 0.12, 0.5], "x": [0.0, 0.1, 1.0, 0.5025], "y": [0.0, 0.1, 1.0, 0.5]}


@pytest.mark.parametrize(("text", "message"), [
    ("0 10 10\n# c\n40 10\n", r"clipA.txt:3: 2 fields; expected 3 \(time_ms x y\)"),
    ("0 10 10\nx 10 10\n", r"clipA.txt:2: time_ms 'x' is not a number"),
    ("-5 10 10\n", r"clipA.txt:1: time '-5' must be"),
    ("0 10 y\n", r"clipA.txt:1: y 'y' is not a number"),
])
def test_per_subject_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    _write_subjects(tmp_path, {"s1/clipA.txt": text})
    with pytest.raises(AnnotationError, match=message):
        read_gaze(tmp_path, {"layout": "per_subject", "dir": "em", "frame_size": SIZE})


def test_per_subject_unknown_clip_and_bad_settings(tmp_path: Path) -> None:
    _write_subjects(tmp_path, {"s1/other.txt": "0 1 1\n"})
    settings = {"layout": "per_subject", "dir": "em", "frame_size": SIZE}
    with pytest.raises(AnnotationError, match=r"other.txt: unknown clip 'other'"):
        read_gaze(tmp_path, settings, clip_ids=["clipA"])
    with pytest.raises(AnnotationError, match="gaze directory not found"):
        read_gaze(tmp_path, {**settings, "dir": "missing"})
    for bad, message in [({"layout": "grid"}, "gaze.layout"), ({"frame_size": [0, 1]},
                          "gaze.frame_size"), ({"dir": None}, "gaze.dir"),
                         ({"colour": 1}, "unknown key"), ({"fps": -1}, "gaze.fps")]:
        with pytest.raises(ValueError, match=message):
            check_gaze_settings({**settings, **bad})


def test_frame_size_video_normalises_each_clip_by_its_own_picture(tmp_path: Path,
                                                                  tiny_clips) -> None:
    """Hollywood2's clips differ in size: ``frame_size: video`` divides each clip's pixels by
    its own width and height (and drops what lies outside that clip's frame)."""
    _write_subjects(tmp_path, {"s1/clipA.txt": "0 160 90\n40 400 90\n",
                               "s1/clipB.txt": "0 160 90\n"})
    settings = {"layout": "per_subject", "dir": "em", "frame_size": "video"}
    sizes = {"clipA": (320.0, 180.0), "clipB": (640.0, 360.0)}
    table, report = read_gaze(tmp_path, settings, ["clipA", "clipB"], video_sizes=sizes)
    assert table[["clip_id", "x", "y"]].values.tolist() == [["clipA", 0.5, 0.5],
                                                            ["clipB", 0.25, 0.25]]
    assert (report.kept, report.outside) == (2, 1)  # x = 400 lies outside clipA's 320 px
    with pytest.raises(ValueError, match="needs the clips' picture sizes"):
        read_gaze(tmp_path, settings, ["clipA", "clipB"])
    with pytest.raises(AnnotationError, match="no picture size for clip 'clipB'"):
        read_gaze(tmp_path, settings, video_sizes={"clipA": (320.0, 180.0)})
    assert picture_size(tiny_clips.video_path[0]) == (64, 64)  # tests/conftest.py's world
    with pytest.raises(DecodeError, match="cannot open video"):
        picture_size(str(tmp_path / "em" / "s1" / "clipA.txt"))


def test_the_hollywood2_layout_names_pillarboxes_and_reads_back(worlds: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    """``hollywood2``: the clips again under Hollywood2's names (test clips as its test split),
    at three picture widths, and each subject's samples in its own file in pixels of that
    picture: read with ``frame_size: video`` they are the table's samples, shifted by the
    bars; every other file is as without it."""
    _, gaze = worlds
    config = replace(TINY, gaze_subjects=3, hollywood2=True)
    generate_world(tmp_path, config)
    layout = {*synthetic_videos(config)[config.n_clips:],
              *synthetic_gaze_files(config, "hollywood2")}
    assert _files(tmp_path) - _files(gaze) == layout
    for name in _files(tmp_path) - layout - {"annotations/videodatainfo.json"}:
        assert (tmp_path / name).read_bytes() == (gaze / name).read_bytes(), name

    clips = read_dataset("hollywood2", tmp_path, **synthetic_dataset_options("hollywood2")).clips
    names = dict(zip(config.hollywood2_names(), config.splits(), strict=True))
    assert names == {"actioncliptrain00001": "train", "actioncliptrain00002": "train",
                     "actioncliptrain00003": "train", "actioncliptest00001": "test"}
    assert {c: s == "test" for c, s in zip(clips.clip_id, clips.split, strict=True)} == {
        c: s == "test" for c, s in names.items()}
    sizes = {c: picture_size(p) for c, p in zip(clips.clip_id, clips.video_path, strict=True)}
    assert [sizes[c] for c in config.hollywood2_names()] == [(32, 32), (42, 32), (56, 32),
                                                             (32, 32)]
    settings = synthetic_gaze_settings(config, "hollywood2")
    assert sorted(gaze_files(tmp_path, settings)) == sorted(
        synthetic_gaze_files(config, "hollywood2"))
    table, report = read_gaze(tmp_path, settings, clips.clip_id, video_sizes=sizes)
    square, _ = read_gaze(gaze, synthetic_gaze_settings(config, "msrvtt"))
    assert report.samples == report.kept == len(table) == len(square)
    by_name = dict(zip(config.hollywood2_names(), (f"video{i}" for i in range(4)), strict=True))
    table = table.assign(clip_id=table.clip_id.map(by_name),
                         subject=table.subject.map({"s01": "0", "s02": "1", "s03": "2"}))
    table["time"], square["time"] = table.time.round(3), square.time.round(3)  # ms vs s files
    merged = square.merge(table, on=["clip_id", "subject", "time"], suffixes=("", "_h2"))
    width = merged.clip_id.map({f"video{i}": sizes[n][0] for n, i in
                                zip(config.hollywood2_names(), range(4), strict=True)})
    assert len(merged) == len(square)
    np.testing.assert_allclose(merged.y_h2, merged.y, atol=1e-3)
    np.testing.assert_allclose(merged.x_h2 * width, (width - 32) / 2 + merged.x * 32, atol=0.01)
    with pytest.raises(ValueError, match="set gaze_subjects"):
        replace(TINY, hollywood2=True)
    with pytest.raises(ValueError, match=r"set dataset\.synthetic\.hollywood2"):
        synthetic_annotation_files("hollywood2", replace(config, hollywood2=False))


# --------------------------------------------------------------------------------------------
# Ground-truth maps and the store

def test_gaze_map_of_one_fixation_at_a_cell_centre() -> None:
    row, col = 10, 30
    point = [[(col + 0.5) / 49, (row + 0.5) / 49]]
    binary = fixation_grid(point)
    assert binary.dtype == np.uint8 and binary.sum() == 1 and binary[row, col] == 1
    gt = gaze_map(point)
    assert gt.shape == (49, 49) and gt.dtype == np.float32
    assert np.unravel_index(gt.argmax(), gt.shape) == (row, col)
    assert gt.sum() == pytest.approx(1.0, abs=1e-5)
    # a sampled Gaussian of σ = 2 cells: one cell away is exp(-1/8) of the peak, symmetric
    assert gt[row, col + 1] / gt[row, col] == pytest.approx(np.exp(-1 / 8), rel=1e-3)
    assert gt[row + 3, col] == pytest.approx(gt[row - 3, col]) == pytest.approx(gt[row, col - 3])
    # edges: (1, 1) falls in the last cell; the map still sums to 1 (zero outside the grid)
    corner = gaze_map([[1.0, 1.0], [0.999, 0.999]])
    assert fixation_grid([[1.0, 1.0]])[48, 48] == 1 and corner.sum() == pytest.approx(1.0)
    assert gaze_map(np.zeros((0, 2))) is None
    with pytest.raises(ValueError, match="normalised"):
        fixation_grid([[1.2, 0.5]])


def test_gaze_store_round_trip(tmp_path: Path) -> None:
    fixations = pd.DataFrame(
        [("c1", "s2", 0.0, 0.5, 0.5), ("c1", "s1", 0.4, 0.1, 0.2), ("c1", "s1", 0.5, 0.9, 0.9),
         ("c1", "s1", 1.6, 0.3, 0.3), ("c9", "s1", 0.1, 0.5, 0.5)], columns=GAZE_COLUMNS)
    clips = pd.DataFrame({"clip_id": ["c1", "c2"], "start": [0.0, 3.0], "end": [1.5, np.nan]})
    # an unknown end (NaN) ends the clip's frames at its last sample: c2 has none
    unknown_end = write_gaze_store(tmp_path / "x.zarr", fixations, clips, fps=2.0)
    assert FeatureStore(tmp_path / "x.zarr").index["step"]["c2"][1] == 0
    assert unknown_end["counts"]["clips_without_gaze"] == 1
    with pytest.raises(ValueError, match=r"'c1': duration -1\.0"):
        write_gaze_store(tmp_path / "y.zarr", fixations, clips.assign(end=[-1.0, 1.0]), fps=2.0)
    attrs = write_gaze_store(tmp_path / "gaze.zarr", fixations, clips, fps=2.0,
                             durations={"c2": 1.0}, code={"step": "gaze-maps"})
    store = FeatureStore(tmp_path / "gaze.zarr")
    assert store.clip_ids == ["c1", "c2"] and store.primary == "map"
    maps, times = store["c1"]
    assert maps.shape == (3, 49, 49) and maps.dtype == np.float32
    assert times.tolist() == [0.0, 0.5, 1.0]
    assert store.read("c1", "has_gaze").tolist() == [1, 1, 0]
    assert store.read("c1", "frame").tolist() == [0, 1, 2]
    assert np.allclose(maps[0], gaze_map([[0.5, 0.5], [0.1, 0.2]]))
    assert np.allclose(maps[1], gaze_map([[0.9, 0.9]])) and not maps[2].any()
    assert np.allclose(store.read("c1", "point"), [[0.5, 0.5], [0.1, 0.2], [0.9, 0.9]])
    assert store.read("c1", "step").tolist() == [0, 0, 1]
    assert [attrs["subjects"][s] for s in store.read("c1", "subject")] == ["s2", "s1", "s1"]
    assert store.read("c2", "map").shape == (2, 49, 49)
    assert store.read("c2", "has_gaze").tolist() == [0, 0]
    assert store.read("c2", "point").shape == (0, 2)
    assert store.attrs["counts"] == {"clips": 2, "clips_without_gaze": 1, "frames": 5,
                                     "frames_with_gaze": 2, "samples": 3,
                                     "samples_after_end": 1, "samples_unknown_clip": 1}
    assert store.attrs["clips_without_gaze"] == ["c2"]
    provenance = store.attrs["provenance"]
    assert provenance["extractor"] == "gaze" and isinstance(provenance["weights"], str)
    assert store.attrs["code"] == {"step": "gaze-maps"}
    # the identity follows the samples: same data, same identity
    write_gaze_store(tmp_path / "again.zarr", fixations, clips, 2.0, durations={"c2": 1.0})
    assert FeatureStore(tmp_path / "again.zarr").identities == store.identities
