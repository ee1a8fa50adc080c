"""One weight resolver for every extractor: a configured file, the library's weight cache
(``$VLPIPE_WEIGHTS``, default ``~/.cache/vlpipe/weights``), torch's hub cache, or (only when the
config allows it) a seeded random initialisation that is recorded as such."""

from __future__ import annotations

import hashlib
import os
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
    path: Path | None = None  # the file loaded (None = random init)

    @property
    def pretrained(self) -> bool:
        return self.state_dict is not None


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]


def weights_cache() -> Path:
    return Path(os.environ.get("VLPIPE_WEIGHTS", "~/.cache/vlpipe/weights")).expanduser()


def resolve_weights(file_name: str, *, path: str | None = None, allow_random_init: bool = False,
                    seed: int = 0, how_to_get: str = "",
                    state_key: str | None = None) -> ResolvedWeights:
    """Find ``file_name``: at ``path`` if configured (then nowhere else), else in the library's
    weight cache, else in torch's hub cache. ``state_key`` picks a nested state dict.

    Missing weights are an error unless ``allow_random_init``, in which case the caller builds
    the model under ``torch.manual_seed(seed)`` and the identity says ``random-seed-<seed>``.
    """
    if path:  # a configured file is the only candidate: never silently use another one
        candidates = [Path(path).expanduser()]
    else:
        candidates = [weights_cache() / file_name,
                      Path(torch.hub.get_dir()) / "checkpoints" / file_name]
    for candidate in candidates:
        if candidate.is_file():
            state = torch.load(candidate, map_location="cpu", weights_only=True)
            if state_key is not None:
                if state_key not in state:
                    raise KeyError(f"{candidate}: no {state_key!r} entry; it has {sorted(state)}")
                state = state[state_key]
            return ResolvedWeights(state, f"{candidate.name}@sha256:{file_digest(candidate)}",
                                   candidate)
    if allow_random_init and not path:
        return ResolvedWeights(None, f"random-seed-{seed}")
    looked = ", ".join(str(c) for c in candidates)
    raise MissingWeightsError(
        f"weights {file_name!r} not found (looked in: {looked}). {how_to_get} "
        "Or set allow_random_init: true to run with seeded random weights (the report says so)."
    )
