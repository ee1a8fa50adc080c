"""Model registry: a new model is one module plus one line in ``MODELS``.

Each entry pairs the model class with its config dataclass; ``build_model`` validates the
config's keys and builds ``Model(Config(**settings), vocab_size, video_dim, word_vectors)``, plus
``text_dim=`` for models that read sentence vectors rather than words (WAL).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from torch import nn

from vlpipe.models.captioner import AttentionCaptioner, CaptionerConfig
from vlpipe.models.jsfusion import JSFusion, JSFusionConfig
from vlpipe.models.wal import WAL, WALConfig

MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "jsfusion": (JSFusion, JSFusionConfig),
    "wal": (WAL, WALConfig),
    "captioner": (AttentionCaptioner, CaptionerConfig),
}


def build_model(name: str, *, vocab_size: int, video_dim: int,
                word_vectors: np.ndarray | None = None, text_dim: int | None = None,
                **settings) -> nn.Module:
    """Instantiate the registered model ``name`` from its config settings."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    model_class, config_class = MODELS[name]
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"model {name!r}: unknown setting(s) {unknown}; known: {sorted(known)}")
    inputs = {} if text_dim is None else {"text_dim": text_dim}
    return model_class(config_class(**settings), vocab_size, video_dim, word_vectors, **inputs)


__all__ = ["MODELS", "WAL", "AttentionCaptioner", "CaptionerConfig", "JSFusion",
           "JSFusionConfig", "WALConfig", "build_model"]
