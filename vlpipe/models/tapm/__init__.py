"""TAPM (thesis ch. 7): visual storytelling from a set of clips by a visual encoder and a
language generator (GPT-2 or an LSTM) with a transitional adaptation phase before generation."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.tapm.config import TAPMConfig

FAMILY = ModelFamily(name="tapm", config=TAPMConfig, builder="vlpipe.models.tapm.model:build",
                     tasks=("storytelling",))
