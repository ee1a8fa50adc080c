"""TAPM and the storytelling task: segment pooling and the sequential coherence loss against
hand-computed values, the phases of split training, decoding that agrees with teacher forcing,
and that a story model learns on a toy world whose sentences depend on the neighbouring clips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.datasets.task_lists import build_stories
from vlpipe.models import build_model
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.models.tapm.coherence import coherence_loss
from vlpipe.models.tapm.encoder import segment_means
from vlpipe.tasks.storytelling import StoryBatch, StorytellingTask
from vlpipe.text import Vocabulary
from vlpipe.training.loop import seed_everything

from .helpers import train_task

COLOURS = ["red", "green", "blue", "yellow"]


def test_segment_means_split_each_clips_valid_frames_evenly():
    feats = torch.arange(4.0)[None, :, None].expand(2, 4, 1)  # frames 0, 1, 2, 3
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    means = segment_means(feats, mask, segments=2)[..., 0]
    assert means.tolist() == [[0.0, 1.5], [0.0, 0.0]]  # spans [0, 1), [1, 3); frame 0 twice


def test_coherence_loss_by_hand():
    """Three clips with orthogonal v̂: projections that match their targets cost nothing; past
    projections equal to the current clip's v̂ cost, for clip 1, (1 + 1 − 0) + (1 + 0 − 0) and
    the same for clip 2, averaged: 3."""
    visual = torch.eye(3)[None]  # (1, C=3, W=3)
    matched = {"past": torch.roll(visual, 1, dims=1), "current": visual,
               "future": torch.roll(visual, -1, dims=1)}
    assert coherence_loss(visual, matched).item() == 0.0
    wrong_past = {**matched, "past": visual}
    assert coherence_loss(visual, wrong_past).item() == pytest.approx(3.0)


# --- a toy world of stories --------------------------------------------------------------

def story_world(n_stories=40, seed=0):
    """Stories of 5 clips, each clip one colour's code plus noise; clip i's sentence names its
    colour and the previous clip's ("red after green"), the first one "red first": a sentence
    can be told only from the clip and its neighbour."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(4, 8))
    rows, features = [], {}
    for s in range(n_stories):
        colours = rng.integers(4, size=5)
        split = "train" if s < n_stories - 10 else ("val" if s < n_stories - 5 else "test")
        for i, colour in enumerate(colours):
            clip = f"s{s:03d}c{i}"
            features[clip] = (codes[colour] + rng.normal(scale=0.2, size=(3, 8))).astype(
                np.float32)
            previous = "first" if i == 0 else f"after {COLOURS[colours[i - 1]]}"
            rows.append((clip, split, [f"{COLOURS[colour]} {previous}"]))
    clips = pd.DataFrame(rows, columns=["clip_id", "split", "sentences"])
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    return clips, features, vocab


def make_task(**settings):
    clips, features, vocab = story_world()
    return StorytellingTask(clips, features, vocab, task_list=build_stories(clips),
                            feature_norm="none", max_frames=3, max_words=4, batch_size=5,
                            **settings)


def make_model(task, **settings):
    seed_everything(0)
    inputs = ModelInputs((FeatureInput("video", "x/pool5", (8,)),), 3, "story", len(task.vocab),
                         task="storytelling")
    settings = {"layers": 2, "width": 32, "heads": 2, "segments": 2, "residual_blocks": 1,
                "dropout": 0.0, "adaptation_epochs": 1, **settings}
    return build_model("tapm", settings, inputs)


def first_batch(task) -> StoryBatch:
    return next(task.train_batches(np.random.default_rng(0)))


def test_story_batches_hold_whole_sets():
    task = make_task()
    batch = first_batch(task)
    assert batch.feats.shape == (5, 5, 3, 8) and batch.words.shape == (5, 5, 3)
    assert batch.targets.shape == (5, 5, 4)
    first = batch.words[:, :, 1] == task.vocab.ids["first"]  # "red first": 2 words + end
    assert (batch.targets[..., 2][first] == task.end_id).all()
    assert (batch.targets[..., 3][first] == -100).all() and first.any()
    assert task.num_items("test") == 5


@pytest.mark.parametrize("generator", ["gpt2", "lstm"])
def test_decoding_step_by_step_gives_the_teacher_forced_probabilities(generator):
    task = make_task()
    model = make_model(task, generator=generator).eval()
    batch = first_batch(task)
    with torch.no_grad():
        log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.words)
        assert log_probs.shape == (5, 5, 4, len(task.vocab) + 1) and auxiliary == 0.0
        state = model.start(batch.feats, batch.feat_mask)
        tokens = torch.full((25,), model.start_id)
        for t in range(4):
            stepped, state = model.step(tokens, state)
            torch.testing.assert_close(stepped, log_probs.flatten(0, 1)[:, t], atol=1e-4,
                                       rtol=1e-4)
            tokens = batch.words.flatten(0, 1)[:, min(t, 2)]


def test_split_training_adapts_the_encoder_alone_then_generates():
    task = make_task()
    batch = first_batch(task)
    model = make_model(task)
    model.train()
    model.start_epoch(1)  # adaptation: the coherence loss only, the generator fixed
    log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.words)
    assert log_probs is None and auxiliary > 0
    task.loss(model, batch).backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert model.encoder.project[0].weight.grad is not None
    model.zero_grad()
    model.start_epoch(2)  # generation: the words' loss only, everything trains
    log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.words)
    assert log_probs is not None and auxiliary == 0.0
    assert all(p.requires_grad for p in model.generator.parameters())


def test_the_ablations_flags_choose_each_epochs_losses():
    task = make_task()
    batch = first_batch(task)
    joint = make_model(task, split=False)  # -Split: both losses from the first epoch
    joint.start_epoch(1)
    log_probs, auxiliary = joint(batch.feats, batch.feat_mask, batch.words)
    assert log_probs is not None and auxiliary > 0
    encoder_first = make_model(task, adaptation="none")  # -A+Split: words, encoder alone
    encoder_first.start_epoch(1)
    log_probs, auxiliary = encoder_first(batch.feats, batch.feat_mask, batch.words)
    assert log_probs is not None and auxiliary == 0.0
    assert not any(p.requires_grad for p in encoder_first.generator.parameters())
    for flags in ({"adaptation_input": "caption"}, {"adaptation": "visual"}):
        model = make_model(task, **flags)
        model.start_epoch(1)
        assert model(batch.feats, batch.feat_mask, batch.words)[1] > 0, flags


def test_the_builder_and_the_task_name_what_is_missing():
    inputs = ModelInputs((FeatureInput("video", "x/pool5", (8,)),), 3, "caption", 10)
    with pytest.raises(ValueError, match="TAPM tells stories, not 'caption'"):
        build_model("tapm", {}, inputs)
    with pytest.raises(ValueError, match="adaptation='both'"):
        build_model("tapm", {"adaptation": "both"}, inputs)
    clips, features, vocab = story_world(n_stories=12)
    with pytest.raises(ValueError, match="no story sets"):
        StorytellingTask(clips, features, vocab, task_list=build_stories(clips.iloc[:0]))


def test_gpt2_learns_sentences_that_depend_on_the_previous_clip():
    """Trained on the toy world, the decoded sentences name each clip's colour and its
    predecessor's: sentence-level CIDEr on held-out stories near the perfect 700 of this
    world's 25 sentences (validation metrics: no METEOR, whose Java process is slow)."""
    task = make_task()
    model = make_model(task, adaptation="none", split=False)
    before = task.evaluate(model, "val", torch.device("cpu"))["sentence"]["CIDEr"]
    train_task(task, model, epochs=15, lr=0.005)
    metrics = task.evaluate(model, "val", torch.device("cpu"))
    assert before < 100 < 500 < metrics["sentence"]["CIDEr"], (before, metrics)
    examples = task.examples(model, torch.device("cpu"), count=1)
    assert len(examples[0]["decoded"]) == 5 and examples[0]["references"][0].endswith("first")


def test_the_lstm_generator_learns_the_words():
    """The LSTM generator learns more slowly (the clip reaches it only through its state):
    its training loss falls to below half of the first epoch's."""
    task = make_task()
    losses = train_task(task, make_model(task, generator="lstm", adaptation="none", split=False),
                        epochs=10, lr=0.01)
    assert losses[-1] < 0.5 * losses[0], losses


def test_quarantined_clips_take_their_whole_story_out():
    from vlpipe.runs import without_clips

    clips, _, _ = story_world(n_stories=12)
    stories = build_stories(clips)
    kept = without_clips(stories, {"s001c3", "nowhere"})
    assert len(kept) == len(stories) - 1 and "s001c0+5" not in set(kept["set_id"])
    items = pd.DataFrame({"clip_id": ["a", "b"], "sentence": ["x", "y"]})
    assert without_clips(items, ["b"])["clip_id"].tolist() == ["a"]
