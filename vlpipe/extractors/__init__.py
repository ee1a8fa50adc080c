"""Feature extractors behind one interface; a new extractor is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from vlpipe.extractors.base import Extractor
from vlpipe.extractors.resnet import ResNetPool
from vlpipe.extractors.weights import MissingWeightsError, ResolvedWeights, resolve_weights

EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "resnet34": lambda **kw: ResNetPool("resnet34", **kw),
    "resnet50": lambda **kw: ResNetPool("resnet50", **kw),
    "resnet152": lambda **kw: ResNetPool("resnet152", **kw),
}


def build_extractor(kind: str, **settings) -> Extractor:
    """Build the extractor registered as ``kind`` with its config settings."""
    if kind not in EXTRACTORS:
        raise KeyError(f"unknown extractor {kind!r}; known: {sorted(EXTRACTORS)}")
    return EXTRACTORS[kind](**settings)


__all__ = ["EXTRACTORS", "Extractor", "MissingWeightsError", "ResolvedWeights",
           "build_extractor", "resolve_weights"]
