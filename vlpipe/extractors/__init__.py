"""Feature extractors behind one interface; a new extractor is one module plus one line here.

The registry names modules, imported only when an extractor of that kind is built or checked,
so that planning a DAG does not import every deep-learning package.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from functools import partial

from vlpipe.extractors.base import ArraySpec, Extractor, Outputs, Units
from vlpipe.extractors.weights import MissingWeightsError, ResolvedWeights, resolve_weights

# kind → (module under vlpipe.extractors, class, fixed constructor arguments)
EXTRACTORS: dict[str, tuple[str, str, dict]] = {
    "resnet34": ("image", "ImageNetCNN", {"arch": "resnet34"}),
    "resnet50": ("image", "ImageNetCNN", {"arch": "resnet50"}),
    "resnet152": ("image", "ImageNetCNN", {"arch": "resnet152"}),
    "googlenet": ("image", "ImageNetCNN", {"arch": "googlenet"}),
    "c3d": ("c3d", "C3D", {}),
    "i3d": ("i3d", "I3D", {}),
    "vggish": ("vggish", "VGGish", {}),
    "faces": ("faces", "FaceExtractor", {}),
    "persons": ("persons", "PersonTracks", {}),
}


def extractor_factory(kind: str) -> Callable[..., Extractor]:
    """The constructor of extractor ``kind`` (its module imported on first use)."""
    if kind not in EXTRACTORS:
        raise KeyError(f"unknown extractor kind {kind!r}; known: {sorted(EXTRACTORS)}")
    module, cls, fixed = EXTRACTORS[kind]
    return partial(getattr(importlib.import_module(f"vlpipe.extractors.{module}"), cls), **fixed)


def check_settings(name: str, settings: dict) -> tuple[str, dict]:
    """Split a config entry into ``(kind, constructor settings)``; unknown kinds or settings are
    errors naming the entry (``kind`` defaults to the entry's name, ``job`` is wiring)."""
    settings = {k: v for k, v in settings.items() if k != "job"}
    kind = settings.pop("kind", name)
    try:
        factory = extractor_factory(kind)
    except KeyError as err:
        raise KeyError(f"extractors.{name}: {err.args[0]}") from None
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ValueError(f"extractors.{name} ({kind}): unknown setting(s) {unknown}; "
                         f"it takes {sorted(accepted)}")
    return kind, settings


def build_extractor(name: str, settings: dict | None = None) -> Extractor:
    """Build the extractor configured as ``extractors.<name>`` (see ``check_settings``)."""
    kind, settings = check_settings(name, settings or {})
    return extractor_factory(kind)(**settings)


__all__ = ["EXTRACTORS", "ArraySpec", "Extractor", "MissingWeightsError", "Outputs",
           "ResolvedWeights", "Units", "build_extractor", "check_settings", "extractor_factory",
           "resolve_weights"]
