"""Feature extractors behind one interface; a new extractor is one module plus one line here.

Planning a DAG checks every configured extractor's settings but imports no deep-learning
package: the registry names modules, imported only when an extractor is built, settings are
checked against the constructor read from the module's source, and the interface names below
load on first use.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vlpipe.extractors.base import Extractor

# kind → (module under vlpipe.extractors, class, fixed constructor arguments)
EXTRACTORS: dict[str, tuple[str, str, dict]] = {
    "resnet34": ("image", "ImageNetCNN", {"arch": "resnet34"}),
    "resnet50": ("image", "ImageNetCNN", {"arch": "resnet50"}),
    "resnet152": ("image", "ImageNetCNN", {"arch": "resnet152"}),
    "googlenet": ("image", "ImageNetCNN", {"arch": "googlenet"}),
    "c3d": ("c3d", "C3D", {}),
    "frames": ("frames", "Frames", {}),
    "i3d": ("i3d", "I3D", {}),
    "vggish": ("vggish", "VGGish", {}),
    "faces": ("faces", "FaceExtractor", {}),
    "persons": ("persons", "PersonTracks", {}),
}

_INTERFACE = {"ArraySpec": "base", "Extractor": "base", "Outputs": "base", "Units": "base",
              "MissingWeightsError": "weights", "ResolvedWeights": "weights",
              "resolve_weights": "weights"}


def __getattr__(name: str):
    if name in _INTERFACE:
        return getattr(importlib.import_module(f"vlpipe.extractors.{_INTERFACE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def extractor_factory(kind: str) -> Callable[..., Extractor]:
    """The constructor of extractor ``kind`` (its module imported on first use)."""
    if kind not in EXTRACTORS:
        raise KeyError(f"unknown extractor kind {kind!r}; known: {sorted(EXTRACTORS)}")
    module, cls, fixed = EXTRACTORS[kind]
    return partial(getattr(importlib.import_module(f"vlpipe.extractors.{module}"), cls), **fixed)


@cache
def accepted_settings(kind: str) -> frozenset[str]:
    """The keyword arguments of extractor ``kind``'s constructor, read from its module's source
    (importing the module would import torch)."""
    if kind not in EXTRACTORS:
        raise KeyError(f"unknown extractor kind {kind!r}; known: {sorted(EXTRACTORS)}")
    module, cls, fixed = EXTRACTORS[kind]
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    arguments = item.args.args[1:] + item.args.kwonlyargs
                    return frozenset(a.arg for a in arguments) - set(fixed)
    raise LookupError(f"vlpipe/extractors/{module}.py: no {cls}.__init__ to read settings from")


def check_settings(name: str, settings: dict) -> tuple[str, dict]:
    """Split a config entry into ``(kind, constructor settings)``; unknown kinds or settings are
    errors naming the entry (``kind`` defaults to the entry's name, ``job`` is wiring)."""
    settings = {k: v for k, v in settings.items() if k != "job"}
    kind = settings.pop("kind", name)
    try:
        accepted = accepted_settings(kind)
    except KeyError as err:
        raise KeyError(f"extractors.{name}: {err.args[0]}") from None
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
           "ResolvedWeights", "Units", "accepted_settings", "build_extractor", "check_settings",
           "extractor_factory", "resolve_weights"]
