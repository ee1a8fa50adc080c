"""S2VT (Venugopalan et al., ICCV 2015), a captioning baseline of GEAN's tables (thesis ch. 3;
S2VT+GNet reads GoogLeNet pool5 frames)."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.s2vt.config import PRESETS, S2VTConfig

FAMILY = ModelFamily(name="s2vt", config=S2VTConfig, builder="vlpipe.models.s2vt.model:build",
                     tasks=("captioning",), presets=PRESETS)
