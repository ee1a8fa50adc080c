"""CT-SAN: concept words from tagged captions, the tracing-LSTM detector, semantic attention,
compact bilinear pooling and the regularisers against hand-computed values, each task's concept
batches and scores, and that the detector and every task model learn on a toy world."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.datasets.task_lists import build_fill_in_blank, build_multiple_choice
from vlpipe.metrics.concepts import precision_recall_at
from vlpipe.models import build_model
from vlpipe.models.ctsan.attention import attention_sparsity
from vlpipe.models.ctsan.blank import reversed_within_length
from vlpipe.models.ctsan.detector import ConceptDetector
from vlpipe.models.ctsan.retrieval import CTSANRetrieval
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.nn.beam_search import beam_search
from vlpipe.nn.bilinear import CompactBilinearPooling, Maxout
from vlpipe.nn.losses import in_batch_ranking_loss
from vlpipe.nn.recurrent import LayerNormLSTM
from vlpipe.tasks.base import ConceptPairBatch
from vlpipe.tasks.captioning import CaptioningTask, ConceptCaptionBatch
from vlpipe.tasks.fill_in_blank import ConceptBlankBatch, FillInBlankTask
from vlpipe.tasks.multiple_choice import MultipleChoiceTask
from vlpipe.tasks.retrieval import RetrievalTask
from vlpipe.text import Vocabulary
from vlpipe.text.concepts import (
    build_concepts,
    concept_labels,
    content_words,
    load_concept_ids,
    save_concepts,
)
from vlpipe.training.loop import seed_everything

from .helpers import train_task

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "star"]
GRID = (2, 2, 8)


# --- concept words -------------------------------------------------------------------------

def test_the_tagger_keeps_nouns_verbs_and_adjectives_offline():
    assert content_words("a red circle grows slowly on a blue background") == {
        "red", "circle", "grows", "blue", "background"}
    assert content_words("SOMEONE opens the door and looks at the man") == {
        "someone", "opens", "door", "looks", "man"}
    assert content_words("") == set()


def test_concepts_are_the_most_frequent_content_words_in_the_vocabulary(tmp_path):
    sentences = ["a red circle grows", "a red square grows", "the red star spins",
                 "a blue circle", "a zebra"]
    vocab = Vocabulary.build(sentences, min_count=2)  # "zebra", "spins", "star" are out
    concepts = build_concepts(sentences, vocab, size=3)
    assert concepts == [("red", 3), ("circle", 2), ("grows", 2)]  # ties alphabetical
    assert [w for w, _ in build_concepts(sentences, vocab, 100)] == ["red", "circle", "grows"]
    # a word counts once per sentence, as whatever the tagger calls it there
    assert build_concepts(["red red red", "red"], Vocabulary(["red"]), 5) == [("red", 2)]
    with pytest.raises(ValueError, match="size must be >= 1"):
        build_concepts(sentences, vocab, 0)
    save_concepts(tmp_path / "concepts.json", concepts)
    assert load_concept_ids(tmp_path / "concepts.json", vocab) == [
        vocab.ids["red"], vocab.ids["circle"], vocab.ids["grows"]]
    with pytest.raises(ValueError, match=r"\['red'\] are not in the vocabulary"):
        load_concept_ids(tmp_path / "concepts.json", Vocabulary(["circle", "grows"]))


def test_a_clips_labels_are_its_concepts_in_any_of_its_sentences():
    assert concept_labels([[5, 6], [7]], [7, 8, 5]).tolist() == [1.0, 0.0, 1.0]
    assert concept_labels([], [7]).tolist() == [0.0]


def test_precision_and_recall_at_k_by_hand():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    truth = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # row 0: top 2 = {0, 1}, one hit of 2 true; row 1: no true label (no recall)
    assert precision_recall_at(scores, truth, 2, "x ") == {"x P@2": 25.0, "x R@2": 50.0}
    assert precision_recall_at(scores, truth, 10) == {"P@4": 25.0, "R@4": 100.0}


# --- parts -----------------------------------------------------------------------------------

def test_attention_sparsity_by_hand():
    """Eq. 4.15 over a caption's words, per word: attention on one concept at both steps
    gives (‖α‖_{1,2} = 2) + (2 × 1) over 2 words = 2; uniform over 4 gives (1 + 2 × 4) / 2; a
    padded step counts for nothing."""
    one_hot = torch.tensor([[[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]]])
    uniform = torch.full((1, 3, 4), 0.25)
    steps = torch.tensor([[1.0, 1.0, 0.0]])
    assert attention_sparsity(one_hot, steps).item() == pytest.approx(2.0, abs=1e-4)  # √ε
    assert attention_sparsity(uniform, steps).item() == pytest.approx(4.5)


def test_the_layer_norm_lstm_keeps_its_state_over_padding():
    torch.manual_seed(0)
    lstm = LayerNormLSTM(3, 5, layers=2).eval()
    x = torch.randn(1, 4, 3)
    outputs, (h, c) = lstm(x, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    short, (h2, c2) = lstm(x[:, :2], torch.ones(1, 2))
    assert outputs.shape == (1, 4, 5) and h.shape == c.shape == (1, 2, 5)
    torch.testing.assert_close(outputs[:, :2], short)
    torch.testing.assert_close((h, c), (h2, c2))


def test_each_tracer_starts_at_its_own_cell():
    """α_0 is one-hot: after one frame, tracer l's state is the LSTM of cell l's vector."""
    torch.manual_seed(0)
    detector = ConceptDetector(hidden=6, cells=4, attention_channels=3, concepts=5)
    v = torch.randn(2, 1, 6, 2, 2)  # (B, N, D, h', w')
    traced = detector.trace(v, torch.ones(2, 1))  # (B, L, D)
    for cell in range(4):
        expected, _ = detector.lstm(v[:, 0].flatten(2)[:, :, cell])
        torch.testing.assert_close(traced[:, cell], expected)
    assert detector(v, torch.ones(2, 1)).shape == (2, 5)


# --- the model in the captioning task -----------------------------------------------------------

def grid_world(n_train=96, n_val=32, seed=0):
    """Each clip shows one coloured shape in one cell of a 2×2 grid (the colour's and the
    shape's codes there, noise elsewhere); its captions name both."""
    rng = np.random.default_rng(seed)
    colour_code, shape_code = rng.normal(size=(4, 8)), rng.normal(size=(3, 8))
    rows, features = [], {}
    for i in range(n_train + n_val):
        colour, shape, cell = rng.integers(4), rng.integers(3), rng.integers(4)
        frames = rng.normal(scale=0.3, size=(3, 2, 2, 8))
        frames[:, cell // 2, cell % 2] += 2 * (colour_code[colour] + shape_code[shape])
        features[f"c{i:03d}"] = frames.reshape(3, -1).astype(np.float32)
        rows.append((f"c{i:03d}", "train" if i < n_train else "val",
                     [f"a {COLOURS[colour]} {SHAPES[shape]}",
                      f"the {SHAPES[shape]} is {COLOURS[colour]}"]))
    clips = pd.DataFrame(rows, columns=["clip_id", "split", "sentences"])
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    concepts = [vocab.ids[w] for w in COLOURS + SHAPES]
    return clips, features, vocab, concepts


def make_task(concepts=True):
    clips, features, vocab, concept_ids = grid_world()
    task = CaptioningTask(clips, features, vocab, feature_norm="none", max_frames=3,
                          max_words=6, batch_size=16,
                          concept_ids=concept_ids if concepts else None)
    return task, concept_ids


def make_model(task, **settings):
    seed_everything(0)
    inputs = ModelInputs((FeatureInput("grid", "x/grid", GRID),), 3, task.spec.predicts,
                         len(task.vocab), concept_ids=task.concept_ids, task=task.name)
    settings = {"word_dim": 16, "hidden": 16, "grid_pool": 1, "top_k": 2,
                "attention_channels": 4, "dropout": 0.0, **settings}
    return build_model("ctsan", settings, inputs)


def test_concept_batches_carry_the_clips_labels_and_the_loss_adds_the_models_terms():
    task, concept_ids = make_task()
    batch = next(task.train_batches(np.random.default_rng(0)))
    assert isinstance(batch, ConceptCaptionBatch)
    assert batch.concepts.shape == (16, len(concept_ids))
    assert (batch.concepts.sum(1) == 2).all()  # one colour, one shape
    model = make_model(task, attention_weight=0.0, concept_weight=1.0)
    log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.inputs, batch.concepts)
    scores = model.concept_scores(batch.feats, batch.feat_mask)
    expected = torch.nn.functional.binary_cross_entropy(scores, batch.concepts)
    torch.testing.assert_close(auxiliary, expected, rtol=1e-4, atol=1e-5)
    words = torch.nn.functional.nll_loss(log_probs.flatten(0, 1), batch.targets.flatten(),
                                         ignore_index=-100)
    torch.testing.assert_close(task.loss(model, batch), words + auxiliary)
    plain, _ = make_task(concepts=False)
    assert type(next(plain.train_batches(np.random.default_rng(0)))).__name__ == "CaptionBatch"


def test_base_san_has_no_detector_and_no_extra_loss():
    task, _ = make_task()
    model = make_model(task, detector=False)
    batch = next(task.train_batches(np.random.default_rng(0)))
    _, auxiliary = model(batch.feats, batch.feat_mask, batch.inputs, batch.concepts)
    assert auxiliary.item() == 0.0 and model.video.detector is None
    assert model.concept_scores(batch.feats, batch.feat_mask) is None
    scores = task.concept_detection(model, task.eval_clips["val"], torch.device("cpu"))
    assert set(scores) == {"prior P@7", "prior R@7"}  # 7 concepts: all of them, not 10


def test_decoding_runs_through_start_and_step_with_the_concepts_in_the_state():
    task, _ = make_task()
    model = make_model(task).eval()
    feats, mask = task.video_batch(task.eval_clips["val"][:3])
    state = model.start(feats, mask)
    assert state["concepts"].shape == (3, 2, 16)  # top-2 concepts' word embeddings
    decoded = beam_search(model.step, state, batch=3, beam=2, start_id=model.end_id,
                          end_id=model.end_id, max_len=6)
    assert len(decoded) == 3 and all(len(ids) <= 6 for ids in decoded)


def test_examples_hold_the_top_concepts_marked_against_the_clips_captions():
    clips, features, vocab, concept_ids = grid_world()
    clips["split"] = clips["split"].replace({"val": "test"})
    task = CaptioningTask(clips, features, vocab, feature_norm="none", max_frames=3,
                          max_words=6, concept_ids=concept_ids)
    model = make_model(task)
    examples = task.examples(model, torch.device("cpu"), count=2)
    assert [e["clip_id"] for e in examples] == task.eval_clips["test"][:2]
    for example in examples:
        words = {w for sentence in example["references"] for w in sentence.split()}
        assert len(example["concepts"]) == len(concept_ids)  # 7 concepts < 10: all of them
        assert all(c["correct"] == (c["word"] in words) for c in example["concepts"])
    base = task.examples(make_model(task, detector=False), torch.device("cpu"), count=1)
    assert "concepts" not in base[0]


def test_the_builder_names_what_is_missing():
    task, _ = make_task(concepts=False)
    with pytest.raises(ValueError, match="concept words"):
        make_model(task)
    inputs = ModelInputs((FeatureInput("grid", "x/grid", GRID),), 3, "gaze", 10,
                         concept_ids=(2, 3))
    with pytest.raises(ValueError, match="not 'gaze'"):
        build_model("ctsan", {}, inputs)


def test_the_detector_learns_which_colour_and_shape_a_clip_shows():
    """Trained on the captioning objective (words + concept loss) for a few epochs, the
    detector's top 2 concepts on held-out clips beat the frequency prior's by a wide margin
    (chance for the two true ones of 7: the prior gets at most one of them)."""
    task, _ = make_task()
    model = make_model(task)
    train_task(task, model, epochs=12, lr=0.01)
    model.eval()
    val = task.eval_clips["val"]
    truth = task.concept_labels(val)
    prior = task.concept_labels(task.splits["train"]).sum(0).expand_as(truth)
    with torch.no_grad():
        detected = model.concept_scores(*task.video_batch(val))
    ours, baseline = precision_recall_at(detected, truth, 2), precision_recall_at(prior, truth, 2)
    assert baseline["P@2"] <= 50.0 + 1e-6
    assert ours["P@2"] > 80.0, (ours, baseline)
    batch = next(task.train_batches(np.random.default_rng(1)))
    assert math.isfinite(task.loss(model, batch).item())


# --- multiple choice ----------------------------------------------------------------------------

def make_choice_task(concepts=True):
    clips, features, vocab, concept_ids = grid_world(seed=1)
    clips["split"] = clips["split"].replace({"val": "test"})
    items = build_multiple_choice(clips, "msrvtt", seed=0)
    return MultipleChoiceTask(clips, features, vocab, task_list=items, batch_size=16,
                              num_negatives=4, margin=1.0, feature_norm="none", max_frames=3,
                              max_words=6, concept_ids=concept_ids if concepts else None)


def test_multiple_choice_reads_each_candidate_from_its_clips_state_and_concepts():
    """CT-SAN scores a pair batch itself: the sentence LSTM starts from the clip's encoding
    (so one sentence scores differently with two clips) and the loss adds L_con."""
    task = make_choice_task()
    batch = next(task.train_batches(np.random.default_rng(0)))
    assert isinstance(batch, ConceptPairBatch) and batch.concepts.shape[1] == 7
    model = make_model(task, attention_weight=0.0)
    scores, auxiliary = model.score_pairs(batch)
    assert scores.shape == batch.clip_index.shape == (16, 5)
    clips = model.video(batch.feats, batch.feat_mask, model.embed)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(clips.logits, batch.concepts)
    torch.testing.assert_close(auxiliary, expected)
    loss = task.loss(model, batch)
    assert torch.isfinite(loss) and loss > auxiliary
    same_sentence = dataclasses.replace(batch, sentence_index=torch.zeros_like(
        batch.sentence_index))
    scored, _ = model.eval().score_pairs(same_sentence)
    assert scored[0, 0] != scored[1, 0]  # one sentence, two clips


def test_multiple_choice_starts_from_the_description_models_detector_only():
    caption_task, _ = make_task()
    captioner = make_model(caption_task)
    choice = make_model(make_choice_task())
    copied = choice.load_upstream(captioner.state_dict(), freeze=False)
    assert copied and all(n.startswith(("video.reduce.", "video.detector.")) for n in copied)
    torch.testing.assert_close(choice.video.detector.out.weight,
                               captioner.video.detector.out.weight)
    assert not torch.equal(choice.video.encoder.cells[0].input_gates.weight,
                           captioner.video.encoder.cells[0].input_gates.weight)


@pytest.mark.parametrize("detector", [True, False])
def test_ct_san_learns_multiple_choice(detector):
    """A few epochs on the grid world: test accuracy far above the 20 % of chance."""
    task = make_choice_task()
    model = make_model(task, detector=detector, hidden=32)
    train_task(task, model, epochs=12, lr=0.01)
    accuracy = task.evaluate(model, "test", torch.device("cpu"))["mc"]["accuracy"]
    assert accuracy > 60.0, accuracy


# --- fill in the blank ----------------------------------------------------------------------------

def test_reversing_within_length_keeps_the_padding_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])[..., None].float()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    flipped = reversed_within_length(x, mask)
    assert flipped[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reversed_within_length(flipped, mask), x)


def make_blank_task(concepts=True):
    clips, features, vocab, concept_ids = grid_world(seed=2)
    clips["split"] = clips["split"].replace({"val": "test"})
    blanks = build_fill_in_blank(clips, seed=0)
    return FillInBlankTask(clips, features, vocab, task_list=blanks, batch_size=16,
                           feature_norm="none", max_frames=3, max_words=6,
                           concept_ids=concept_ids if concepts else None)


def test_fill_in_the_blank_adds_the_models_terms_and_learns_the_missing_word():
    task = make_blank_task()
    batch = next(task.train_batches(np.random.default_rng(0)))
    assert isinstance(batch, ConceptBlankBatch) and batch.concepts.shape == (16, 7)
    model = make_model(task, hidden=32, attention_weight=0.0)
    logits, auxiliary = model.blank_logits(batch)
    assert logits.shape == (16, len(task.vocab))
    clips = model.video(batch.feats, batch.feat_mask, model.embed)
    torch.testing.assert_close(auxiliary, torch.nn.functional.binary_cross_entropy_with_logits(
        clips.logits, batch.concepts))
    train_task(task, model, epochs=15, lr=0.01)
    accuracy = task.evaluate(model, "test", torch.device("cpu"))["fib"]["accuracy"]
    assert accuracy > 60.0, accuracy  # the blank is the colour, the shape or a function word


# --- retrieval ------------------------------------------------------------------------------------

def test_compact_bilinear_pooling_is_the_count_sketch_of_the_outer_product():
    """ν(x, y)[k] = Σ_{i,j: (h_x(i) + h_y(j)) mod d = k} s_x(i) s_y(j) x_i y_j, by hand."""
    torch.manual_seed(0)
    pool = CompactBilinearPooling(3, 4, dim=5, seed=1)
    x, y = torch.randn(2, 3), torch.randn(2, 4)
    hx, sx = pool.sketch_x.bins.tolist(), pool.sketch_x.signs.tolist()
    hy, sy = pool.sketch_y.bins.tolist(), pool.sketch_y.signs.tolist()
    expected = torch.zeros(2, 5)
    for i in range(3):
        for j in range(4):
            expected[:, (hx[i] + hy[j]) % 5] += sx[i] * sy[j] * x[:, i] * y[:, j]
    torch.testing.assert_close(pool(x, y), expected, rtol=1e-4, atol=1e-5)
    same = CompactBilinearPooling(3, 4, dim=5, seed=1)  # the hashes follow the seed
    torch.testing.assert_close(same(x, y), expected, rtol=1e-4, atol=1e-5)


def test_maxout_takes_the_largest_piece_per_unit():
    maxout = Maxout(2, 1, pieces=2)
    with torch.no_grad():
        maxout.linear.weight.copy_(torch.eye(2))
        maxout.linear.bias.zero_()
    assert maxout(torch.tensor([[3.0, -1.0], [-2.0, 5.0]])).tolist() == [[3.0], [5.0]]


def make_retrieval_task(concepts=True, negatives="sampled"):
    clips, features, vocab, concept_ids = grid_world(seed=3)
    clips["split"] = clips["split"].replace({"val": "test"})
    return RetrievalTask(clips, features, vocab, batch_size=16, negatives=negatives,
                         num_negatives=4, margin=3.0, feature_norm="none", max_frames=3,
                         max_words=6, concept_ids=concept_ids if concepts else None)


RETRIEVAL_SIZES = {"bilinear_dim": 256, "joint_dim": 32}


def test_the_builder_picks_the_retrieval_model_for_the_retrieval_task():
    assert isinstance(make_model(make_retrieval_task(), **RETRIEVAL_SIZES), CTSANRetrieval)
    assert not isinstance(make_model(make_choice_task()), CTSANRetrieval)


@pytest.mark.parametrize("detector", [True, False])
def test_retrieval_scores_every_pair_as_the_training_pairs_are_scored(detector):
    """The test-time path (each clip and query encoded once, all pairs in blocks) gives the
    scores of the training path (`score_pairs` on a batch of the same pairs)."""
    task = make_retrieval_task()
    model = make_model(task, detector=detector, **RETRIEVAL_SIZES).eval()
    clip_ids, sentences = zip(*task.eval_pairs["test"][:4], strict=True)
    batch = task.pair_batch([[c] * 4 for c in clip_ids], [list(sentences)] * 4,
                            positive=[0, 1, 2, 3])
    with torch.no_grad():
        expected, _ = model.score_pairs(batch)
        videos = model.encode_video(batch.feats, batch.feat_mask)
        texts = model.encode_text(batch.tokens, batch.token_mask)
        assert videos[0].shape == (4, 1, 16 + (2 * 16 if detector else 0))
        for block in (3, 4096):
            torch.testing.assert_close(model.score_matrix(*videos, *texts, block=block),
                                       expected, rtol=1e-4, atol=1e-5)


def test_in_batch_negatives_are_a_grid_of_pairs_with_the_models_terms():
    task = make_retrieval_task(negatives="in_batch")
    batch = next(task.train_batches(np.random.default_rng(0)))
    assert isinstance(batch, ConceptPairBatch) and batch.clip_index.shape == (16, 16)
    assert torch.equal(batch.clip_index[:, 0], torch.arange(16))  # row k: clip k
    model = make_model(task, **RETRIEVAL_SIZES).eval()
    scores, auxiliary = model.score_pairs(batch)
    expected = in_batch_ranking_loss(scores, 3.0, "t2v") + auxiliary
    torch.testing.assert_close(task.loss(model, batch), expected)


@pytest.mark.parametrize("detector", [True, False])
def test_ct_san_learns_retrieval(detector):
    """A few epochs on the grid world: text → video ranks far better than chance (mean rank
    16.5 of 32 clips, R@10 31 %; about 3 test clips share each caption, so R@1 is bounded near
    a third). Base-SAN learns more slowly; how far it gets in 12 epochs depends on the
    number of torch threads (R@10 75–100 %), hence the bounds."""
    task = make_retrieval_task()
    model = make_model(task, detector=detector, hidden=32, **RETRIEVAL_SIZES)
    train_task(task, model, epochs=12, lr=0.01)
    metrics = task.evaluate(model, "test", torch.device("cpu"))["t2v"]
    assert metrics["MeanR"] < 8.0 and metrics["R@10"] > 60.0, metrics


@pytest.mark.parametrize("make", [make_task, make_choice_task, make_retrieval_task,
                                  make_blank_task])
def test_every_ct_san_model_starts_from_a_configured_word_vectors_file(make):
    """`text.embeddings` (word2vec / GloVe text vectors) → ModelInputs.word_vectors: the word
    embedding, which also embeds the detected concepts, starts from them."""
    task = make()
    task = task[0] if isinstance(task, tuple) else task
    vectors = np.random.default_rng(0).normal(size=(len(task.vocab), 16)).astype(np.float32)
    vectors[0] = 0.0  # padding (load_embeddings writes zeros there)
    inputs = ModelInputs((FeatureInput("grid", "x/grid", GRID),), 3, task.spec.predicts,
                         len(task.vocab), vectors, concept_ids=task.concept_ids, task=task.name)
    model = build_model("ctsan", {"word_dim": 16, "hidden": 16, "grid_pool": 1,
                                  "bilinear_dim": 64, "joint_dim": 8}, inputs)
    torch.testing.assert_close(model.embed.weight[: len(task.vocab)], torch.from_numpy(vectors))
