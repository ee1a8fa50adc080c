"""The captioning task and the Temp-Attention captioner: batches, teacher forcing equal to
step-by-step decoding, and that the model learns to describe what the clips show."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.models import FAMILIES, build_model
from vlpipe.models.captioner.config import CaptionerConfig
from vlpipe.models.captioner.model import AttentionCaptioner
from vlpipe.tasks.captioning import CaptioningTask
from vlpipe.text import Vocabulary
from vlpipe.training import TrainSettings, train
from vlpipe.training.loop import seed_everything

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "star"]


def shape_world(n_train=96, n_val=24, seed=0):
    """Each clip shows one coloured shape; its captions name the colour and the shape."""
    rng = np.random.default_rng(seed)
    colour_code, shape_code = rng.normal(size=(4, 8)), rng.normal(size=(3, 8))
    rows, features = [], {}
    for i in range(n_train + n_val):
        colour, shape = rng.integers(4), rng.integers(3)
        frames = rng.normal(scale=0.5, size=(rng.integers(2, 6), 8))
        frames += colour_code[colour] + shape_code[shape]
        clip_id = f"c{i:03d}"
        features[clip_id] = frames.astype(np.float32)
        rows.append((clip_id, "train" if i < n_train else "val",
                     [f"a {COLOURS[colour]} {SHAPES[shape]}",
                      f"the {SHAPES[shape]} is {COLOURS[colour]}"]))
    clips = pd.DataFrame(rows, columns=["clip_id", "split", "sentences"])
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    return clips, features, vocab


def make_task(**settings):
    clips, features, vocab = shape_world()
    return CaptioningTask(clips, features, vocab, feature_norm="none", max_frames=6,
                          max_words=8, batch_size=16, **settings)


def make_model(task, **settings):
    seed_everything(0)
    settings = {"word_dim": 16, "hidden": 32, "attention_hidden": 16, "dropout": 0.0, **settings}
    return build_model("captioner", settings, task.model_inputs())


def test_the_registry_builds_the_captioner_for_the_captioning_task():
    task = make_task()
    inputs = task.model_inputs()
    assert (inputs.predicts, inputs.vocab_size, inputs.video_dim) == ("caption", len(task.vocab),
                                                                      task.feature_dim)
    assert FAMILIES["captioner"].config is CaptionerConfig
    model = make_model(task)
    assert isinstance(model, AttentionCaptioner)
    assert model.end_id == len(task.vocab) and model.embed.weight.shape == (len(task.vocab) + 1,
                                                                             16)
    assert (model.frame_proj.in_features, model.frame_proj.out_features) == (task.feature_dim, 32)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['beam'\]"):
        build_model("captioner", {"beam": 3}, inputs)
    with pytest.raises(ValueError, match="attention='dot'"):
        build_model("captioner", {"attention": "dot"}, inputs)
    with pytest.raises(ValueError, match="not 'score'"):
        build_model("captioner", {}, dataclasses.replace(inputs, predicts="score"))


def test_batches_shift_the_caption_by_one_with_the_end_token_at_both_ends():
    task = make_task()
    batch = next(task.train_batches(np.random.default_rng(0)))
    end = len(task.vocab)
    assert (batch.inputs[:, 0] == end).all()
    for inputs, targets in zip(batch.inputs, batch.targets, strict=True):
        words = targets[targets != -100]
        assert words[-1] == end and (words[:-1] != end).all()
        assert torch.equal(inputs[1 : len(words)], words[:-1])  # the next word is the target
        assert (inputs[len(words) :] == 0).all()  # padding


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_teacher_forcing_equals_stepping_and_ignores_frame_padding(attention):
    task = make_task()
    model = make_model(task, attention=attention).eval()
    feats, mask = task.video_batch(task.splits["train"][:4])
    inputs = torch.randint(2, len(task.vocab), (4, 5))
    forced = model(feats, mask, inputs)  # (B, T, V + 1)
    state = model.start(feats, mask)
    for t in range(5):
        log_probs, state = model.step(inputs[:, t], state)
        torch.testing.assert_close(forced[:, t], log_probs)
    garbage = feats.clone()
    garbage[~mask] = 1e3
    torch.testing.assert_close(model(garbage, mask, inputs), forced)
    assert forced.shape == (4, 5, len(task.vocab) + 1)
    torch.testing.assert_close(forced.exp().sum(-1), torch.ones(4, 5))


@pytest.mark.skipif(shutil.which("java") is None, reason="coco-caption metrics need Java")
@pytest.mark.parametrize("beam", [1, 3])
def test_captioner_learns_to_name_colour_and_shape(tmp_path, beam):
    task = make_task(beam=beam)
    model = make_model(task)
    untrained = task.evaluate(model, "val", torch.device("cpu"))["caption"]
    train(model, task, TrainSettings(epochs=25, lr=0.01, device="cpu"), tmp_path)
    captions = task.generate(model, task.splits["val"], torch.device("cpu"))
    named = [sum(word in caption.split() for word in reference.split()[1:])
             for clip, caption in captions.items()
             for reference in task.references[clip][:1]]  # "a <colour> <shape>"
    assert np.mean([n == 2 for n in named]) > 0.8  # colour and shape right in most clips
    trained = task.evaluate(model, "val", torch.device("cpu"))["caption"]
    assert trained["CIDEr"] > untrained["CIDEr"] + 100 and trained["BLEU-1"] > 60


def test_examples_are_the_first_test_clips_decoded_beside_their_references():
    clips, features, vocab = shape_world()
    clips.loc[clips.index[-3:], "split"] = "test"
    task = CaptioningTask(clips, features, vocab, feature_norm="none", max_frames=6,
                          max_words=8)
    model = make_model(task)
    examples = task.examples(model, torch.device("cpu"), count=2)
    first = clips["clip_id"].tolist()[-3:-1]
    decoded = task.generate(model, first, torch.device("cpu"))
    assert [(e["clip_id"], e["decoded"]) for e in examples] == [(c, decoded[c]) for c in first]
    assert examples[0]["references"] == clips["sentences"].iloc[-3]  # every caption of the clip


def test_validation_decodes_greedily_and_the_test_with_the_tasks_beam(monkeypatch):
    """Validation runs every epoch and only picks the checkpoint: greedy; test: ``beam``."""
    from vlpipe.tasks import captioning

    clips, features, vocab = shape_world()
    clips.loc[clips.index[-3:], "split"] = "test"
    task = CaptioningTask(clips, features, vocab, feature_norm="none", max_frames=6,
                          max_words=8, beam=3)
    beams, decode = [], captioning.decode
    monkeypatch.setattr(captioning, "decode", lambda *args: beams.append(args[-1]) or decode(*args))
    monkeypatch.setattr(captioning, "caption_metrics", lambda *args: {"CIDEr": 0.0})
    model = make_model(task)
    for split in ("val", "test"):
        task.evaluate(model, split, torch.device("cpu"))
    assert beams == [1, 3]
