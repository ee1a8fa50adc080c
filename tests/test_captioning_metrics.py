"""The coco-caption metrics through `caption_metrics`, against hand-computed values."""

import math
import shutil

import pytest

from vlpipe.metrics import caption_metrics

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="the coco-caption tokenizer and METEOR need Java")
REFERENCES = {"a": ["A red circle grows.", "the circle is red"], "b": ["a blue star"]}


@pytest.fixture(scope="module")
def identical():
    return caption_metrics(REFERENCES, {"a": "a red circle grows", "b": "A blue star."})


def test_a_caption_equal_to_a_reference_scores_the_maximum(identical):
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert identical[name] == pytest.approx(1.0, abs=1e-6), name
    assert identical["CIDEr"] > 5.0  # identical captions; idf from only two items


def test_bleu_1_and_rouge_l_hand_computed():
    # "a green circle" vs "a red circle grows": 2 of 3 unigrams match (a, circle); brevity
    # penalty exp(1 − 4/3); LCS = 2 → P = 2/3, R = 2/4, F = (1 + 1.2²)·P·R / (R + 1.2²·P)
    scores = caption_metrics({"x": ["a red circle grows"]}, {"x": "a green circle"},
                             ("BLEU", "ROUGE_L"))
    assert scores["BLEU-1"] == pytest.approx(2 / 3 * math.exp(1 - 4 / 3), rel=1e-6)
    p, r = 2 / 3, 2 / 4
    assert scores["ROUGE-L"] == pytest.approx((1 + 1.44) * p * r / (r + 1.44 * p), rel=1e-6)
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"}


def test_scores_do_not_depend_on_item_order():
    predictions = {"a": "a green circle", "b": "a blue star"}
    forward = caption_metrics(REFERENCES, predictions, ("BLEU", "CIDEr"))
    backward = caption_metrics(dict(reversed(REFERENCES.items())),
                               dict(reversed(predictions.items())), ("BLEU", "CIDEr"))
    assert forward == backward


def test_an_empty_caption_scores_zero():
    scores = caption_metrics({"x": ["a red circle"]}, {"x": ""}, ("BLEU", "ROUGE_L", "CIDEr"))
    assert scores["ROUGE-L"] == 0.0 and scores["CIDEr"] == 0.0 and scores["BLEU-1"] < 1e-6


def test_mismatched_items_are_errors_naming_them():
    with pytest.raises(ValueError, match=r"captions without references: \['z'\]"):
        caption_metrics(REFERENCES, {"a": "x", "b": "y", "z": "w"})
    with pytest.raises(ValueError, match=r"references without a caption: \['b'\]"):
        caption_metrics(REFERENCES, {"a": "x"})
    with pytest.raises(ValueError, match=r"without reference captions: \['b'\]"):
        caption_metrics({"a": ["x"], "b": []}, {"a": "x", "b": "y"})
    with pytest.raises(ValueError, match="unknown captioning metric"):
        caption_metrics(REFERENCES, {"a": "x", "b": "y"}, ("SPICE",))
