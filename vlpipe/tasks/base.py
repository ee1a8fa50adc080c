"""What the video-sentence tasks share: normalised, subsampled clip features, sentences as
vocabulary ids, padded batches and the scoring of arbitrary (clip, sentence) pairs.

A task provides what `vlpipe.training.train` calls — ``train_batches(rng)``,
``loss(model, batch)``, ``evaluate(model, split, device)``, ``selection_metric(metrics)`` —
plus ``num_items(split)`` (the evaluation set's size), ``report_info()`` and ``model_inputs()``
(the typed description of what the model is built for, `vlpipe.models.ModelInputs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vlpipe.features.sequences import InMemoryArrays, SequenceFeatures
from vlpipe.models.inputs import ModelInputs
from vlpipe.tasks.batching import pad_features, pad_tokens
from vlpipe.tasks.specs import TaskSpec, task_spec
from vlpipe.text import Vocabulary
from vlpipe.text.concepts import concept_labels


class TensorBatch:
    """Mixin for batch dataclasses whose fields are tensors (or None: an input the run does not
    have): ``.to(device)``."""

    def to(self, device: torch.device):
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{name: value.to(device) for name, value
                                            in moved.items() if value is not None})


@dataclass
class PairBatch(TensorBatch):
    """K queries with L candidates each, as indices into the batch's clips and sentences.

    Each clip and sentence is encoded once however many pairs it is part of.
    """

    feats: torch.Tensor  # (U, N, D) the batch's distinct clips
    feat_mask: torch.Tensor  # (U, N)
    tokens: torch.Tensor  # (S, M) the batch's distinct sentences
    token_mask: torch.Tensor  # (S, M)
    clip_index: torch.Tensor  # (K, L) clip of each pair
    sentence_index: torch.Tensor  # (K, L) sentence of each pair
    positive: torch.Tensor  # (K,) column of each query's right pair


@dataclass
class ConceptPairBatch(PairBatch):
    """A `PairBatch` for a model that reads concept words (CT-SAN): with the concept labels of
    the batch's distinct clips."""

    concepts: torch.Tensor  # (U, C) multi-hot


def autocast_for(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; full precision elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


class VideoTextTask:
    """Clip features and tokenised sentences of one data set, ready for batching.

    ``features``: the run's feature inputs (`vlpipe.features.inputs.ClipArrays`, streamed from
    the stores), or clip_id → (T, D) arrays already in memory. Subclasses set ``name`` (their
    `vlpipe.tasks.specs.TaskSpec`).
    """

    name: str

    def __init__(self, clips: pd.DataFrame, features, vocab: Vocabulary,
                 max_frames: int = 40, max_words: int = 40, feature_norm: str = "zscore",
                 pca_dims: int = 64, concept_ids: Sequence[int] | None = None) -> None:
        self.vocab, self.max_words = vocab, max_words
        arrays = features if hasattr(features, "read") else InMemoryArrays(features)
        train_ids = clips.loc[clips["split"] == "train", "clip_id"]
        self.features = SequenceFeatures(arrays, list(clips["clip_id"]), list(train_ids),
                                         feature_norm, pca_dims, max_frames)
        # Sentences reduced to in-vocabulary ids; a sentence left empty carries no signal.
        self.sentences = {
            row.clip_id: [ids for s in row.sentences if (ids := self.encode(s))]
            for row in clips.itertuples()
        }
        self.splits = {split: [c for c in group["clip_id"] if self.sentences[c]]
                       for split, group in clips.groupby("split")}
        self.concept_ids = None if concept_ids is None else tuple(concept_ids)

    @property
    def spec(self) -> TaskSpec:
        return task_spec(self.name)

    def model_inputs(self, word_vectors: np.ndarray | None = None) -> ModelInputs:
        """What the model is built for: the feature inputs after normalisation, the
        vocabulary (and its initial ``word_vectors``), what the task asks it to predict."""
        return ModelInputs(self.features.inputs(), self.features.max_steps, self.spec.predicts,
                           len(self.vocab), word_vectors, concept_ids=self.concept_ids,
                           task=self.name)

    @property
    def feature_dim(self) -> int:
        """Size of one step's features as the model sees them."""
        return self.features.dim

    def selection_metric(self, metrics: dict) -> float:
        """The validation score that selects the checkpoint (the task's spec)."""
        return self.spec.selection(metrics)

    def report_info(self) -> dict:
        """What the report prints beside the metrics (chance levels)."""
        return {"vocab_size": len(self.vocab)}

    def examples(self, model: torch.nn.Module, device: torch.device) -> list[dict]:
        """A few test items with the model's output beside the truth, for the report to show
        (a generative task's; none by default)."""
        return []

    def encode(self, sentence: str) -> list[int]:
        return self.vocab.encode(sentence, self.max_words)

    def concept_labels(self, clip_ids: list[str]) -> torch.Tensor:
        """Each clip's concept words present in its sentences, (B, C) multi-hot
        (`vlpipe.text.concepts.concept_labels`); only for a task given ``concept_ids``."""
        return torch.from_numpy(np.stack([concept_labels(self.sentences[c], self.concept_ids)
                                          for c in clip_ids]))

    def video_batch(self, clip_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded features (B, N, D) and mask (B, N) of the given clips."""
        return pad_features([self.features[c] for c in clip_ids])

    def pair_batch(self, clip_ids: list[list[str]], sentences: list[list[list[int]]],
                   positive: list[int]) -> PairBatch:
        """K queries × L candidates given as (clip, token ids) per pair → a `PairBatch`."""
        distinct_clips = list(dict.fromkeys(c for row in clip_ids for c in row))
        distinct_sentences = list(dict.fromkeys(tuple(s) for row in sentences for s in row))
        clip_pos = {c: i for i, c in enumerate(distinct_clips)}
        sentence_pos = {s: i for i, s in enumerate(distinct_sentences)}
        feats, feat_mask = self.video_batch(distinct_clips)
        tokens, token_mask = pad_tokens(distinct_sentences)
        fields = (feats, feat_mask, tokens, token_mask,
                  torch.tensor([[clip_pos[c] for c in row] for row in clip_ids]),
                  torch.tensor([[sentence_pos[tuple(s)] for s in row] for row in sentences]),
                  torch.tensor(positive))
        if self.concept_ids is None:
            return PairBatch(*fields)
        return ConceptPairBatch(*fields, self.concept_labels(distinct_clips))


def scores_and_auxiliary(model: torch.nn.Module, batch: PairBatch
                         ) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Scores (K, L) of a `PairBatch`'s pairs and the model's auxiliary loss: a model that
    reads concept words scores a `ConceptPairBatch` itself (``score_pairs(batch) -> (scores,
    auxiliary)``: CT-SAN, whose sentence reading depends on the clip); any other through its
    encoders (`pair_scores`), with no auxiliary loss."""
    if isinstance(batch, ConceptPairBatch):
        return model.score_pairs(batch)
    return pair_scores(model, batch), 0.0


def pair_scores(model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
    """Scores (K, L) of a `PairBatch`'s pairs; every clip and sentence is encoded once."""
    v_enc, v_mask = model.encode_video(batch.feats, batch.feat_mask)  # (U, N, E)
    t_enc, t_mask = model.encode_text(batch.tokens, batch.token_mask)  # (S, M, E)
    vi, ti = batch.clip_index.flatten(), batch.sentence_index.flatten()  # (K·L,)
    scores = model.pair_scores(v_enc[vi], v_mask[vi], t_enc[ti], t_mask[ti])  # (K·L,)
    return scores.view(batch.clip_index.shape)
