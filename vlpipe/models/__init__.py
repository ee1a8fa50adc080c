"""Model registry: a new family is one package (``vlpipe/models/<family>/``: ``config.py``,
``model.py`` with ``build(config, inputs)``, and a ``FAMILY`` entry in its ``__init__``) plus
one line in ``FAMILIES``. Importing this module does not import torch."""

from __future__ import annotations

from typing import Any

from vlpipe.models import (
    captioner,
    cisin,
    ctsan,
    gaze_prior,
    gean,
    jsfusion,
    rgp,
    s2vt,
    shallownet,
    tapm,
    wal,
)
from vlpipe.models.family import ModelFamily, load
from vlpipe.models.inputs import FeatureInput, ModelInputs

FAMILIES: dict[str, ModelFamily] = {
    "jsfusion": jsfusion.FAMILY,
    "wal": wal.FAMILY,
    "captioner": captioner.FAMILY,
    "s2vt": s2vt.FAMILY,
    "rgp": rgp.FAMILY,
    "gaze_prior": gaze_prior.FAMILY,
    "shallownet": shallownet.FAMILY,
    "gean": gean.FAMILY,
    "ctsan": ctsan.FAMILY,
    "tapm": tapm.FAMILY,
    "cisin": cisin.FAMILY,
}


def model_family(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def build_model(name: str, model_args: dict, inputs: ModelInputs) -> Any:
    """The registered family ``name``'s module, from ``model_args`` and the task's inputs."""
    family = model_family(name)
    config = family.config(**family.settings(model_args, inputs.predicts))
    return family.build_function()(config, inputs)


def test_time_scorer(model: Any):
    """The fastest scorer of every (video, sentence) pair the model's family registers (built
    for the model's current weights: rebuild it after training), else ``model.score_matrix``."""
    for family in FAMILIES.values():
        if family.scorer and type(model).__module__.startswith(f"vlpipe.models.{family.name}."):
            return load(family.scorer)(model)
    return model.score_matrix


__all__ = ["FAMILIES", "FeatureInput", "ModelFamily", "ModelInputs", "build_model",
           "model_family", "test_time_scorer"]
