"""A model family as the registry knows it, without torch: the Snakefile checks every
experiment's ``model``, ``model_args`` and task against it when it plans the DAG, before any
job runs; the module itself is imported only by the jobs that train or evaluate it."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def load(path: str) -> Any:
    """``"package.module:name"`` → the object, imported on first use."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelFamily:
    """A family: its config dataclass (``model_args``), where its builder ``build(config,
    inputs) -> nn.Module`` lives, the tasks it solves, ``task_fields(predicts)``: the config
    fields that follow from what the task asks for (never ``model_args``; JSFusion's head), its
    named paper presets, optionally a faster test-time scorer ``scorer(model)`` with the
    signature of ``model.score_matrix``, whether it reads the data set's concept words
    (``reads_concepts``: CT-SAN; `vlpipe.text.concepts`), and ``language_model(settings)``: the
    language model a run of these settings generates with, as the report names it
    (``{"name": ..., "weights": <local directory> or None}``; None: none), whose tokenizer
    replaces the data set's vocabulary where it has weights."""

    name: str
    config: type
    builder: str
    tasks: tuple[str, ...]
    task_fields: Callable[[str], dict] = lambda predicts: {}
    presets: dict[str, dict] = field(default_factory=dict)
    scorer: str | None = None
    reads_concepts: bool = False
    language_model: Callable[[dict], dict | None] = lambda settings: None

    def settings(self, model_args: dict, predicts: str, where: str = "") -> dict:
        """``model_args`` with a ``preset`` (a named paper setting) expanded, checked against
        the config's fields and its own validation, together with the fields the task sets
        (``predicts``: `vlpipe.models.ModelInputs.predicts`); errors name ``where`` and the
        key. Returns the config's keyword arguments."""
        args = dict(model_args)
        preset = args.pop("preset", None)
        if preset is not None:
            if preset not in self.presets:
                raise ValueError(f"{where}model_args.preset: {preset!r} is not a preset of "
                                 f"model {self.name!r}; known: {sorted(self.presets)}")
            args = {**self.presets[preset], **args}
        from_task = self.task_fields(predicts)
        known = {f.name for f in dataclasses.fields(self.config)} - set(from_task)
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"{where}model_args: unknown key(s) {unknown} for model "
                             f"{self.name!r}; known: {sorted(known)}")
        args.update(from_task)
        try:
            self.config(**args)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}model_args of model {self.name!r}: {error}") from None
        return args

    def build_function(self) -> Callable:
        return load(self.builder)
