"""Temp-Attention: the captioning baseline the captioning systems extend."""

from vlpipe.models.captioner.config import CaptionerConfig
from vlpipe.models.family import ModelFamily

FAMILY = ModelFamily(name="captioner", config=CaptionerConfig,
                     builder="vlpipe.models.captioner.model:build", tasks=("captioning",))
