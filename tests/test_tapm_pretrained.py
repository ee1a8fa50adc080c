"""TAPM with a published GPT-2 (``pretrained``): the real loading code on a tiny GPT-2 that the
tests save as `transformers` saves ``gpt2`` (config, weights, a byte-level BPE tokenizer trained
here), the tokenizer behind the tasks' vocabulary interface, the checks made when the DAG is
planned, and that the loaded model learns the toy stories in the tokenizer's tokens."""

from __future__ import annotations

import pytest
import torch

from vlpipe.datasets.task_lists import build_stories
from vlpipe.models import build_model
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.report.tables import language_model_lines
from vlpipe.runs import text_vocabulary
from vlpipe.tasks.storytelling import StorytellingTask
from vlpipe.text.pretrained import OFFSET, PretrainedTokenizer
from vlpipe.training.loop import seed_everything

from .helpers import save_tiny_gpt2, train_task
from .test_tapm import COLOURS, story_world

SIZES = {"layers": 2, "width": 32, "heads": 2}


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A GPT-2 of SIZES with its tokenizer, as ``save_pretrained`` writes one."""
    text = [f"{a} after {b}" for a in COLOURS for b in COLOURS] + ["red first"] * 4
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"), **SIZES, sentences=text)


def tapm(vocab_size: int, **settings):
    seed_everything(0)
    inputs = ModelInputs((FeatureInput("video", "x/pool5", (8,)),), 3, "story", vocab_size,
                         task="storytelling")
    return build_model("tapm", {**SIZES, "segments": 2, "residual_blocks": 1, "dropout": 0.0,
                                "adaptation_epochs": 1, **settings}, inputs)


def test_the_tokenizer_reads_and_writes_sentences_with_padding_kept_free(gpt2_dir):
    tokenizer = PretrainedTokenizer(gpt2_dir)
    ids = tokenizer.encode("Red  after green", 10)
    assert min(ids) >= OFFSET and max(ids) < len(tokenizer)
    assert tokenizer.decode([0, *ids, len(tokenizer), len(tokenizer) + 1]) == "Red after green"
    assert tokenizer.encode("Red after green", 1) == ids[:1]
    with pytest.raises(ValueError, match="no tokenizer in"):
        PretrainedTokenizer(gpt2_dir / "missing")


def test_the_generator_starts_from_the_published_weights(gpt2_dir):
    from transformers import GPT2Model

    published = GPT2Model.from_pretrained(gpt2_dir)
    tokenizer = PretrainedTokenizer(gpt2_dir)
    model = tapm(len(tokenizer), pretrained=str(gpt2_dir))
    gpt2 = model.generator.model
    assert torch.equal(gpt2.h[1].mlp.c_fc.weight, published.h[1].mlp.c_fc.weight)
    assert torch.equal(gpt2.wpe.weight, published.wpe.weight)
    words = published.wte.weight  # (n, W) → rows 1 … n; + padding, end, separator, dummy
    assert gpt2.wte.weight.shape == (len(words) + OFFSET + 3, SIZES["width"])
    assert torch.equal(gpt2.wte.weight[OFFSET : OFFSET + len(words)], words)
    with pytest.raises(ValueError, match="must read its tokenizer"):
        tapm(10, pretrained=str(gpt2_dir))  # a data set's word vocabulary


def test_the_config_is_checked_against_the_directory(gpt2_dir, tmp_path):
    with pytest.raises(ValueError, match=r"no GPT-2 config at .*missing/config\.json"):
        tapm(10, pretrained=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"has \{'layers': 2, 'width': 32, 'heads': 2\}: set"):
        tapm(10, pretrained=str(gpt2_dir), width=64)
    with pytest.raises(ValueError, match="weights of a GPT-2; generator is 'lstm'"):
        tapm(10, pretrained=str(gpt2_dir), generator="lstm")


def test_a_run_with_weights_reads_their_tokenizer_and_the_report_says_so(gpt2_dir, tmp_path):
    experiment = {"model": "tapm", "task": "storytelling"}
    settings = {**SIZES, "pretrained": str(gpt2_dir)}
    assert isinstance(text_vocabulary(experiment, settings, "unused.json"), PretrainedTokenizer)
    lines = language_model_lines([
        {"variant": "TAPM", "language_model": {"name": "GPT-2", "weights": "/w/gpt2"}},
        {"variant": "GPT2-Scratch", "language_model": {"name": "GPT-2", "weights": None}},
        {"variant": "Temp-Attention"}])
    assert lines == ["- `TAPM` generates with GPT-2 started from the weights of `/w/gpt2`",
                     "- `GPT2-Scratch` generates with GPT-2 trained from scratch on the training "
                     "sentences (no pretrained weights)"]


def test_the_pretrained_generator_learns_the_stories_in_its_tokens(gpt2_dir):
    """The toy stories (`tests.test_tapm`) in the tokenizer's tokens: after training, the
    decoded sentences score far above the untrained model's sentence-level CIDEr."""
    clips, features, _ = story_world()
    tokenizer = PretrainedTokenizer(gpt2_dir)
    task = StorytellingTask(clips, features, tokenizer, task_list=build_stories(clips),
                            feature_norm="none", max_frames=3, max_words=8, batch_size=5)
    model = tapm(len(tokenizer), pretrained=str(gpt2_dir), adaptation="none", split=False)
    before = task.evaluate(model, "val", torch.device("cpu"))["sentence"]["CIDEr"]
    train_task(task, model, epochs=15, lr=0.005)
    after = task.evaluate(model, "val", torch.device("cpu"))["sentence"]["CIDEr"]
    assert before < 100 < 500 < after, (before, after)
