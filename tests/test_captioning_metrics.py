"""The coco-caption metrics through `caption_metrics`, against hand-computed values.

METEOR starts a JVM that loads its paraphrase table (~10 s): two module fixtures call it, every
other case leaves METEOR out (the tokenizer's JVM alone takes a fraction of a second).
"""

import contextlib
import gc
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vlpipe.metrics import caption_metrics
from vlpipe.metrics import captioning as module

java = pytest.mark.skipif(shutil.which("java") is None,
                          reason="the coco-caption tokenizer and METEOR need Java")
REFERENCES = {"a": ["A red circle grows.", "the circle is red"], "b": ["a blue star"]}


def children() -> list[str]:
    """This process's child processes (zombies included), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(fields[1]) == os.getpid():
            found.append(f"{stat.parent.name} ({fields[0]})")
    return found


@pytest.fixture(scope="module")
def identical():
    return caption_metrics(REFERENCES, {"a": "a red circle grows", "b": "A blue star."})


@pytest.fixture(scope="module")
def unrelated():
    return caption_metrics({"x": ["a red circle grows"], "y": ["the blue star moves"]},
                           {"x": "seven quiet oranges", "y": ""})


@java
def test_a_caption_equal_to_a_reference_scores_the_maximum(identical):
    # BLEU: every n-gram matches (a's 4-gram included) and hypothesis length = closest reference
    # length (4 + 3), so 1 up to the toolkit's 1e-9 smoothing. METEOR 1.5: all words matched in
    # one chunk sets the fragmentation penalty to 0, so exactly 1. ROUGE-L: LCS = both lengths.
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert identical[name] == pytest.approx(1.0, abs=1e-6), name
    # CIDEr-D by hand: idf = log(2 items) − log(df): "a" is in both items' references, so it
    # weighs 0; every other n-gram is in one. Item b ("a blue star"): cosine 1 for 1..3-grams, but
    # it has no 4-gram (norm 0 → 0): 10 · (1 + 1 + 1 + 0) / 4 = 7.5. Item a: against its equal
    # reference 1 for n = 1..4; against "the circle is red" unigrams {red, circle, grows} · {the,
    # circle, is, red} → 2 / (√3 · 2) = 1/√3, no shared bigram; same length (no penalty); mean
    # over n, then over the 2 references, ×10: 10 · (4 + 1/√3) / 4 / 2.
    item_a = 10 * (4 + 1 / math.sqrt(3)) / 4 / 2
    assert identical["CIDEr"] == pytest.approx((item_a + 7.5) / 2, rel=1e-9)
    assert list(identical) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L",
                               "CIDEr"]


@java
def test_unrelated_or_empty_captions_score_zero(unrelated):
    # no word, stem, synonym or paraphrase matches: METEOR 0; an empty caption scores 0 too
    assert unrelated["METEOR"] == pytest.approx(0.0, abs=1e-9)
    assert unrelated["ROUGE-L"] == 0.0 and unrelated["CIDEr"] == 0.0
    assert unrelated["BLEU-1"] < 1e-9  # 0 up to the toolkit's 1e-15 numerator


@java
def test_no_java_process_is_left_behind(identical, unrelated):
    gc.collect()
    assert children() == []


@java
def test_bleu_hand_computed():
    # "a red a square moves" vs "a red circle grows slowly": same length (brevity penalty 1);
    # unigrams: "a" twice but clipped to the reference's one, "red": 2 of 5; bigrams: "a red",
    # 1 of 4; no common trigram (0 up to the toolkit's 1e-15).
    scores = caption_metrics({"x": ["a red circle grows slowly"]}, {"x": "a red a square moves"},
                             ("BLEU",))
    assert scores["BLEU-1"] == pytest.approx(2 / 5, rel=1e-6)
    assert scores["BLEU-2"] == pytest.approx(math.sqrt(2 / 5 * 1 / 4), rel=1e-6)
    assert scores["BLEU-3"] < 1e-4 and scores["BLEU-4"] < 1e-4
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"}


@java
def test_bleu_brevity_penalty_and_rouge_l_hand_computed():
    # "a green circle" vs "a red circle grows": 2 of 3 unigrams match (a, circle); brevity
    # penalty exp(1 − 4/3); LCS = 2 → P = 2/3, R = 2/4, F = (1 + 1.2²)·P·R / (R + 1.2²·P)
    scores = caption_metrics({"x": ["a red circle grows"]}, {"x": "a green circle"},
                             ("BLEU", "ROUGE_L"))
    assert scores["BLEU-1"] == pytest.approx(2 / 3 * math.exp(1 - 4 / 3), rel=1e-6)
    p, r = 2 / 3, 2 / 4
    assert scores["ROUGE-L"] == pytest.approx((1 + 1.44) * p * r / (r + 1.44 * p), rel=1e-6)
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"}


@java
def test_rouge_l_takes_best_precision_and_best_recall_over_references():
    # the toolkit's choice: P from "a red circle grows slowly" (3/3), R from "red" (1/1) → 1
    scores = caption_metrics({"x": ["a red circle grows slowly", "red"]}, {"x": "a red circle"},
                             ("ROUGE_L",))
    assert scores == {"ROUGE-L": pytest.approx(1.0)}


@java
def test_cider_of_captions_equal_to_their_only_reference_is_10():
    # 4 words: an n-gram of every order; no n-gram in both items (idf log 2 for all)
    scores = caption_metrics({"x": ["red circle grows slowly"], "y": ["blue star moves fast"]},
                             {"x": "red circle grows slowly", "y": "blue star moves fast"},
                             ("CIDEr",))
    assert scores == {"CIDEr": pytest.approx(10.0, rel=1e-9)}


@java
def test_scores_do_not_depend_on_item_order():
    predictions = {"a": "a green circle", "b": "a blue star", "c": "the star"}
    references = {**REFERENCES, "c": ["a star", "the small star shines"]}
    forward = caption_metrics(references, predictions, ("BLEU", "ROUGE_L", "CIDEr"))
    backward = caption_metrics(dict(reversed(references.items())),
                               dict(reversed(predictions.items())), ("BLEU", "ROUGE_L", "CIDEr"))
    assert forward == backward


@java
def test_line_breaks_inside_a_caption_do_not_shift_the_others():
    # the toolkit's tokenizer reads a caption per line; "\r" would split "a red\rcircle" in two
    scores = caption_metrics({"a": ["a red circle"], "b": ["a blue star"]},
                             {"a": "a red\rcircle", "b": "a blue\u2028star"}, ("ROUGE_L",))
    assert scores == {"ROUGE-L": pytest.approx(1.0)}


@java
def test_meteor_process_is_reaped_after_an_error(monkeypatch):
    """An error inside METEOR's scoring leaves the toolkit's lock held (its ``__del__`` would then
    wait forever); `cat` stands in for the METEOR JVM, so the reply is no number."""
    popen = subprocess.Popen

    def fake(cmd, *args, **kwargs):
        return popen(["cat"] if "meteor-1.5.jar" in cmd else cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", fake)
    with pytest.raises(ValueError):
        caption_metrics({"x": ["a red circle"]}, {"x": "a red circle"}, ("METEOR",))
    gc.collect()  # runs the scorer's __del__: returns, as the lock is free again
    assert children() == []


def test_mismatched_items_are_errors_naming_them():
    with pytest.raises(ValueError, match=r"captions without references: \['z'\]"):
        caption_metrics(REFERENCES, {"a": "x", "b": "y", "z": "w"})
    with pytest.raises(ValueError, match=r"references without a caption: \['b'\]"):
        caption_metrics(REFERENCES, {"a": "x"})
    with pytest.raises(ValueError, match=r"without reference captions: \['b'\]"):
        caption_metrics({"a": ["x"], "b": []}, {"a": "x", "b": "y"})
    with pytest.raises(ValueError, match="no captions"):
        caption_metrics({}, {})
    with pytest.raises(ValueError, match="unknown captioning metric"):
        caption_metrics(REFERENCES, {"a": "x", "b": "y"}, ("SPICE",))
    with pytest.raises(TypeError, match="not one string"):
        caption_metrics({"a": "a red circle"}, {"a": "x"})


@java
def test_a_reference_without_words_is_an_error():
    with pytest.raises(ValueError, match=r"reference caption without words: \['b'\]"):
        caption_metrics({"a": ["a red circle"], "b": ["a star", " ... "]}, {"a": "x", "b": "y"},
                        ("BLEU",))


def test_without_java_it_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install a Java runtime"):
        caption_metrics(REFERENCES, {"a": "x", "b": "y"}, ("BLEU",))


@java
def test_corpora_are_scored_as_alone_with_one_meteor_process(monkeypatch):
    """`corpora_metrics` scores each corpus on its own (CIDEr's document frequencies too) but
    starts METEOR once for all of them; a fake scorer stands in for the JVM."""
    other = ({"x": ["a green square"], "y": ["the star shines"]},
             {"x": "a green square", "y": "a star"})
    mine = (REFERENCES, {"a": "a red circle", "b": "a star"})
    together = module.corpora_metrics({"mine": mine, "other": other}, ("BLEU", "CIDEr"))
    assert together == {"mine": caption_metrics(*mine, ("BLEU", "CIDEr")),
                        "other": caption_metrics(*other, ("BLEU", "CIDEr"))}

    started, scored = [], []

    class Scorer:
        def compute_score(self, gts, res):
            scored.append(sorted(res))
            return 0.5, []

    @contextlib.contextmanager
    def fake_meteor():
        started.append(1)
        yield Scorer()

    monkeypatch.setattr(module, "_meteor", fake_meteor)
    scores = module.corpora_metrics({"mine": mine, "other": other}, ("METEOR",))
    assert scores == {"mine": {"METEOR": 0.5}, "other": {"METEOR": 0.5}}
    assert started == [1] and scored == [["a", "b"], ["x", "y"]]
