"""The VIST adapter (SIS tier): photo clips, shipped stories, missing photos and malformed files."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlpipe.datasets import (
    TASK_COLUMNS,
    AnnotationError,
    annotation_files,
    check_dataset,
    read_dataset,
)
from vlpipe.datasets.task_lists import task_tables
from vlpipe.datasets.vist import read_vist
from vlpipe.decode import FrameSpec, decode_clip

FILES = {"train": "sis/train.story-in-sequence.json", "val": "sis/val.story-in-sequence.json",
         "test": "sis/test.story-in-sequence.json"}
# the workers' order 0..4 is listed shuffled in the files
SHUFFLED = (3, 0, 4, 1, 2)


def _story(story_id: str, album: str, photos: list[str], texts: list[str] | None = None,
           listed: tuple[int, ...] = SHUFFLED) -> list[list[dict]]:
    """A story's annotations as the release writes them (one-element lists), in ``listed``
    order; photo k's sentence is ``texts[k]`` (default "<story> part <k>.")."""
    texts = texts or [f"{story_id} part {k}." for k in range(5)]
    return [[{"story_id": story_id, "storylet_id": f"{story_id}{k}", "album_id": album,
              "photo_flickr_id": photos[k], "worker_arranged_photo_order": k,
              "text": texts[k], "original_text": texts[k].title(),
              "tier": "story-in-sequence"}] for k in listed]


def _annotations() -> dict[str, list]:
    train = [*_story("s1", "a1", ["p1", "p2", "p3", "p4", "p5"]),
             *_story("s2", "a1", ["p5", "p4", "p6", "p7", "p8"],
                     ["s1 part 4.", "s2 part 1.", "s2 part 2.", "s2 part 3.", "s2 part 4."])]
    val = _story("s3", "a2", ["v1", "v2", "v3", "v4", "v5"])
    test = [*_story("s4", "a3", ["t1", "t2", "t3", "t4", "t5"], listed=(0, 1, 2, 3, 4)),
            *_story("s6", "a4", ["t6", "t7", "t8", "t9", "t10"]),
            *_story("s5", "a3", ["t5", "t4", "t3", "t2", "t1"])]  # a3 again: not kept
    return {"train": train, "val": val, "test": test}


def _write(root: Path, annotations: dict[str, list], skip_photos: tuple[str, ...] = ()) -> Path:
    """The SIS files and a small JPEG (PNG for ``p2``) for each photo of every story."""
    for split, entries in annotations.items():
        path = root / FILES[split]
        path.parent.mkdir(parents=True, exist_ok=True)
        photos = sorted({entry[0].get("photo_flickr_id", "p1") for entry in entries})
        path.write_text(json.dumps({"images": [{"id": p, "album_id": "a"} for p in photos],
                                    "albums": [], "annotations": entries}, indent=1))
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for k, photo in enumerate(p for p in photos if p not in skip_photos):
            pixels = np.full((24, 40, 3), 20 * k, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{photo}.{'png' if photo == 'p2' else 'jpg'}")
    return root


def test_clip_table(tmp_path):
    clips = read_vist(_write(tmp_path, _annotations()), FILES).clips.set_index("clip_id")
    assert list(clips.index) == ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8",
                                 "v1", "v2", "v3", "v4", "v5",
                                 "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10"]
    assert clips.video_path["p1"] == str(tmp_path / "images" / "train" / "p1.jpg")
    assert clips.video_path["p2"] == str(tmp_path / "images" / "train" / "p2.png")
    assert clips.video_path["t1"] == str(tmp_path / "images" / "test" / "t1.jpg")
    assert list(clips.split.unique()) == ["train", "val", "test"]
    assert clips.split["v3"] == "val" and clips.split["t10"] == "test"
    assert (clips.start == 0.0).all() and clips.end.map(math.isnan).all()
    # every sentence written for the photo in its split, file order, duplicates removed
    assert clips.sentences["p5"] == ["s1 part 4."]
    assert clips.sentences["p4"] == ["s1 part 3.", "s2 part 1."]
    # the test story left out (one per album) still gives its photos' sentences
    assert clips.sentences["t1"] == ["s4 part 0.", "s5 part 4."]


def test_story_table(tmp_path):
    stories = read_vist(_write(tmp_path, _annotations()), FILES).storytelling
    assert list(stories.columns) == TASK_COLUMNS["storytelling"]
    assert list(stories.set_id) == ["s1", "s2", "s3", "s4", "s6"]  # s5: a3's second story
    assert list(stories.split) == ["train", "train", "val", "test", "test"]
    first = stories.iloc[0]
    assert first.clip_ids == ["p1", "p2", "p3", "p4", "p5"]  # by the workers' order
    assert first.sentences == [f"s1 part {k}." for k in range(5)]
    assert stories.iloc[1].clip_ids == ["p5", "p4", "p6", "p7", "p8"]


def test_tables_through_the_registry(tmp_path):
    root = _write(tmp_path, _annotations())
    options = {"annotations": {"test": FILES["test"], "validation": FILES["val"],
                               "train": FILES["train"]}}
    check_dataset("vist", root, options)  # raises nothing
    assert annotation_files("vist", root, options) == [
        str(root / FILES[split]) for split in ("test", "val", "train")]
    tables = read_dataset("vist", root, **options)  # splits in train / val / test order
    assert tables.clips.equals(read_vist(root, FILES).clips)
    assert (tables.retrieval, tables.multiple_choice, tables.fill_in_blank) == (None,) * 3
    lists = task_tables(tables)
    assert lists["storytelling"].equals(tables.storytelling)  # the shipped stories kept
    assert set(lists["retrieval"].clip_id) <= {f"t{k}" for k in range(1, 11)}
    (root / FILES["val"]).unlink()
    with pytest.raises(ValueError, match=r"annotation file.* not found.*val\.story-in-sequence"):
        check_dataset("vist", root, options)


def test_a_missing_photo_leaves_its_story_out(tmp_path, caplog):
    root = _write(tmp_path, _annotations(), skip_photos=("p7",))
    with caplog.at_level(logging.WARNING, logger="vlpipe.datasets.vist"):
        tables = read_vist(root, FILES)
    assert list(tables.storytelling.set_id) == ["s1", "s3", "s4", "s6"]
    assert not {"p6", "p7", "p8"} & set(tables.clips.clip_id)  # only in the story left out
    assert tables.clips.set_index("clip_id").sentences["p4"] == ["s1 part 3."]
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert FILES["train"] in record.getMessage()
    assert "1 of 2 stories left out" in record.getMessage()
    assert "story s2 (photo p7)" in record.getMessage()


def test_a_split_without_complete_stories_is_an_error(tmp_path):
    root = _write(tmp_path, _annotations(), skip_photos=("v2",))
    with pytest.raises(AnnotationError, match=r"val\.story-in-sequence\.json: no story left"):
        read_vist(root, FILES)


def test_a_photo_decodes_as_one_frame(tmp_path):
    root = _write(tmp_path, _annotations())
    path = read_vist(root, FILES).clips.set_index("clip_id").video_path
    for photo in ("p1", "p2"):  # jpg, png
        frames, times = decode_clip(path[photo], FrameSpec(fps=5, size=32))
        assert frames.shape == (1, 32, 32, 3) and times.tolist() == [0.0]


def _entry(split: str, index: int, **changes):
    def mutate(annotations: dict) -> None:
        entry = annotations[split][index][0]
        for key, value in changes.items():
            if value is None:
                del entry[key]
            else:
                entry[key] = value
    return mutate


def _drop(split: str, index: int):
    def mutate(annotations: dict) -> None:
        del annotations[split][index]
    return mutate


def _add_to_val(*photos: str):
    def mutate(annotations: dict) -> None:
        annotations["val"] += _story("s9", "a9", list(photos))
    return mutate


TRAIN, VAL = r"train\.story-in-sequence\.json", r"val\.story-in-sequence\.json"


@pytest.mark.parametrize(("mutate", "message"), [
    (_entry("train", 3, text=None), rf"{TRAIN}: annotations\[3\]: missing key\(s\) \['text'\]"),
    (_entry("train", 0, photo_flickr_id=None, story_id=None),
     rf"{TRAIN}: annotations\[0\]: missing key\(s\) \['story_id', 'photo_flickr_id'\]"),
    (_entry("val", 2, text="  "), rf"{VAL}: annotations\[2\]: empty text \(story 's3'\)"),
    (_drop("val", 4), rf"{VAL}: story 's3' has photo orders \[0, 1, 3, 4\]"),
    (_entry("val", 1, worker_arranged_photo_order=3),
     rf"{VAL}: story 's3' has photo orders \[1, 2, 3, 3, 4\]"),
    (_entry("val", 1, worker_arranged_photo_order="0"),
     rf"{VAL}: annotations\[1\]: worker_arranged_photo_order '0' of story 's3'"),
    (_entry("val", 1, album_id="a7"), rf"{VAL}: story 's3' spans albums \['a2', 'a7'\]"),
    (_entry("val", 1, photo_flickr_id="../x"), rf"{VAL}: annotations\[1\]: photo_flickr_id"),
    (_add_to_val("p1", "w2", "w3", "w4", "w5"),
     rf"{VAL}: photo 'p1' \(story 's9'\) is also in \S+{TRAIN}"),
])
def test_malformed_annotations_name_the_file(tmp_path, mutate, message):
    annotations = copy.deepcopy(_annotations())
    mutate(annotations)
    root = _write(tmp_path, annotations)
    with pytest.raises(AnnotationError, match=message):
        read_vist(root, FILES)


def test_six_sentences_and_bad_files(tmp_path):
    annotations = _annotations()
    extra = _story("s3", "a2", ["v1", "v2", "v3", "v4", "v5"], listed=(0,))
    extra[0][0]["worker_arranged_photo_order"] = 5
    annotations["val"] += extra
    root = _write(tmp_path, annotations)
    with pytest.raises(AnnotationError, match=rf"{VAL}: story 's3' has photo orders "
                                              r"\[0, 1, 2, 3, 4, 5\]"):
        read_vist(root, FILES)
    (root / FILES["val"]).write_text('{"annotations": [\n  [{"story_id": }]\n]}')
    with pytest.raises(AnnotationError, match=rf"{VAL}:2: not valid JSON"):
        read_vist(root, FILES)
    (root / FILES["val"]).write_text('{"images": [], "albums": []}')
    with pytest.raises(AnnotationError, match=rf"{VAL}: missing key 'annotations' "
                                              r"\(found \['albums', 'images'\]\)"):
        read_vist(root, FILES)
    (root / FILES["val"]).write_text('{"annotations": [["s3"]]}')
    with pytest.raises(AnnotationError, match=rf"{VAL}: annotations\[0\]: expected"):
        read_vist(root, FILES)
