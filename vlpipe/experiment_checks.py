"""The experiment checks that need the model and task registries, run while the Snakefile
plans the DAG (torch-free), so every mistake fails before any job runs, naming the key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vlpipe.models import model_family
from vlpipe.planning import (
    upstream_init,
    upstream_run,
    variant_inputs,
    variant_model_args,
)
from vlpipe.tasks.specs import task_spec


def check_experiment(name: str, experiment: dict, experiments: Mapping[str, dict],
                     extractors: Mapping[str, dict | None]) -> None:
    """Everything about one experiment that the schema cannot see: the model and task exist and
    go together, every variant's model flags are the model's, ``task_args`` are the task's,
    every input names a configured extractor (of the kind the task reads it as, for its
    `TaskSpec.instance_inputs`) and ``init_from`` a configured run with the same seeds. Errors
    name the experiment, variant and key. ``extractors``: the configured extractors (name →
    settings, whose ``kind`` defaults to the name)."""
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
    kinds = {extractor: (settings or {}).get("kind", extractor)
             for extractor, settings in extractors.items()}
    for variant in experiment["variants"]:
        at = f"{where}variants.{variant}: "
        family.settings(variant_model_args(experiment, variant), spec.predicts, at)
        inputs = variant_inputs(experiment, variant)
        unknown = [ref.source for ref in inputs if ref.extractor not in kinds]
        if unknown:
            raise ValueError(f"{at}input(s) {unknown} name no configured extractor; "
                             f"configured: {sorted(kinds)}")
        for ref in inputs:
            kind = spec.instance_inputs.get(ref.name)
            if kind and kinds[ref.extractor] != kind:
                raise ValueError(f"{at}input {ref.name!r}: task {spec.name!r} reads it as the "
                                 f"{kind} extractor's instances, and {ref.extractor!r} is a "
                                 f"{kinds[ref.extractor]!r} extractor")
    for variant in experiment["variants"]:
        _check_upstream(name, experiment, variant, experiments)


def check_text_tasks(experiments: Mapping[str, dict], dataset_format: str,
                     captioned: bool) -> None:
    """On a data set without captions (``captioned`` False) only tasks that read no text run:
    any other is an error naming the experiment."""
    if captioned:
        return
    for name, experiment in experiments.items():
        if task_spec(experiment["task"]).reads_text:
            raise ValueError(f"experiments.{name}.task: {experiment['task']!r} reads the clips' "
                             f"sentences, and dataset format {dataset_format!r} has none (its "
                             "clips are uncaptioned: gaze prediction runs on them)")


def _check_upstream(name: str, experiment: dict, variant: str,
                    experiments: Mapping[str, dict]) -> None:
    """The variant's ``init_from`` names a configured run of another experiment that trains
    every seed this one does."""
    upstream = upstream_run(experiment, variant)
    if upstream is None:
        return
    where = f"experiments.{name}.variants.{variant}: "
    source, upstream_variant = upstream
    run = upstream_init(experiment, variant)["run"]
    other = experiments.get(source)
    if other is None or upstream_variant not in other["variants"]:
        raise ValueError(f"{where}init_from.run: {run!r} is no configured <experiment>/<variant>")
    if source == name:
        raise ValueError(f"{where}init_from.run: a run cannot start from its own experiment")
    missing = sorted(set(experiment["seeds"]) - set(other["seeds"]))
    if missing:
        raise ValueError(f"{where}init_from.run: seed(s) {missing} are not trained by "
                         f"{source!r} (seeds {other['seeds']}); each seed starts from the "
                         "same seed's weights")


def check_tables(tables: Mapping[str, Sequence[str]], experiments: Mapping[str, dict]) -> None:
    """The config's ``tables``: each a new name (not an experiment's, whose own table it would
    replace), of configured experiments, all of one task, whose variants are named apart (a
    table has one row per variant)."""
    for name, members in tables.items():
        where = f"tables.{name}: "
        if name in experiments:
            raise ValueError(f"{where}an experiment has this name (its own table); rename it")
        unknown = [member for member in members if member not in experiments]
        if unknown:
            raise ValueError(f"{where}{unknown} name no configured experiment; configured: "
                             f"{sorted(experiments)}")
        tasks = {member: experiments[member]["task"] for member in members}
        if len(set(tasks.values())) > 1:
            raise ValueError(f"{where}a table shows one task; these experiments have {tasks}")
        seen: dict[str, str] = {}
        for member in members:
            for variant in experiments[member]["variants"]:
                if variant in seen:
                    raise ValueError(f"{where}variant {variant!r} is in both {seen[variant]!r} "
                                     f"and {member!r}; a table row is a variant: rename one")
                seen[variant] = member
