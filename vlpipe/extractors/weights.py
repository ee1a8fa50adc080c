"""One weight resolver for every extractor: a configured file, the library cache, or (only when
the config allows it) a seeded random initialisation that is recorded as such."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights were required but not found; the message says where and how to get
    them."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Weights to load (``state_dict`` None = random init) and their identity for provenance."""

    state_dict: dict | None
    identity: str  # "<file name>@sha256:<12 hex>" or "random-seed-<N>"

    @property
    def pretrained(self) -> bool:
        return self.state_dict is not None


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]


def resolve_weights(file_name: str, *, path: str | None = None, allow_random_init: bool = False,
                    seed: int = 0, how_to_get: str = "") -> ResolvedWeights:
    """Find ``file_name``: at ``path`` if configured, else in torch's hub cache.

    Missing weights are an error unless ``allow_random_init``, in which case the caller builds
    the model under ``torch.manual_seed(seed)`` and the identity says ``random-seed-<seed>``.
    """
    candidates = [Path(path).expanduser()] if path else []
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / file_name)
    for candidate in candidates:
        if candidate.is_file():
            state = torch.load(candidate, map_location="cpu", weights_only=True)
            return ResolvedWeights(state, f"{candidate.name}@sha256:{file_digest(candidate)}")
    if allow_random_init:
        return ResolvedWeights(None, f"random-seed-{seed}")
    looked = ", ".join(str(c) for c in candidates)
    raise MissingWeightsError(
        f"weights {file_name!r} not found (looked in: {looked}). {how_to_get} "
        "Or set allow_random_init: true to run with seeded random weights (the report says so)."
    )
