"""What a run of an experiment reads and depends on, from the config alone. Torch-free,
zarr-free and registry-free: the Snakefile imports this while it plans the DAG, and the jobs
parse their ``NAME=PATH`` arguments with it (``vlpipe.experiment_checks`` holds the config
checks that need the model and task registries).

An experiment (``config.yaml: experiments.<name>``) names its ``model`` and ``task``, its
feature inputs — ``inputs`` (name → ``extractor/array``) or ``features`` (extractors, each
read as its primary array under its own name) — ``model_args`` shared by its variants,
``variants`` (name → flags overriding ``model_args``, and optionally their own ``features`` or
``inputs``: the -noaudio ablation reads fewer), ``task_args``, ``train`` settings, ``seeds`` and
optionally ``init_from`` (another run whose trained weights start this one's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SENTENCES_KEY = "sentences"  # the text store among a run's NAME=STORE arguments
INPUT_KEYS = ("features", "inputs")  # variant keys that choose data, not model flags
RUN_KEYS = (*INPUT_KEYS, "init_from")  # every variant key that is not a model flag


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
    flags = {k: v for k, v in _variant(experiment, variant).items() if k not in RUN_KEYS}
    return {**experiment.get("model_args", {}), **flags}


def run_settings(experiment: dict, variant: str) -> dict:
    """The part of an experiment config that one variant's runs depend on (no other variants,
    no seed list), so adding a variant or a seed reruns nothing that exists."""
    settings = {k: v for k, v in experiment.items() if k not in ("variants", "seeds")}
    return {**settings, "variants": {variant: experiment["variants"][variant]}}


def upstream_init(experiment: dict, variant: str) -> dict | None:
    """The variant's ``init_from`` where it has the key (``null``: it starts from scratch), else
    the experiment's; None when the variant's runs start from no other run."""
    level = _variant(experiment, variant)
    return (level if "init_from" in level else experiment).get("init_from") or None


def upstream_run(experiment: dict, variant: str) -> tuple[str, str] | None:
    """The variant's ``init_from.run`` as (experiment, variant), or None."""
    init = upstream_init(experiment, variant)
    if init is None:
        return None
    upstream, _, upstream_variant = init["run"].partition("/")
    return upstream, upstream_variant


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


def report_tables(experiments: Mapping[str, dict],
                  tables: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Report table name → the experiments whose runs it shows: each experiment its own table,
    then the config's ``tables`` (experiments of one task side by side, as a paper's table
    puts model families together; `experiment_checks.check_tables` checks them)."""
    return {**{name: [name] for name in experiments},
            **{name: list(members) for name, members in (tables or {}).items()}}
