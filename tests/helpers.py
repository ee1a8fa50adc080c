"""Helpers shared by tests that run vlpipe or Snakemake in subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def subprocess_env() -> dict[str, str]:
    """The environment for ``python -m vlpipe`` / ``snakemake`` subprocesses: this checkout first
    on the import path (whatever else the caller's PYTHONPATH holds) and this Python's scripts
    on PATH."""
    repo = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in [repo, os.environ.get("PYTHONPATH")] if p)
    return {**os.environ, "PYTHONPATH": python_path,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def model_inputs(video_dim: int, vocab_size: int, *, predicts: str = "score",
                 max_steps: int = 40, word_vectors=None, sentence_dim: int | None = None):
    """`vlpipe.models.ModelInputs` for one flat video input of ``video_dim`` per step (what a
    task whose features are clip_id → (T, video_dim) arrays hands the model registry)."""
    from vlpipe.models import FeatureInput, ModelInputs

    return ModelInputs(video=(FeatureInput("video", "video", (video_dim,)),),
                       max_steps=max_steps, predicts=predicts, vocab_size=vocab_size,
                       word_vectors=word_vectors, sentence_dim=sentence_dim)
