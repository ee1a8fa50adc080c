"""GEAN (thesis ch. 3): captioning from gaze-weighted scene / motion / fovea pools, starting
from a trained RGP (`vlpipe.models.rgp`)."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.gean.config import PRESETS, GEANConfig

FAMILY = ModelFamily(name="gean", config=GEANConfig, builder="vlpipe.models.gean.model:build",
                     tasks=("captioning",), presets=PRESETS)
