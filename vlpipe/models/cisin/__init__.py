"""CiSIN (thesis ch. 6): character grounding and video / text re-identification, jointly, for
Fill in the Characters."""

from vlpipe.models.cisin.config import CiSINConfig
from vlpipe.models.family import ModelFamily

FAMILY = ModelFamily(name="cisin", config=CiSINConfig, builder="vlpipe.models.cisin.model:build",
                     tasks=("fill_in_characters",))
