"""Bad annotation files, manifests and configs, beyond the cases of ``tests.faults.checks``
(groups "annotations", "config"; run by test_fault_cases.py): each fails fast naming the input;
a clip span past the end of its video fails its extraction job or is quarantined, like any clip
that cannot be decoded."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from vlpipe.datasets import AnnotationError, read_dataset
from vlpipe.datasets.base import check_clip_table, safe_clip_id
from vlpipe.decode import AudioSpec, DecodeError, decode_media

from .faults import checks as fault_checks
from .faults.videos import write_good_clip


def test_the_unchanged_data_sets_read(tmp_path):
    """The cases' base data sets are good: each case's error comes from its one change."""
    (tmp_path / "msrvtt").mkdir()
    (tmp_path / "lsmdc").mkdir()
    assert fault_checks.msrvtt_case(lambda info, root: None)(tmp_path / "msrvtt", None) == "ok"
    assert fault_checks.lsmdc_case(lambda files: None)(tmp_path / "lsmdc", None) == "ok"


def test_byte_order_marks_are_dropped(tmp_path):
    info = json.dumps(fault_checks.MSRVTT_INFO)
    (tmp_path / "info.json").write_bytes(b"\xef\xbb\xbf" + info.encode())
    (tmp_path / "ret.csv").write_bytes(b"\xef\xbb\xbfvideo_id,sentence\nvideo2,a star\n")
    tables = read_dataset("msrvtt", tmp_path, annotations=["info.json"],
                          retrieval_test="ret.csv")
    assert tables.clips["clip_id"].tolist() == ["video0", "video1", "video2"]
    assert tables.retrieval.values.tolist() == [["video2", "a star"]]


@pytest.mark.parametrize("clip_id", ["a/b", "a\\b", "..", ".", "", "  ", "a\nb", "a\x00b",
                                     "tab\there"])
def test_clip_ids_that_are_not_file_names_are_rejected(clip_id):
    with pytest.raises(AnnotationError, match=r"^f:3: video_id .* is not usable as a file name"):
        safe_clip_id(clip_id, "video_id", "f:3")


@pytest.mark.parametrize("clip_id", ["video0", "a'; touch PWNED; '", "$(rm -rf x)", "ünï ✓",
                                     "0001_Movie_00.00.01.000-00.00.03.000", "..."])
def test_other_clip_ids_are_kept_as_written(clip_id):
    """Quotes, spaces and ``$( )`` are legal in file names; no clip id reaches a shell (see the
    hostile_names check)."""
    assert safe_clip_id(clip_id, "video_id", "f:3") == clip_id


@pytest.mark.parametrize(("start", "end", "ok"), [
    (0.0, math.nan, True), (1.5, 3.0, True), (0.0, math.inf, True), (2.0, 2.0, False),
    (math.nan, 3.0, False), (-0.5, math.nan, False)])
def test_clip_spans(start, end, ok):
    clips = pd.DataFrame({"clip_id": ["c"], "video_path": ["c.mp4"], "start": [start],
                          "end": [end], "split": ["train"], "sentences": [["a clip"]]})
    if ok:
        assert len(check_clip_table(clips, "clips")) == 1
    else:
        with pytest.raises(AnnotationError, match="need 0 <= start < end"):
            check_clip_table(clips, "clips")


def test_audio_span_past_the_end_is_a_decode_error(tmp_path):
    """Past the end with audio only (no frames to miss) is an error too; a span that ends past
    the end is cut there."""
    video = str(write_good_clip(tmp_path / "clip.mp4"))
    with pytest.raises(DecodeError, match=r"clip\.mp4: the span starts at 2\.00 s, at or after "
                                          r"the end of the file \(2\.00 s\)"):
        decode_media(video, [AudioSpec()], 2.0)
    media = decode_media(video, [AudioSpec()], 1.5, 4.0)
    assert media.duration == pytest.approx(0.5, abs=0.05)
