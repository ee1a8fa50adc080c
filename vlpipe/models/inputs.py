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
    predicts: str  # "score" (a pair's compatibility), "word" (a blank) or "caption"
    vocab_size: int
    word_vectors: np.ndarray | None = None  # (vocab_size, word_dim) initial embeddings
    sentence_dim: int | None = None  # frozen sentence vectors instead of words (WAL)

    @property
    def video_dim(self) -> int:
        """Width of one step when the video arrays are read side by side as one vector."""
        return sum(feature.size for feature in self.video)
