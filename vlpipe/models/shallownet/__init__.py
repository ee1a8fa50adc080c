"""ShallowNet (Pan et al., CVPR 2016), the thesis's image-saliency baseline for gaze prediction
(Table 3.2: ShallowNet per frame, ShallowNet+GRU over the frames), trained from scratch on each
frame's pixels (the ``frames`` extractor)."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.shallownet.config import PRESETS, ShallowNetConfig

FAMILY = ModelFamily(name="shallownet", config=ShallowNetConfig,
                     builder="vlpipe.models.shallownet.model:build", tasks=("gaze",),
                     presets=PRESETS)
