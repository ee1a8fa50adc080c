"""TAPM (thesis ch. 7): visual storytelling from a set of clips by a visual encoder and a
language generator (GPT-2 or an LSTM) with a transitional adaptation phase before generation."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.tapm.config import TAPMConfig


def language_model(settings: dict) -> dict:
    """The generator, as the report names it: GPT-2 from local weights or trained from scratch."""
    name = {"gpt2": "GPT-2", "lstm": "LSTM"}[settings.get("generator", "gpt2")]
    return {"name": name, "weights": settings.get("pretrained")}


FAMILY = ModelFamily(name="tapm", config=TAPMConfig, builder="vlpipe.models.tapm.model:build",
                     tasks=("storytelling",), language_model=language_model)
