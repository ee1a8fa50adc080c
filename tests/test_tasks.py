"""The task objectives: sampled-negative retrieval, multiple choice and fill-in-the-blank, on
hand-made data and stand-in models whose scores are known."""

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.datasets.base import BLANK_MARKER
from vlpipe.metrics import choice_accuracy
from vlpipe.models import build_model
from vlpipe.models.jsfusion.config import JSFusionConfig
from vlpipe.models.jsfusion.model import JSFusion
from vlpipe.tasks.base import PairBatch
from vlpipe.tasks.fill_in_blank import FillInBlankTask
from vlpipe.tasks.multiple_choice import MultipleChoiceTask
from vlpipe.tasks.retrieval import RetrievalTask
from vlpipe.text import Vocabulary

from .helpers import train_task

COLOURS = ["red", "blue", "green", "yellow", "pink", "white", "black", "brown", "gray", "cyan",
           "orange", "purple"]


def world(n_train=12, n_test=4):
    """Clip k shows colour k: its feature is the one-hot of k (3 identical steps)."""
    n = n_train + n_test
    clips = pd.DataFrame({
        "clip_id": [f"c{k}" for k in range(n)],
        "split": ["train"] * n_train + ["test"] * n_test,
        "sentences": [[f"a {COLOURS[k % len(COLOURS)]} circle",
                       f"the {COLOURS[k % len(COLOURS)]} circle grows"] for k in range(n)]})
    features = {f"c{k}": np.tile(np.eye(n, dtype=np.float32)[k], (3, 1)) for k in range(n)}
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    return clips, features, vocab


class ColourMatcher(torch.nn.Module):
    """Scores a pair 1 when the sentence names the clip's colour, else 0: a perfect model."""

    def __init__(self, vocab: Vocabulary, n_clips: int):
        super().__init__()
        self.colour_of_clip = torch.tensor([vocab.ids[COLOURS[k % len(COLOURS)]]
                                            for k in range(n_clips)])

    def encode_video(self, feats, mask):
        return feats, mask

    def encode_text(self, tokens, mask):
        return tokens, mask

    def pair_scores(self, v_enc, v_mask, t_enc, t_mask):
        colour = self.colour_of_clip[v_enc[:, 0].argmax(dim=1)]  # (P,)
        return (t_enc == colour[:, None]).any(dim=1).float()


def test_sampled_negatives_are_other_training_clips():
    clips, features, vocab = world()
    task = RetrievalTask(clips, features, vocab, batch_size=4, num_negatives=5,
                         feature_norm="none")
    batches = list(task.train_batches(np.random.default_rng(0)))
    assert len(batches) == 3  # 12 training clips, 4 queries per batch
    for batch in batches:
        assert isinstance(batch, PairBatch)
        assert batch.clip_index.shape == batch.sentence_index.shape == (4, 6)
        clip_of = batch.feats[:, 0].argmax(dim=1)  # (U,) clip number of each distinct clip
        for row, sentences in zip(batch.clip_index, batch.sentence_index, strict=True):
            numbers = clip_of[row].tolist()
            assert len(set(numbers)) == 6 and all(k < 12 for k in numbers)  # distinct, train
            assert len(set(sentences.tolist())) == 1  # one sentence against 6 clips
        assert (batch.positive == 0).all()
    # a perfect scorer has no margin violation at margin 1 (its scores are 1 vs 0)
    model = ColourMatcher(vocab, 16)
    task.margin = 1.0
    assert all(task.loss(model, b).item() == 0.0 for b in batches)
    task.margin = 1.5  # 0 − 1 + 1.5 = 0.5 per negative, 5 negatives → 2.5
    assert task.loss(model, batches[0]).item() == pytest.approx(2.5)


def test_retrieval_list_sets_the_test_pairs():
    clips, features, vocab = world()
    listed = pd.DataFrame({"clip_id": ["c13", "c12"], "sentence": ["the pink circle",
                                                                     "a green circle"]})
    task = RetrievalTask(clips, features, vocab, task_list=listed, feature_norm="none")
    assert task.num_items("test") == 2
    assert task.eval_pairs["test"][0] == ("c13", vocab.encode("the pink circle", 40))
    with pytest.raises(KeyError, match="c99"):
        RetrievalTask(clips, features, vocab, feature_norm="none",
                      task_list=pd.DataFrame({"clip_id": ["c99"], "sentence": ["red"]}))


def mc_items(rows):
    return pd.DataFrame([{"item_id": f"mc{i}", "clip_id": c, "split": s, "candidates": cands,
                          "answer": a} for i, (c, s, cands, a) in enumerate(rows)])


def test_multiple_choice_accuracy_and_training_candidates():
    clips, features, vocab = world()
    items = mc_items([
        ("c12", "test", ["a red circle", "a white circle", "a pink circle", "a brown circle",
                         "a gray circle"], 1),  # c12 shows white (12 % 12 = 0 → red!)
        ("c13", "test", ["a blue circle", "a cyan circle", "a pink circle", "a red circle",
                         "a black circle"], 0),
        ("c0", "train", ["a gray circle", "a red circle", "a cyan circle", "a pink circle",
                         "a white circle"], 1),
    ])
    task = MultipleChoiceTask(clips, features, vocab, task_list=items, batch_size=4,
                              feature_norm="none")
    model = ColourMatcher(vocab, 16)
    # c12 shows red (candidate 0, but answer says 1) → wrong; c13 shows blue → right: 50 %
    assert task.evaluate(model, "test", torch.device("cpu")) == {"mc": {"accuracy": 50.0}}
    assert task.num_items("test") == 2 and task.report_info()["n_candidates"] == 5
    # training: c0's candidates are its own sentence, its 4 listed distractors, 5 random
    candidates = task._candidates("c0", np.random.default_rng(0))
    assert len(candidates) == 10 and candidates[0] in task.sentences["c0"]
    assert candidates[1:5] == [vocab.encode(s, 40) for s in
                               ["a gray circle", "a cyan circle", "a pink circle",
                                "a white circle"]]
    assert all(c not in task.sentences["c0"] for c in candidates[5:])
    batch = next(task.train_batches(np.random.default_rng(0)))
    assert batch.clip_index.shape == (4, 10)
    assert (batch.clip_index == batch.clip_index[:, :1]).all()  # one clip per query


def test_choice_accuracy_counts_ties_and_unknown_answers_as_wrong():
    scores = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
    assert choice_accuracy(scores, np.array([1, 0, 0, -1])) == 50.0


def fib_items(rows):
    return pd.DataFrame([{"item_id": f"fib{i}", "clip_id": c, "split": s, "sentence": text,
                          "answer": a} for i, (c, s, text, a) in enumerate(rows)])


def test_fill_in_blank_encoding_keeps_the_blank_inside_the_word_limit():
    clips, features, vocab = world()
    items = fib_items([("c1", "train", f"the {BLANK_MARKER} circle grows", "blue"),
                       ("c2", "train", f"a circle grows the circle {BLANK_MARKER} a circle",
                        "green"),
                       ("c3", "test", f"a {BLANK_MARKER} circle", "violet")])  # OOV answer
    task = FillInBlankTask(clips, features, vocab, task_list=items, max_words=4,
                           feature_norm="none")
    first, second = task.items["train"]
    ids = vocab.ids
    assert first.tokens == [ids["the"], vocab.blank_id, ids["circle"], ids["grows"]]
    assert (first.blank, first.answer) == (1, ids["blue"])
    # 5 words before the gap, 2 after, limit 4: keep the gap and the words nearest to it
    assert second.tokens == [ids["the"], ids["circle"], vocab.blank_id, ids["a"]]
    assert second.blank == 2
    assert task.items["test"][0].answer == -1


def test_fill_in_blank_model_learns_the_colour_it_sees():
    """The blanked word is the colour the clip shows; only the video can tell it."""
    clips, features, vocab = world(n_train=48, n_test=24)
    items = fib_items([(c, split, f"a {BLANK_MARKER} circle", COLOURS[k % len(COLOURS)])
                       for k, (c, split) in enumerate(zip(clips["clip_id"], clips["split"],
                                                          strict=True))])
    features = {c: np.tile(np.eye(len(COLOURS), dtype=np.float32)[k % len(COLOURS)], (3, 1))
                for k, c in enumerate(clips["clip_id"])}
    task = FillInBlankTask(clips, features, vocab, task_list=items, batch_size=8,
                           feature_norm="none")
    torch.manual_seed(0)
    width = dict(word_dim=8, encoder_hidden=8, d1=16, d2=16, d3=16, d4=16, conv_channels=8,
                 d5=16, d6=16, d7=16, dropout=0.0)
    inputs = task.model_inputs()
    assert (inputs.predicts, inputs.vocab_size, inputs.video_dim) == ("word", len(vocab),
                                                                      len(COLOURS))
    model = build_model("jsfusion", width, inputs)  # the task's "word" sets the output
    assert isinstance(model, JSFusion)
    assert model.config == JSFusionConfig(output="word", **width)
    cpu = torch.device("cpu")
    before = task.evaluate(model, "test", cpu)["fib"]["accuracy"]
    train_task(task, model, epochs=25, lr=3e-3)
    after = task.evaluate(model, "test", cpu)["fib"]["accuracy"]
    assert after >= 75.0 > before + 40  # chance: 1 in 12 colours
