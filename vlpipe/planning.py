"""What a run of an experiment reads and depends on, from the config alone, and the config
checks that need the registries. Torch-free and zarr-free: the Snakefile imports this while it
plans the DAG, so every mistake here fails before any job runs, naming the key.

An experiment (``config.yaml: experiments.<name>``) names its ``model`` and ``task``, its
feature inputs — ``inputs`` (name → ``extractor/array``) or ``features`` (extractors, each
read as its primary array under its own name) — ``model_args`` shared by its variants,
``variants`` (name → flags overriding ``model_args``, and optionally their own ``features`` or
``inputs``: the -noaudio ablation reads fewer), ``task_args``, ``train`` settings, ``seeds`` and
optionally ``init_from`` (another run whose trained weights start this one's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vlpipe.models import model_family
from vlpipe.tasks.specs import task_spec

SENTENCES_KEY = "sentences"  # the text store among a run's NAME=STORE arguments
INPUT_KEYS = ("features", "inputs")  # variant keys that choose data, not model flags


@dataclass(frozen=True)
class InputRef:
    """Input ``name`` reads array ``array`` (None: the store's primary) of ``extractor``."""

    name: str
    extractor: str
    array: str | None = None

    @classmethod
    def parse(cls, name: str, source: str) -> InputRef:
        """``"c3d/conv5b"`` or ``"resnet152"`` (its primary array)."""
        extractor, _, array = source.partition("/")
        return cls(name, extractor, array or None)

    @property
    def source(self) -> str:
        return f"{self.extractor}/{self.array}" if self.array else self.extractor


def _variant(experiment: dict, variant: str) -> dict:
    if variant not in experiment["variants"]:
        raise KeyError(f"unknown variant {variant!r}; known: {sorted(experiment['variants'])}")
    return experiment["variants"][variant] or {}


def variant_inputs(experiment: dict, variant: str) -> list[InputRef]:
    """The feature inputs a variant reads, in order: its own ``inputs``/``features`` or the
    experiment's (``inputs`` wins where both are given at one level)."""
    for level in (_variant(experiment, variant), experiment):
        if level.get("inputs"):
            return [InputRef.parse(name, source) for name, source in level["inputs"].items()]
        if level.get("features"):
            return [InputRef(extractor, extractor) for extractor in level["features"]]
    raise ValueError("an experiment needs `inputs` or `features`")


def variant_extractors(experiment: dict, variant: str) -> list[str]:
    """The extractors whose stores a variant reads (each once, in input order)."""
    return list(dict.fromkeys(ref.extractor for ref in variant_inputs(experiment, variant)))


def variant_model_args(experiment: dict, variant: str) -> dict:
    """``model_args`` with the variant's flags over them."""
    flags = {k: v for k, v in _variant(experiment, variant).items() if k not in INPUT_KEYS}
    return {**experiment.get("model_args", {}), **flags}


def run_settings(experiment: dict, variant: str) -> dict:
    """The part of an experiment config that one variant's runs depend on (no other variants,
    no seed list), so adding a variant or a seed reruns nothing that exists."""
    settings = {k: v for k, v in experiment.items() if k not in ("variants", "seeds")}
    return {**settings, "variants": {variant: experiment["variants"][variant]}}


def upstream_run(experiment: dict) -> tuple[str, str] | None:
    """``init_from.run`` as (experiment, variant), or None."""
    init = experiment.get("init_from")
    if not init:
        return None
    upstream, _, variant = init["run"].partition("/")
    return upstream, variant


def named_paths(groups: Mapping[str, Iterable[str]]) -> list[str]:
    """name → paths as ``NAME=PATH`` command-line items (the inverse of `parse_named_paths`)."""
    return [f"{name}={path}" for name, paths in groups.items() for path in paths]


def parse_named_paths(items: Iterable[str], option: str = "--stores") -> dict[str, list[str]]:
    """``NAME=PATH`` items → name → paths (in order); a malformed item is a ValueError."""
    groups: dict[str, list[str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not (name and sep and path):
            raise ValueError(f"{option}: expected NAME=PATH, got {item!r}")
        groups.setdefault(name, []).append(path)
    return groups


def check_experiment(name: str, experiment: dict, experiments: Mapping[str, dict],
                     extractors: Iterable[str]) -> None:
    """Everything about one experiment that the schema cannot see: the model and task exist and
    go together, every variant's model flags are the model's, ``task_args`` are the task's,
    every input names a configured extractor and ``init_from`` a configured run with the same
    seeds. Errors name the experiment, variant and key."""
    where = f"experiments.{name}."
    for key, lookup in (("model", model_family), ("task", task_spec)):
        try:
            lookup(experiment[key])
        except KeyError as error:
            raise ValueError(f"{where}{key}: {error.args[0]}") from None
    family, spec = model_family(experiment["model"]), task_spec(experiment["task"])
    if spec.name not in family.tasks:
        raise ValueError(f"{where}task: model {family.name!r} solves {list(family.tasks)}, "
                         f"not {spec.name!r}")
    spec.check_args(experiment.get("task_args", {}), where)
    configured = set(extractors)
    for variant in experiment["variants"]:
        at = f"{where}variants.{variant}: "
        family.settings(variant_model_args(experiment, variant), spec.predicts, at)
        unknown = [ref.source for ref in variant_inputs(experiment, variant)
                   if ref.extractor not in configured]
        if unknown:
            raise ValueError(f"{at}input(s) {unknown} name no configured extractor; "
                             f"configured: {sorted(configured)}")
    upstream = upstream_run(experiment)
    if upstream is not None:
        source, variant = upstream
        other = experiments.get(source)
        if other is None or variant not in other["variants"]:
            raise ValueError(f"{where}init_from.run: {experiment['init_from']['run']!r} is no "
                             "configured <experiment>/<variant>")
        if source == name:
            raise ValueError(f"{where}init_from.run: a run cannot start from its own experiment")
        missing = sorted(set(experiment["seeds"]) - set(other["seeds"]))
        if missing:
            raise ValueError(f"{where}init_from.run: seed(s) {missing} are not trained by "
                             f"{source!r} (seeds {other['seeds']}); each seed starts from the "
                             "same seed's weights")
