"""Feature extractors behind one interface; a new extractor is one module plus one line here."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from vlpipe.extractors.base import ArraySpec, Extractor, Outputs, Units
from vlpipe.extractors.image import ImageNetCNN
from vlpipe.extractors.weights import MissingWeightsError, ResolvedWeights, resolve_weights

EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "resnet34": partial(ImageNetCNN, "resnet34"),
    "resnet50": partial(ImageNetCNN, "resnet50"),
    "resnet152": partial(ImageNetCNN, "resnet152"),
    "googlenet": partial(ImageNetCNN, "googlenet"),
}


def check_settings(name: str, settings: dict) -> tuple[str, dict]:
    """Split a config entry into ``(kind, constructor settings)``; unknown kinds or settings are
    errors naming the entry (``kind`` defaults to the entry's name, ``job`` is wiring)."""
    settings = {k: v for k, v in settings.items() if k != "job"}
    kind = settings.pop("kind", name)
    if kind not in EXTRACTORS:
        raise KeyError(f"extractors.{name}: unknown extractor kind {kind!r}; known: "
                       f"{sorted(EXTRACTORS)}")
    accepted = set(inspect.signature(EXTRACTORS[kind]).parameters)
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ValueError(f"extractors.{name} ({kind}): unknown setting(s) {unknown}; "
                         f"it takes {sorted(accepted)}")
    return kind, settings


def build_extractor(name: str, settings: dict | None = None) -> Extractor:
    """Build the extractor configured as ``extractors.<name>`` (see ``check_settings``)."""
    kind, settings = check_settings(name, settings or {})
    return EXTRACTORS[kind](**settings)


__all__ = ["EXTRACTORS", "ArraySpec", "Extractor", "MissingWeightsError", "Outputs",
           "ResolvedWeights", "Units", "build_extractor", "check_settings", "resolve_weights"]
