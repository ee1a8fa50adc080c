import json
import os

import numpy as np
import pandas as pd
import pytest

from vlpipe.datasets import TASK_COLUMNS, AnnotationError, read_dataset
from vlpipe.manifest import (
    EmptySplitError,
    MissingVideoError,
    build_manifest,
    shard_of,
    shard_path,
)
from vlpipe.synthetic.world import synthetic_dataset_options
from vlpipe.text import Vocabulary, load_embeddings, tokenize

from .conftest import MSRVTT_OPTIONS


def test_shard_assignment_is_stable_and_spread():
    ids = [f"video{i}" for i in range(1000)]
    shards = [shard_of(c, 8) for c in ids]
    assert shards == [shard_of(c, 8) for c in ids]
    assert min(np.bincount(shards, minlength=8)) > 80  # roughly uniform


def test_manifest_rewrites_only_changed_shards(tiny_world, tmp_path):
    dataset = {"format": "msrvtt", "root": str(tiny_world), "options": MSRVTT_OPTIONS}
    assert build_manifest(dataset, tmp_path / "tables", tmp_path / "shards", 3) == [0, 1, 2]
    manifest = pd.read_parquet(tmp_path / "tables" / "manifest.parquet")
    assert {"size", "mtime_ns", "shard", "sentences", "split"} <= set(manifest.columns)
    mtimes = {k: shard_path(tmp_path / "shards", k).stat().st_mtime_ns for k in range(3)}
    assert build_manifest(dataset, tmp_path / "tables", tmp_path / "shards", 3) == []

    clip = manifest.iloc[0]
    os.utime(clip.video_path, ns=(clip.mtime_ns + 10**9, clip.mtime_ns + 10**9))
    assert build_manifest(dataset, tmp_path / "tables", tmp_path / "shards", 3) == [clip.shard]
    for k in set(range(3)) - {clip.shard}:
        assert shard_path(tmp_path / "shards", k).stat().st_mtime_ns == mtimes[k]


def test_manifest_writes_task_lists_only_when_changed(tiny_world, tmp_path):
    dataset = {"format": "lsmdc", "root": str(tiny_world), "synthetic": {},
               "options": synthetic_dataset_options("lsmdc")}
    tables = tmp_path / "tables"
    build_manifest(dataset, tables, tmp_path / "shards", 2)
    files = [tables / "manifest.parquet", tables / "clips.parquet",
             *(tables / "tasks" / f"{name}.parquet" for name in TASK_COLUMNS)]
    for name, columns in TASK_COLUMNS.items():
        assert list(pd.read_parquet(tables / "tasks" / f"{name}.parquet").columns) == columns
    mtimes = [path.stat().st_mtime_ns for path in files]
    build_manifest(dataset, tables, tmp_path / "shards", 2)
    assert [path.stat().st_mtime_ns for path in files] == mtimes  # list cells compare equal

    # MSR-VTT ships no lists: all are built, with the configured settings
    dataset = {**dataset, "format": "msrvtt", "options": synthetic_dataset_options("msrvtt"),
               "tasks": {"retrieval_size": 2, "multiple_choice": "lsmdc", "seed": 1}}
    build_manifest(dataset, tmp_path / "built", tmp_path / "shards", 2)
    retrieval = pd.read_parquet(tmp_path / "built" / "tasks" / "retrieval.parquet")
    blanks = pd.read_parquet(tmp_path / "built" / "tasks" / "fill_in_blank.parquet")
    clips = pd.read_parquet(tmp_path / "built" / "clips.parquet")
    assert len(retrieval) == 2 and len(blanks) == sum(map(len, clips.sentences))


def test_missing_video_names_the_clip(tiny_world, tmp_path):
    annotations = json.loads((tiny_world / "annotations/videodatainfo.json").read_text())
    annotations["videos"][0]["video_id"] = "ghost"
    for sentence in annotations["sentences"]:
        if sentence["video_id"] == "video0":
            sentence["video_id"] = "ghost"
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    dataset = {"format": "msrvtt", "root": str(tiny_world),
               "options": {"annotations": [str(tmp_path / "a.json")]}}
    with pytest.raises(MissingVideoError, match="ghost"):
        build_manifest(dataset, tmp_path / "tables", tmp_path / "shards", 1)


def test_an_empty_split_is_an_error_when_the_manifest_is_built(tiny_world, tmp_path):
    annotations = json.loads((tiny_world / "annotations/videodatainfo.json").read_text())
    for video in annotations["videos"]:  # a small data set whose every video landed in train
        video["split"] = "train"
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    dataset = {"format": "msrvtt", "root": str(tiny_world),
               "options": {"annotations": [str(tmp_path / "a.json")]}}
    with pytest.raises(EmptySplitError, match=r"\['val', 'test'\].*'train': \d+, 'val': 0"):
        build_manifest(dataset, tmp_path / "tables", tmp_path / "shards", 1)
    assert not (tmp_path / "tables" / "manifest.parquet").exists()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda a: a["videos"][1].pop("video_id"), r"videos\[1\]: missing key 'video_id'"),
    (lambda a: a["videos"][2].update(split="holdout"), r"videos\[2\]: unknown split"),
    (lambda a: a["sentences"][3].update(caption="  "), r"sentences\[3\]: empty caption"),
    (lambda a: a["videos"].append(dict(a["videos"][0])), "duplicate video_id 'video0'"),
])
def test_bad_annotation_rows_are_named(tiny_world, tmp_path, mutate, message):
    annotations = json.loads((tiny_world / "annotations/videodatainfo.json").read_text())
    mutate(annotations)
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    with pytest.raises(AnnotationError, match=message):
        read_dataset("msrvtt", tiny_world, annotations=[str(tmp_path / "a.json")])


def test_vocabulary_threshold_and_encoding():
    sentences = ["A red circle grows.", "a red square", "a red circle", "a blue circle"]
    vocab = Vocabulary.build(sentences, min_count=3)
    # the specials first, then by count, then alphabetical
    assert vocab.words == ["<pad>", "<blank>", "a", "circle", "red"]
    assert vocab.encode("A red star spins", max_words=40) == [2, 4]  # OOV words dropped
    assert vocab.encode("a red circle", max_words=2) == [2, 4]
    assert tokenize("It's a RED, red circle!") == ["it's", "a", "red", "red", "circle"]


def test_glove_format_embeddings(tmp_path):
    vocab = Vocabulary(["red", "circle", "grows"])
    (tmp_path / "glove.txt").write_text("red 1 2 3\nblue 4 5 6\ncircle 0.5 0 -1\n")
    matrix, found = load_embeddings(tmp_path / "glove.txt", vocab, dim=3)
    assert found == 2 and matrix.shape == (5, 3)  # <pad>, <blank>, the 3 words
    np.testing.assert_array_equal(matrix[0], 0)
    np.testing.assert_array_equal(matrix[2], [1, 2, 3])
    np.testing.assert_array_equal(matrix[3], [0.5, 0, -1])
    assert np.abs(matrix[4]).sum() > 0  # not in the file: random
    (tmp_path / "bad.txt").write_text("red 1 2\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: word 'red' has 2 values"):
        load_embeddings(tmp_path / "bad.txt", vocab, dim=3)
