"""The experiment checks that need the model and task registries, run while the Snakefile
plans the DAG (torch-free), so every mistake fails before any job runs, naming the key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vlpipe.models import model_family
from vlpipe.planning import upstream_run, variant_inputs, variant_model_args
from vlpipe.tasks.specs import task_spec


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
