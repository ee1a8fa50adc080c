"""The feature-free gaze baselines (learned mean map, central bias, uniform), scored by the gaze
task beside RGP; their code lives with RGP's (`vlpipe.models.rgp`)."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.rgp.config import GazePriorConfig

FAMILY = ModelFamily(name="gaze_prior", config=GazePriorConfig,
                     builder="vlpipe.models.rgp.model:build_prior", tasks=("gaze",))
