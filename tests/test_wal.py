"""WAL (Watch and Learn) and the correspondence task: attention, losses, the discriminator's
routing and schedule, the task's batches and noise, and that the model learns."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from vlpipe.models import FAMILIES, build_model
from vlpipe.models.wal.config import WALConfig
from vlpipe.models.wal.model import WAL, hardest_negative_triplet
from vlpipe.nn.attention import ATTENTIONS, FrameAttention
from vlpipe.runs import sentence_inputs
from vlpipe.tasks.correspondence import CorrespondenceTask
from vlpipe.text import Vocabulary
from vlpipe.training import TrainSettings, train
from vlpipe.training.loop import seed_everything

from .helpers import model_inputs

CPU = torch.device("cpu")


def make_model(video_dim=6, text_dim=5, **settings):
    seed_everything(0)
    settings = {"embed_dim": 8, **settings}
    return build_model("wal", settings, model_inputs(video_dim, 3, sentence_dim=text_dim))


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_attention_pairs_match_all_pairs_and_ignore_padding(kind):
    torch.manual_seed(0)
    attention = FrameAttention(kind, frame_dim=4, query_dim=4, hidden=3)
    frames = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    frames[~mask] = 0.0
    sentences = torch.randn(3, 4)
    every = attention(frames, mask, sentences, all_pairs=True)  # (T, V, E)
    pairs = attention(frames, mask, sentences)  # (P, E)
    assert every.shape == (3, 3, 4)
    torch.testing.assert_close(pairs, every.diagonal(dim1=0, dim2=1).T)
    garbage = frames.clone()
    garbage[~mask] = 1e3
    torch.testing.assert_close(attention(garbage, mask, sentences), pairs)
    torch.testing.assert_close(pairs[2], frames[2, 0])  # one valid frame: it is the video


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_score_matrix_in_blocks_matches_pairwise_scores(kind):
    model = make_model(attention=kind).eval()
    feats, mask = torch.randn(4, 3, 6), torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]],
                                                     dtype=torch.bool)
    frames, sentences = model.encode_video(feats, mask), model.encode_text(torch.randn(5, 5))
    scores = model.score_matrix(frames, mask, sentences, max_elements=1)  # one sentence a block
    assert scores.shape == (5, 4)
    for t in range(5):
        pairs = model.match_logits(model.pair_similarity(frames, mask, sentences[t].expand(4, -1)))
        torch.testing.assert_close(scores[t], pairs)
    torch.testing.assert_close(model.score_matrix(frames, mask, sentences), scores)


def test_dot_attention_hand_computed():
    attention = FrameAttention("dot", frame_dim=2, query_dim=2, hidden=1)
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    sentence = torch.tensor([[math.log(3.0), 0.0]])  # logits ln 3, 0 → weights 3/4, 1/4
    pooled = attention(frames, torch.ones(1, 2, dtype=torch.bool), sentence)
    torch.testing.assert_close(pooled, torch.tensor([[0.75, 0.25]]))


def test_hardest_negative_triplet_hand_computed():
    similarity = torch.tensor([[0.9, 0.8, 0.1],   # sentence 0 vs clips 0, 1, 2
                               [0.2, 0.5, 0.6],
                               [0.0, 0.1, 0.3]])
    # sentence i: max_j≠i [0.2 − S_ii + S_ij]+ ; clip i: max_j≠i [0.2 − S_ii + S_ji]+
    # i=0: sentences (0.1, 0) → 0.1; clips (0, 0) → 0          = 0.1
    # i=1: sentences (0, 0.3) → 0.3; clips (0.5, 0) → 0.5      = 0.8
    # i=2: sentences (0, 0) → 0;     clips (0, 0.5) → 0.5      = 0.5
    loss = hardest_negative_triplet(similarity, margin=0.2)
    torch.testing.assert_close(loss, torch.tensor([0.1, 0.8, 0.5]))


def test_plain_bce_loss_hand_computed():
    model = make_model(attention="none", adversarial=False).eval()
    feats = torch.randn(2, 3, 6)
    mask = torch.ones(2, 3, dtype=torch.bool)
    sentences = torch.randn(2, 5)
    labels = torch.tensor([1, 0])
    frames = model.encode_video(feats, mask)
    s = model.encode_text(sentences)
    p = (F.normalize(frames.mean(dim=1), dim=-1) * s).sum(dim=-1)  # cosine of mean frames
    logits = 5.0 * p  # F_LVC starts as 5·p
    expected = (F.softplus(-logits[0]) + F.softplus(logits[1])) / 2
    loss = model.correspondence_loss(feats, mask, sentences, labels)
    torch.testing.assert_close(loss, expected)


def _grads_after_loss(model, epoch):
    model.train()
    model.start_epoch(epoch)
    model.zero_grad()
    model.correspondence_loss(torch.randn(8, 3, 6), torch.ones(8, 3, dtype=torch.bool),
                              torch.randn(8, 5), torch.tensor([1, 0] * 4)).backward()
    return {name: param.grad for name, param in model.named_parameters()}


def test_discriminator_is_fixed_during_warmup_then_trains():
    model = make_model(discriminator_warmup=2)
    fixed = _grads_after_loss(model, epoch=2)
    assert all(g is None for n, g in fixed.items() if n.startswith("discriminator."))
    assert fixed["video_embed.linear.weight"] is not None
    joint = _grads_after_loss(model, epoch=3)
    assert joint["discriminator.classifier.weight"].abs().sum() > 0
    assert joint["discriminator.backgrounds"].abs().sum() > 0


def test_routing_counts_pairs_sent_to_the_lvc_loss():
    model = make_model(discriminator_warmup=0)
    with torch.no_grad():  # F_ADV says "leave out" for every pair: z = 1 (almost surely)
        model.discriminator.classifier.weight.zero_()
        model.discriminator.classifier.bias.fill_(50.0)
    _grads_after_loss(model, epoch=1)
    assert model.epoch_stats() == {"lvc_fraction": 0.0}
    with torch.no_grad():
        model.discriminator.classifier.bias.fill_(-50.0)
    _grads_after_loss(model, epoch=1)
    assert model.epoch_stats() == {"lvc_fraction": 1.0}
    assert make_model(adversarial=False).epoch_stats() == {}


def test_all_pairs_left_out_train_only_the_adversarial_loss():
    model = make_model(discriminator_warmup=0)
    with torch.no_grad():
        model.discriminator.classifier.weight.zero_()
        model.discriminator.classifier.bias.fill_(50.0)
    grads = _grads_after_loss(model, epoch=1)
    # z = 1 everywhere: the embeddings get no gradient (the discriminator's inputs are detached)
    assert grads["video_embed.linear.weight"].abs().sum() == 0
    assert grads["discriminator.classifier.bias"].item() > 0  # pushed towards y = 0


def test_aligned_routing_leaves_random_pairs_in_the_lvc_loss():
    model = make_model(discriminator_warmup=0, route="aligned")
    with torch.no_grad():  # every judged pair is left out
        model.discriminator.classifier.weight.zero_()
        model.discriminator.classifier.bias.fill_(50.0)
    grads = _grads_after_loss(model, epoch=1)
    assert model.epoch_stats() == {"lvc_fraction": 0.0}  # over the 4 aligned pairs only
    assert grads["video_embed.linear.weight"].abs().sum() > 0  # the 4 random pairs still train


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="attention"):
        WALConfig(attention="cosine")
    with pytest.raises(ValueError, match="attention"):
        build_model("wal", {"attention": "cosine"}, model_inputs(4, 3, sentence_dim=4))
    with pytest.raises(ValueError, match="word embeddings"):
        build_model("wal", {}, model_inputs(4, 3, sentence_dim=4,
                                            word_vectors=np.zeros((3, 4), np.float32)))
    with pytest.raises(ValueError, match="sentence vectors"):  # a task without them
        build_model("wal", {}, model_inputs(4, 3))


def test_the_registry_builds_wal_for_the_correspondence_task():
    assert FAMILIES["wal"].config is WALConfig
    assert FAMILIES["wal"].tasks == ("correspondence",)
    task = make_task()
    inputs = task.model_inputs()
    assert (inputs.video_dim, inputs.sentence_dim, inputs.predicts) == (6, 5, "score")
    model = build_model("wal", {"embed_dim": 8}, inputs)
    assert isinstance(model, WAL) and model.config == WALConfig(embed_dim=8)
    with pytest.raises(ValueError, match="embed_size"):
        build_model("wal", {"embed_size": 8}, inputs)


def concept_world(n_train=120, n_val=30, n_test=40, concepts=12, seed=0):
    """Clips showing one of `concepts` things; a sentence vector names the thing shown."""
    rng = np.random.default_rng(seed)
    visual, textual = rng.normal(size=(concepts, 6)), rng.normal(size=(concepts, 5))
    rows, features, vectors = [], {}, {}
    for i in range(n_train + n_val + n_test):
        split = "train" if i < n_train else "val" if i < n_train + n_val else "test"
        concept = rng.integers(concepts)
        frames = rng.normal(size=(rng.integers(2, 7), 6)) + 2 * visual[concept]
        clip_id = f"c{i:03d}"
        rows.append((clip_id, split, [f"thing {concept}", f"a thing {concept}"]))
        features[clip_id] = frames.astype(np.float32)
        vectors[clip_id] = (textual[concept] + 0.2 * rng.normal(size=(2, 5))).astype(np.float32)
    clips = pd.DataFrame(rows, columns=["clip_id", "split", "sentences"])
    vocab = Vocabulary.build([s for ss in clips["sentences"] for s in ss], min_count=1)
    return clips, features, vectors, vocab


def make_task(**settings):
    clips, features, vectors, vocab = concept_world()
    settings = {"feature_norm": "none", "max_frames": 10, "batch_size": 20, **settings}
    return CorrespondenceTask(clips, features, vocab, sentence_vectors=vectors, **settings)


def test_batches_are_balanced_and_cover_every_training_clip():
    task = make_task(frames_per_clip=4)
    batches = list(task.train_batches(np.random.default_rng(0)))
    assert len(batches) == 120 // 10
    batch = batches[0]
    assert batch.feats.shape == (20, 4, 6) and batch.sentences.shape == (20, 5)
    assert batch.labels.tolist() == [1] * 10 + [0] * 10
    # row i + 10 pairs row i's clip with a sentence of another clip
    clip_of = {row.tobytes(): c for c in task.splits["train"] for row in task.features[c]}
    clip_ids = [clip_of[frames[0].numpy().tobytes()] for frames in batch.feats]
    assert clip_ids[:10] == clip_ids[10:]
    assert all(clip_of[f.numpy().tobytes()] == c
               for c, frames in zip(clip_ids, batch.feats, strict=True) for f in frames)
    for clip_id, negative in zip(clip_ids[10:], batch.sentences[10:], strict=True):
        assert not any(np.array_equal(negative.numpy(), own) for own in task.vectors[clip_id])
    positives = {tuple(v.tolist()) for b in batches for v in b.sentences[b.labels == 1]}
    own = {tuple(row.tolist()) for c in task.splits["train"] for row in task.vectors[c]}
    assert positives <= own and len(positives) >= 100


def test_short_clips_repeat_frames_in_time_order():
    task = make_task(frames_per_clip=8)
    clip = next(c for c in task.splits["train"] if len(task.features[c]) == 2)
    frames = task._frames(clip, np.random.default_rng(0))
    assert frames.shape == (8, 6)
    rows = [int(np.flatnonzero((task.features[clip] == f).all(axis=1))[0]) for f in frames]
    assert rows == sorted(rows) and set(rows) == {0, 1}


def test_train_noise_swaps_sentences_of_that_fraction_of_training_clips_only():
    clean, noisy = make_task(), make_task(train_noise=0.25)
    swapped = [c for c in clean.splits["train"]
               if not np.array_equal(noisy.train_vectors[c], clean.vectors[c])]
    assert len(swapped) == 30  # 25 % of 120, none keeps its own sentences
    donors = {noisy.train_vectors[c].tobytes() for c in swapped}
    assert donors == {clean.vectors[c].tobytes() for c in swapped}  # a rotation among them
    assert make_task(train_noise=0.25).train_vectors.keys() == noisy.train_vectors.keys()
    for split in ("val", "test"):  # evaluation stays clean
        for clip_id, vector in noisy.eval_pairs[split]:
            assert np.array_equal(vector, clean.vectors[clip_id][0])


def test_listed_test_pairs_find_their_sentence_vectors():
    clips, features, vectors, vocab = concept_world()
    listed = pd.DataFrame({"clip_id": ["c160", "c161"],
                           "sentence": [clips.loc[160, "sentences"][1],
                                        clips.loc[161, "sentences"][0]]})
    task = CorrespondenceTask(clips, features, vocab, sentence_vectors=vectors,
                              task_list=listed, feature_norm="none")
    assert np.array_equal(task.eval_pairs["test"][0][1], vectors["c160"][1])
    listed.loc[1, "sentence"] = "not its sentence"
    with pytest.raises(KeyError, match="c161"):
        CorrespondenceTask(clips, features, vocab, sentence_vectors=vectors, task_list=listed,
                           feature_norm="none")
    del vectors["c005"]
    with pytest.raises(KeyError, match="c005"):
        CorrespondenceTask(clips, features, vocab, sentence_vectors=vectors,
                           feature_norm="none")


def test_only_sentence_vector_tasks_need_the_text_store():
    assert sentence_inputs(None, "retrieval") == {}
    with pytest.raises(ValueError, match=r"sentences=text/sentences\.zarr"):
        sentence_inputs(None, "correspondence")


def test_initialise_from_sets_normalised_background_means():
    task = make_task()
    model = make_model(backgrounds=4)
    model.initialise_from(task)
    backgrounds = model.discriminator.backgrounds.detach()
    torch.testing.assert_close(backgrounds.norm(dim=-1), torch.ones(4))
    feats, mask = task.sample_videos(64, seed=0)
    model.eval()
    videos = F.normalize(model.encode_video(feats, mask).sum(1) / mask.sum(1, keepdim=True), dim=-1)
    # each background is a normalised mean of training videos: it lies in their cone
    assert (backgrounds @ videos.T).mean() > (torch.randn(4, 8) @ videos.T).abs().mean() * 0.5


@pytest.mark.parametrize("variant", [{"attention": "none", "adversarial": False},
                                     {"discriminator_warmup": 4},
                                     {"loss": "triplet", "attention": "additive"}])
def test_wal_learns_the_concepts(tmp_path, variant):
    task = make_task(train_noise=0.3)
    model = make_model(**variant)
    train(model, task, TrainSettings(epochs=15, lr=0.1, optimizer="sgd", weight_decay=1e-3,
                                     lr_milestones=[12], device="cpu"), tmp_path)
    metrics = task.evaluate(model, "test", CPU)
    chance = 100 * sum(1 / k for k in range(1, 41)) / 40  # 10.7 for 40 candidates
    assert metrics["t2v"]["mAP"] > 2.5 * chance and metrics["v2t"]["mAP"] > 2.5 * chance
    log = (tmp_path / "train_log.jsonl").read_text()
    assert ("lvc_fraction" in log) == variant.get("adversarial", True)
