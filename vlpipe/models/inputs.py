"""What a task hands a model family's builder: a typed description of the model's inputs.

A task knows its data (which feature arrays, their shapes after normalisation, the vocabulary,
sentence vectors) and what it asks the model to predict; a family's ``build(config, inputs)``
turns that into a module. No builder takes loose ``video_dim`` / ``text_dim`` arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureInput:
    """One named per-step feature array, e.g. ``scene`` ← ``googlenet/pool5`` with shape
    ``(1024,)`` or ``motion`` ← ``c3d/conv5b`` with ``(7, 7, 1024)``."""

    name: str
    source: str  # "<extractor>/<array>"
    shape: tuple[int, ...]  # one step, as the model sees it (after normalisation)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ModelInputs:
    """Everything a model is built for that follows from the task and its data."""

    video: tuple[FeatureInput, ...]  # per-step arrays, aligned on one timeline
    max_steps: int  # steps per clip after subsampling (the task's max_frames)
    predicts: str  # "score" (a pair's compatibility), "word" (a blank), "caption", "story"…
    vocab_size: int
    word_vectors: np.ndarray | None = None  # (vocab_size, word_dim) initial embeddings
    sentence_dim: int | None = None  # frozen sentence vectors instead of words (WAL)
    concept_ids: tuple[int, ...] | None = None  # vocabulary ids of the concept words (CT-SAN)
    task: str | None = None  # the task's name, for a family whose models differ between tasks
                             # that predict the same (CT-SAN's multiple choice and retrieval)

    @property
    def video_dim(self) -> int:
        """Width of one step when the video arrays are read side by side as one vector."""
        return sum(feature.size for feature in self.video)


def grid_input(inputs: tuple[FeatureInput, ...], name: str, model: str) -> FeatureInput:
    """The input ``name``, checked to be a channels-last (h, w, C) grid."""
    found = [feature for feature in inputs if feature.name == name]
    if not found:
        raise ValueError(f"{model} needs an input named {name!r}; got "
                         f"{[feature.name for feature in inputs]}")
    feature = found[0]
    if len(feature.shape) != 3:
        raise ValueError(
            f"{model}: input {name!r} ({feature.source}) has per-step shape {feature.shape}, "
            "not a (h, w, C) grid; a grid input needs task_args.feature_norm 'zscore' or "
            "'none' ('pca' flattens it)")
    return feature


def only_grid_input(inputs: ModelInputs, name: str, model: str) -> FeatureInput:
    """A one-input model's input: the one named ``name`` (or the only one), a (h, w, C) grid;
    any other input is an error."""
    chosen = inputs.video[0].name if len(inputs.video) == 1 else name
    feature = grid_input(inputs.video, chosen, model)
    if len(inputs.video) != 1:
        others = [f.name for f in inputs.video if f.name != chosen]
        raise ValueError(f"{model} reads one grid input ({name!r}); remove input(s) {others}")
    return feature
