"""RGP (thesis ch. 3.3.2): recurrent gaze prediction from C3D grids. The feature-free gaze
baselines (``gaze_prior``: mean map, central bias, uniform) are built here too and registered by
`vlpipe.models.gaze_prior`."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.rgp.config import PRESETS, RGPConfig

FAMILY = ModelFamily(name="rgp", config=RGPConfig, builder="vlpipe.models.rgp.model:build",
                     tasks=("gaze",), presets=PRESETS)
