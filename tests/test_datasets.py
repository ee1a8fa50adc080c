"""Dataset adapters (LSMDC, MSR-VTT task lists) and the task lists built from a clip table."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlpipe.datasets import (
    BLANK_MARKER,
    TASK_COLUMNS,
    AnnotationError,
    DatasetTables,
    check_dataset,
    has_captions,
    read_dataset,
)
from vlpipe.datasets.task_lists import (
    blank_word,
    build_fill_in_blank,
    build_multiple_choice,
    build_retrieval_test,
    build_stories,
    task_tables,
)
from vlpipe.experiment_checks import check_text_tasks
from vlpipe.synthetic.world import salient_actions, synthetic_dataset_options

TIMES = ["00.00.51.926", "00.00.54.129", "00.00.51.900", "00.00.54.200"]
A1 = "0001_American_Beauty_00.00.51.926-00.00.54.129"
A2 = "0001_American_Beauty_00.00.55.000-00.00.58.000"
B1 = "0002_Casablanca_01.02.03.000-01.02.05.500"
C1 = "0003_Up_00.10.00.000-00.10.04.000"
C2 = "0003_Up_00.11.00.000-00.11.03.000"
CANDIDATES = ["SOMEONE runs.", "SOMEONE sits.", "SOMEONE opens the door.", "A car stops.",
              "Rain falls."]
LSMDC_FILES = {
    "train.csv": [[A1, *TIMES, 'SOMEONE says "hi" to SOMEONE.'], [A2, *TIMES, "He waves."]],
    "val.csv": [[B1, *TIMES, "SOMEONE opens the door."]],
    "test.csv": [[C1, *TIMES, "Rain falls."], [C2, *TIMES, "A car stops."]],
    "mc_val.csv": [[B1, *TIMES, *CANDIDATES, "3"]],
    "fib_test.csv": [[C1, *TIMES, f"{BLANK_MARKER} falls.", "Rain"],
                     [C2, *TIMES, f"A car {BLANK_MARKER}.", "stops"]],
    "ret.csv": [[C2, *TIMES, "A car stops."], [C1, *TIMES, "Rain falls."]],
}
LSMDC_OPTIONS = {"annotations": {"training": "train.csv", "val": "val.csv", "test": "test.csv"},
                 "video_dir": "avi", "multiple_choice": {"valid": "mc_val.csv"},
                 "fill_in_blank": {"test": "fib_test.csv"}, "retrieval_test": "ret.csv"}


def _write_lsmdc(root: Path, files: dict[str, list[list[str]]]) -> None:
    for name, rows in files.items():
        (root / name).write_text("".join("\t".join(row) + "\n" for row in rows),
                                 encoding="utf-8")


def test_lsmdc_round_trip(tmp_path):
    _write_lsmdc(tmp_path, LSMDC_FILES)
    tables = read_dataset("lsmdc", tmp_path, **LSMDC_OPTIONS)
    clips = tables.clips.set_index("clip_id")
    assert list(clips.index) == [A1, A2, B1, C1, C2]
    assert list(clips.split) == ["train", "train", "val", "test", "test"]
    assert clips.video_path[A1] == str(tmp_path / "avi" / "0001_American_Beauty" / f"{A1}.avi")
    assert clips.video_path[B1] == str(tmp_path / "avi" / "0002_Casablanca" / f"{B1}.avi")
    assert clips.start[A1] == 0.0 and math.isnan(clips.end[A1])
    assert clips.sentences[A1] == ['SOMEONE says "hi" to SOMEONE.']  # quotes kept as written
    mc = tables.multiple_choice
    assert list(mc.columns) == TASK_COLUMNS["multiple_choice"]
    assert mc.iloc[0].tolist() == [f"{B1}#0", B1, "val", CANDIDATES, 2]  # "3" is 1-based
    fib = tables.fill_in_blank
    assert list(fib.columns) == TASK_COLUMNS["fill_in_blank"]
    assert fib.answer.tolist() == ["rain", "stops"] and fib.split.tolist() == ["test"] * 2
    assert tables.retrieval.values.tolist() == [[C2, "A car stops."], [C1, "Rain falls."]]
    assert tables.storytelling.empty  # no movie has 5 clips of one split

    # the workflow passes the options with sorted keys: the tables keep train / val / test order
    annotations = LSMDC_OPTIONS["annotations"]
    reordered = {**LSMDC_OPTIONS, "annotations": dict(reversed(annotations.items()))}
    assert read_dataset("lsmdc", tmp_path, **reordered).clips.equals(tables.clips)
    twice = {**LSMDC_OPTIONS, "annotations": {**annotations, "valid": "val.csv"}}
    with pytest.raises(AnnotationError, match="option annotations: a split given twice"):
        read_dataset("lsmdc", tmp_path, **twice)


def _replace(name: str, line: int, row: list[str]):
    def mutate(files: dict) -> None:
        files[name] = [*files[name][:line - 1], row, *files[name][line:]]
    return mutate


@pytest.mark.parametrize(("mutate", "message"), [
    (_replace("train.csv", 2, [A2, *TIMES]), r"train.csv:2: 5 columns; expected 6"),
    (_replace("train.csv", 2, [A2, *TIMES, "  "]), r"train.csv:2: empty sentence"),
    (_replace("test.csv", 2, [A1, *TIMES, "Again."]),
     r"test.csv:2: clip '0001_American_Beauty_00.00.51.926-00.00.54.129' again "
     r"\(first at \S+train.csv:1\)"),
    (_replace("mc_val.csv", 1, [B1, *TIMES, *CANDIDATES, "0"]), r"mc_val.csv:1: answer '0'"),
    (_replace("mc_val.csv", 1, [B1, *TIMES, *CANDIDATES, "6"]), r"mc_val.csv:1: answer '6'"),
    (_replace("mc_val.csv", 1, [B1, *TIMES, *CANDIDATES]), r"mc_val.csv:1: 10 columns"),
    (_replace("mc_val.csv", 1, ["ghost", *TIMES, *CANDIDATES, "1"]),
     r"mc_val.csv:1: unknown clip 'ghost'"),
    (_replace("mc_val.csv", 1, [C1, *TIMES, *CANDIDATES, "1"]), r"mc_val.csv:1: .* a test clip"),
    (_replace("fib_test.csv", 2, [C2, *TIMES, "A car stops.", "stops"]),
     r"fib_test.csv:2: .*exactly once"),
    (_replace("fib_test.csv", 2, [C2, *TIMES, f"{BLANK_MARKER} {BLANK_MARKER}.", "x"]),
     r"fib_test.csv:2: .*exactly once"),
    (_replace("fib_test.csv", 1, [C1, *TIMES, f"{BLANK_MARKER}.", "two words"]),
     r"fib_test.csv:1: the answer must be one word"),
    (_replace("ret.csv", 2, [A1, *TIMES, "x"]), r"ret.csv:2: clip .* is a train clip"),
])
def test_bad_lsmdc_rows_name_file_and_line(tmp_path, mutate, message):
    files = {name: list(rows) for name, rows in LSMDC_FILES.items()}
    mutate(files)
    _write_lsmdc(tmp_path, files)
    with pytest.raises(AnnotationError, match=message):
        read_dataset("lsmdc", tmp_path, **LSMDC_OPTIONS)


def test_msrvtt_released_lists(tiny_world, tmp_path):
    options = synthetic_dataset_options("msrvtt")
    test_clips = list(read_dataset("msrvtt", tiny_world, **options).clips.query(
        "split == 'test'").clip_id)
    (tmp_path / "ret.csv").write_text(
        "key,vid_key,video_id,sentence\n"
        f'ret0,msr9,{test_clips[0]},"a man, smiling"\nret1,msr10,{test_clips[1]},a dog\n')
    header = "key\tvid_key\tvideo_id\ta1\ta2\ta3\ta4\ta5\tanswer\n"
    mc_row = f"mc0\tmsr9\t{test_clips[0]}\ta \"b\"\tc\td\te\tf\t4\n"
    (tmp_path / "mc.tsv").write_text(header + mc_row)
    paths = {"retrieval_test": str(tmp_path / "ret.csv"),
             "multiple_choice": str(tmp_path / "mc.tsv")}
    tables = read_dataset("msrvtt", tiny_world, **options, **paths)
    assert tables.retrieval.values.tolist() == [[test_clips[0], "a man, smiling"],
                                                [test_clips[1], "a dog"]]
    assert tables.multiple_choice.iloc[0].tolist() == [
        f"{test_clips[0]}#0", test_clips[0], "test", ['a "b"', "c", "d", "e", "f"], 4]
    assert tables.fill_in_blank is None

    (tmp_path / "mc.tsv").write_text(header + mc_row + mc_row.replace("\t4\n", "\t5\n"))
    with pytest.raises(AnnotationError, match=r"mc.tsv:3: answer '5'"):
        read_dataset("msrvtt", tiny_world, **options, **paths)
    (tmp_path / "mc.tsv").write_text(header.replace("a5", "a6") + mc_row)
    with pytest.raises(AnnotationError, match=r"mc.tsv:1: header lacks column\(s\) \['a5'\]"):
        read_dataset("msrvtt", tiny_world, **options, **paths)
    (tmp_path / "ret.csv").write_text("video_id,sentence\nvideo0,a cat\n")
    with pytest.raises(AnnotationError, match=r"ret.csv:2: clip 'video0' is a train clip"):
        read_dataset("msrvtt", tiny_world, **options, **paths)


NOUNS = ["door", "car", "dog", "window", "ball", "chair"]
VERBS = ["opens", "paints", "kicks", "moves", "cleans"]
PLACES = ["kitchen", "garden", "street", "office"]


def _clip_table(n_clips: int = 60) -> pd.DataFrame:
    """Clips with two unique sentences each; splits in blocks of 30 / 15 / 15 (for 60)."""
    sentences = [f"SOMEONE {VERBS[k % 5]} the {NOUNS[k // 5 % 6]} in the {PLACES[k // 30]}."
                 for k in range(2 * n_clips)]
    splits = ["train"] * (n_clips // 2) + ["val"] * (n_clips // 4)
    return pd.DataFrame({"clip_id": [f"c{i}" for i in range(n_clips)],
                         "split": splits + ["test"] * (n_clips - len(splits)),
                         "sentences": [sentences[2 * i:2 * i + 2] for i in range(n_clips)]})


def test_build_retrieval_test_size_and_determinism():
    clips = _clip_table()
    test = clips[clips.split == "test"].set_index("clip_id")
    some = build_retrieval_test(clips, size=10, seed=1)
    assert list(some.columns) == TASK_COLUMNS["retrieval"] and len(some) == 10
    assert some.clip_id.is_unique and set(some.clip_id) <= set(test.index)
    assert all(s in test.sentences[c] for c, s in zip(some.clip_id, some.sentence, strict=True))
    assert some.equals(build_retrieval_test(clips, size=10, seed=1))
    assert not some.equals(build_retrieval_test(clips, size=10, seed=2))
    assert list(build_retrieval_test(clips, seed=1).clip_id) == list(test.index)  # all 15


@pytest.mark.parametrize("protocol", ["msrvtt", "lsmdc"])
def test_build_multiple_choice(protocol):
    clips = _clip_table()
    owner = {s: c for c, sentences in zip(clips.clip_id, clips.sentences, strict=True)
             for s in sentences}
    split = dict(zip(clips.clip_id, clips.split, strict=True))
    activity = {c: f"act{i % 3}" for i, c in enumerate(clips.clip_id)}
    items = build_multiple_choice(clips, protocol, seed=0, activity=activity)
    assert list(items.columns) == TASK_COLUMNS["multiple_choice"]
    assert sorted(items.clip_id) == sorted(clips.clip_id)  # every split, train too
    held_out = items[items.split != "train"].reset_index(drop=True)  # drawn before train
    assert held_out.equals(build_multiple_choice(clips[clips.split != "train"], protocol, seed=0,
                                                 activity=activity))
    assert items.answer.nunique() > 1  # the answer's position is shuffled
    for item in items.itertuples():
        assert len(item.candidates) == 5
        assert owner[item.candidates[item.answer]] == item.clip_id
        distractors = [owner[s] for k, s in enumerate(item.candidates) if k != item.answer]
        assert item.clip_id not in distractors
        assert all(split[c] == item.split for c in distractors)
        if protocol == "lsmdc":
            assert all(activity[c] != activity[item.clip_id] for c in distractors)
    assert items.equals(build_multiple_choice(clips, protocol, seed=0, activity=activity))
    assert not items.equals(build_multiple_choice(clips, protocol, seed=1, activity=activity))


def test_multiple_choice_lsmdc_protocol_needs_activity_labels():
    tables = DatasetTables(_clip_table())
    with pytest.raises(ValueError, match="no activity labels"):
        task_tables(tables, {"multiple_choice": "lsmdc"})
    shipped = build_multiple_choice(tables.clips, seed=5)
    tables.multiple_choice = shipped
    built = task_tables(tables, {"multiple_choice": "lsmdc", "retrieval_size": 4})
    assert built["multiple_choice"] is shipped and len(built["retrieval"]) == 4


def test_stories_are_windows_of_consecutive_clips_within_a_split_and_a_group():
    clips = _clip_table(24)  # 12 train, 6 val, 6 test
    clips.at[3, "sentences"] = []  # uncaptioned: not part of any story
    stories = build_stories(clips)
    assert list(stories.columns) == TASK_COLUMNS["storytelling"]
    assert stories["clip_ids"].map(list).tolist() == [
        ["c0", "c1", "c2", "c4", "c5"], ["c6", "c7", "c8", "c9", "c10"],  # c11: a rest of 1
        ["c12", "c13", "c14", "c15", "c16"], ["c18", "c19", "c20", "c21", "c22"]]
    assert stories["split"].tolist() == ["train", "train", "val", "test"]
    assert stories["set_id"].tolist() == ["c0+5", "c6+5", "c12+5", "c18+5"]
    assert list(stories["sentences"].iloc[0]) == [clips.sentences[k][0] for k in (0, 1, 2, 4, 5)]
    # a group (a movie) ends a window: c0-c5 and c6-c11 are two movies
    movies = build_stories(clips.iloc[:12], length=3, group=lambda c: str(int(c[1:]) // 6))
    assert movies["clip_ids"].map(list).tolist() == [["c0", "c1", "c2"], ["c6", "c7", "c8"],
                                                     ["c9", "c10", "c11"]]
    assert task_tables(DatasetTables(clips))["storytelling"].equals(stories)


def test_build_fill_in_blank(caplog):
    clips = _clip_table(8)
    clips.at[0, "sentences"] = ["He is there.", "SOMEONE opens the door."]
    with caplog.at_level(logging.INFO):
        items = build_fill_in_blank(clips, seed=0)
    assert "1 sentence(s) without a content word" in caplog.text
    assert list(items.columns) == TASK_COLUMNS["fill_in_blank"] and len(items) == 15
    originals = dict(zip(items.item_id, [s for ss in clips.sentences for s in ss][1:],
                         strict=True))
    for item in items.itertuples():
        assert item.sentence.count(BLANK_MARKER) == 1
        assert item.answer == item.answer.lower() and item.answer.isalpha()
        restored = item.sentence.replace(BLANK_MARKER, item.answer)
        assert restored.lower() == originals[item.item_id].lower()
    assert items.equals(build_fill_in_blank(clips, seed=0))
    assert not items.equals(build_fill_in_blank(clips, seed=1))


def test_blank_word_keeps_punctuation_and_skips_function_words():
    rng = np.random.default_rng(0)
    blanks = {blank_word("SOMEONE opens (the) door.", rng) for _ in range(20)}
    assert blanks == {(f"SOMEONE {BLANK_MARKER} (the) door.", "opens"),
                      (f"SOMEONE opens (the) {BLANK_MARKER}.", "door")}
    assert blank_word("She's up there with them", rng) is None
    assert blank_word(f"a {BLANK_MARKER} door", rng) is None


def test_synthetic_world_reads_the_same_in_both_formats(tiny_world):
    msrvtt = read_dataset("msrvtt", tiny_world, **synthetic_dataset_options("msrvtt"))
    lsmdc = read_dataset("lsmdc", tiny_world, **synthetic_dataset_options("lsmdc"))
    columns = ["clip_id", "video_path", "split"]
    assert lsmdc.clips[columns].equals(msrvtt.clips[columns])
    assert [s[:1] for s in msrvtt.clips.sentences] == list(lsmdc.clips.sentences)
    test = list(msrvtt.clips.clip_id[msrvtt.clips.split == "test"])
    assert list(lsmdc.retrieval.clip_id) == test
    assert len(lsmdc.fill_in_blank) == len(lsmdc.clips)  # every synthetic sentence has one
    assert set(lsmdc.multiple_choice.clip_id) <= set(test) | set(
        msrvtt.clips.clip_id[msrvtt.clips.split == "val"])
    assert set(salient_actions(tiny_world)) == set(msrvtt.clips.clip_id)


@pytest.mark.parametrize("format", ["msrvtt", "lsmdc"])
def test_check_dataset_accepts_a_complete_data_set(tiny_world, format):
    check_dataset(format, tiny_world, synthetic_dataset_options(format))  # raises nothing


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o.update(vidoe_dir="videos"),
     r"unknown key\(s\) \['vidoe_dir'\] for format 'msrvtt'"),
    (lambda o: o.pop("annotations"), r"format 'msrvtt' needs \['annotations'\]"),
    (lambda o: o.update(video_dir="clips"), r"video_dir: .*/clips is not a directory"),
    (lambda o: o.update(annotations=["annotations/gone.json"]),
     r"not found: \['.*annotations/gone.json'\]"),
    (lambda o: o.update(retrieval_test="lists/test.csv"), r"not found: \['.*lists/test.csv'\]"),
])
def test_check_dataset_names_the_bad_option_or_file(tiny_world, mutate, message):
    options = synthetic_dataset_options("msrvtt")
    mutate(options)
    with pytest.raises(ValueError, match=message):
        check_dataset("msrvtt", tiny_world, options)


def test_check_dataset_names_a_missing_root_and_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match=r"dataset.root: .*/nowhere is not a directory"):
        check_dataset("msrvtt", tmp_path / "nowhere", synthetic_dataset_options("msrvtt"))
    with pytest.raises(KeyError, match="unknown dataset format 'vtt'"):
        check_dataset("vtt", tmp_path, {})


# --- Hollywood2 (gaze only) ----------------------------------------------------------------

def hollywood2_root(tmp_path: Path, names: list[str]) -> Path:
    (tmp_path / "AVIClips").mkdir()
    for name in names:
        (tmp_path / "AVIClips" / name).write_bytes(b"")
    return tmp_path


def test_hollywood2_splits_by_name_and_carves_validation_from_training(tmp_path):
    train = [f"actioncliptrain{k:05d}.avi" for k in range(1, 201)]
    names = [*train, "autotrain00007.avi", "actioncliptest00001.avi", "actioncliptest00002.avi",
             "readme.txt"]
    tables = read_dataset("hollywood2", hollywood2_root(tmp_path, names), val_fraction=0.25)
    clips = tables.clips.set_index("clip_id")
    assert len(clips) == 203 and "readme" not in clips.index
    assert list(clips.index[clips["split"] == "test"]) == ["actioncliptest00001",
                                                          "actioncliptest00002"]
    val = clips.index[clips["split"] == "val"]
    assert 30 < len(val) < 70 and all(c.startswith(("actioncliptrain", "autotrain")) for c in val)
    assert clips["sentences"].map(len).eq(0).all() and clips["end"].isna().all()
    assert (clips["start"] == 0).all() and tables.retrieval is None
    again = read_dataset("hollywood2", tmp_path, val_fraction=0.25).clips  # stable
    assert list(again["split"]) == list(tables.clips["split"])
    assert not has_captions("hollywood2") and has_captions("msrvtt")


def test_hollywood2_names_outside_its_split_are_errors(tmp_path):
    root = hollywood2_root(tmp_path, ["actioncliptrain00001.avi", "myclip.avi"])
    with pytest.raises(AnnotationError, match=r"myclip\.avi: not a Hollywood2 clip name"):
        read_dataset("hollywood2", root)
    with pytest.raises(AnnotationError, match=r"val_fraction=1\.5"):
        read_dataset("hollywood2", root, val_fraction=1.5)


def test_uncaptioned_clips_give_empty_text_task_lists(tmp_path):
    names = [f"actioncliptrain{k:05d}.avi" for k in range(1, 6)] + ["actioncliptest00001.avi"]
    tables = read_dataset("hollywood2", hollywood2_root(tmp_path, names))
    lists = task_tables(tables, {"multiple_choice": "lsmdc"})
    assert {name: len(table) for name, table in lists.items()} == {
        "retrieval": 0, "multiple_choice": 0, "fill_in_blank": 0, "storytelling": 0}
    assert list(lists["retrieval"].columns) == TASK_COLUMNS["retrieval"]


def test_text_tasks_are_refused_on_an_uncaptioned_data_set():
    experiments = {"rgp": {"task": "gaze"}, "cap": {"task": "captioning"}}
    check_text_tasks(experiments, "msrvtt", captioned=True)
    check_text_tasks({"rgp": {"task": "gaze"}}, "hollywood2", captioned=False)
    with pytest.raises(ValueError, match=r"experiments.cap.task: 'captioning' reads the clips"):
        check_text_tasks(experiments, "hollywood2", captioned=False)
