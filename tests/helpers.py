"""Helpers shared by tests that run vlpipe or Snakemake in subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml


def merged(base: dict, overlay: dict) -> dict:
    """``overlay`` on ``base``, mappings merged key by key (as Snakemake merges config files)."""
    out = dict(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else value
    return out


def load_configs(root: Path, names: list[str] | tuple[str, ...]) -> dict:
    """The config files ``names`` (relative to ``root``) merged in order."""
    config: dict = {}
    for name in names:
        config = merged(config, yaml.safe_load((root / name).read_text()))
    return config


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


def save_tiny_gpt2(directory: Path, layers: int, width: int, heads: int,
                   sentences: list[str]) -> Path:
    """A GPT-2 of these sizes with a byte-level BPE tokenizer trained on ``sentences``, saved as
    ``save_pretrained`` saves ``gpt2`` (what ``pretrained: <dir>`` reads)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([f" {s}" for s in sentences], vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=width,
                         n_layer=layers, n_head=heads, bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id)).save_pretrained(directory)
    return directory


def train_task(task, model, epochs: int, lr: float) -> list[float]:
    """``epochs`` passes of the task's objective with Adam at ``lr`` (the model's
    ``start_epoch`` hook called where it has one, as the training loop does); each epoch's mean
    loss."""
    import numpy as np
    import torch

    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        if hasattr(model, "start_epoch"):
            model.start_epoch(epoch)
        epoch_losses = []
        for batch in task.train_batches(rng):
            optimiser.zero_grad()
            loss = task.loss(model, batch)
            loss.backward()
            optimiser.step()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
    return losses
