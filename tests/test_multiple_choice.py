"""Multiple choice end to end: every candidate scores (even one of unknown words only), and
training queries are GT + the clip's 4 listed distractors + random sentences, all distinct."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.datasets.task_lists import build_multiple_choice
from vlpipe.models.jsfusion.config import JSFusionConfig
from vlpipe.models.jsfusion.model import JSFusion
from vlpipe.tasks.multiple_choice import MultipleChoiceTask
from vlpipe.text import Vocabulary

pytestmark = pytest.mark.usefixtures("single_thread")

COLOURS = ["red", "blue", "green", "yellow", "pink", "white", "black", "brown", "gray", "cyan"]
TINY = dict(word_dim=12, encoder_hidden=8, d1=8, d2=8, d3=8, d4=8, conv_channels=6, d5=8, d6=8,
            d7=4)


def colour_world(n_train: int = 20, n_test: int = 5):
    """Clip k says "a <colour k mod 10> circle" (train clips k and k + 10 say the same)."""
    n = n_train + n_test
    clips = pd.DataFrame({"clip_id": [f"c{k}" for k in range(n)],
                          "split": ["train"] * n_train + ["test"] * n_test,
                          "sentences": [[f"a {COLOURS[k % 10]} circle"] for k in range(n)]})
    rng = np.random.default_rng(0)
    features = {f"c{k}": rng.normal(size=(3, 6)).astype(np.float32) for k in range(n)}
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    return clips, features, vocab


def mc_items(rows):
    return pd.DataFrame([{"item_id": f"mc{i}", "clip_id": c, "split": s, "candidates": cands,
                          "answer": a} for i, (c, s, cands, a) in enumerate(rows)])


def circles(*colours: str) -> list[str]:
    return [f"a {colour} circle" for colour in colours]


@pytest.mark.parametrize("overrides", [{}, {"text_encoder": "lstm"}, {"text_encoder": "fc"},
                                       {"fusion": "lstm"}])
def test_a_candidate_of_unknown_words_only_scores(overrides):
    clips, features, vocab = colour_world()
    unknown = "zebras juggle quietly"  # no word of it is in the vocabulary
    items = mc_items([
        ("c20", "test", [*circles("red", "blue"), unknown, *circles("green", "pink")], 0),
        ("c21", "test", circles("blue", "white", "black", "brown", "gray"), 0),
        ("c0", "train", [*circles("red", "blue", "green", "yellow"), unknown], 0),
    ])
    task = MultipleChoiceTask(clips, features, vocab, task_list=items, batch_size=20,
                              feature_norm="none")
    torch.manual_seed(0)
    model = JSFusion(JSFusionConfig(**{**TINY, **overrides}), len(vocab), task.feature_dim)
    model.train()
    loss = task.loss(model, next(task.train_batches(np.random.default_rng(0))))  # c0 in it
    assert torch.isfinite(loss)
    loss.backward()
    scores, answers = task.score(model.eval(), "test", torch.device("cpu"))
    assert scores.shape == (2, 5) and np.isfinite(scores).all()
    assert answers.tolist() == [0, 0]


def test_training_candidates_are_gt_its_4_distractors_and_5_distinct_random():
    clips, features, vocab = colour_world()
    distractors = circles("blue", "green", "yellow", "pink")
    items = mc_items([("c0", "train", [distractors[0], "a red circle", *distractors[1:]], 1),
                      ("c20", "test", circles("red", "blue", "green", "yellow", "pink"), 0)])
    task = MultipleChoiceTask(clips, features, vocab, task_list=items, feature_norm="none")
    encode = task.encode
    for seed in range(5):
        candidates = task._candidates("c0", np.random.default_rng(seed))
        assert len(candidates) == 10
        assert candidates[0] == encode("a red circle")  # GT (c10 says the same: never drawn)
        assert candidates[1:5] == [encode(s) for s in distractors]
        # 5 random negatives, distinct from GT, distractors and one another: here that leaves
        # exactly the 5 colours not yet taken
        assert sorted(candidates[5:]) == sorted(
            encode(s) for s in circles("white", "black", "brown", "gray", "cyan"))


def test_training_items_of_built_lists_carry_their_distractors(caplog):
    clips, features, vocab = colour_world(n_train=10)
    clips["sentences"] = [[f"{s[0]} number {k}"] for k, s in enumerate(clips["sentences"])]
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    items = build_multiple_choice(clips, "msrvtt", seed=0)
    train_items = items[items["split"] == "train"]
    assert sorted(train_items["clip_id"]) == sorted(clips["clip_id"][:10])  # one per clip
    with caplog.at_level(logging.INFO, logger="vlpipe.tasks.multiple_choice"):
        task = MultipleChoiceTask(clips, features, vocab, task_list=items, feature_norm="none")
    assert "distractors" not in caplog.text  # every training clip has its item
    train_ids = set(clips["clip_id"][:10])
    owner = {tuple(task.encode(s[0])): c for c, s in zip(clips["clip_id"], clips["sentences"],
                                                          strict=True)}
    for item in train_items.itertuples():
        listed = [task.encode(s) for k, s in enumerate(item.candidates) if k != item.answer]
        candidates = task._candidates(item.clip_id, np.random.default_rng(0))
        assert candidates[0] == task.encode(item.candidates[item.answer])
        assert candidates[1:5] == listed
        assert len(set(map(tuple, candidates))) == 10  # all distinct
        # the distractors, like the random ones, are sentences of other training clips
        assert {owner[tuple(c)] for c in candidates[1:]} <= train_ids - {item.clip_id}


def test_without_listed_distractors_training_draws_9_random_negatives(caplog):
    clips, features, vocab = colour_world()
    items = mc_items([("c20", "test", circles("red", "blue", "green", "yellow", "pink"), 0)])
    with caplog.at_level(logging.INFO, logger="vlpipe.tasks.multiple_choice"):
        task = MultipleChoiceTask(clips, features, vocab, task_list=items, feature_norm="none")
    assert "20 of 20 training clips have no listed distractors" in caplog.text
    candidates = task._candidates("c3", np.random.default_rng(0))
    assert candidates[0] == task.encode("a yellow circle")
    assert sorted(candidates[1:]) == sorted(  # the 9 other colours, each once
        task.encode(s) for s in circles(*(c for c in COLOURS if c != "yellow")))


def test_too_few_distinct_sentences_for_the_negatives_is_an_error():
    clips, features, vocab = colour_world()
    items = mc_items([("c20", "test", circles("red", "blue", "green", "yellow", "pink"), 0)])
    task = MultipleChoiceTask(clips, features, vocab, task_list=items, feature_norm="none",
                              num_negatives=10)  # only 9 other distinct sentences exist
    with pytest.raises(ValueError, match="10 distinct negative sentences for clip 'c0'"):
        task._candidates("c0", np.random.default_rng(0))
