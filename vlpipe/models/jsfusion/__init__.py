"""JSFusion (ECCV 2018): retrieval, multiple choice and fill-in-the-blank. ``model`` holds the
network, ``scoring`` its dense test-time scorer and ``triton_kernels`` the scorer's fused
kernels; the registry entry below ties them together, so the model never imports its scorer."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.jsfusion.config import PRESETS, JSFusionConfig


def _head(predicts: str) -> dict:
    """A score per pair (retrieval, multiple choice) or a word per blank (FIB)."""
    return {"output": predicts}


FAMILY = ModelFamily(
    name="jsfusion", config=JSFusionConfig, builder="vlpipe.models.jsfusion.model:build",
    tasks=("retrieval", "multiple_choice", "fill_in_blank"), task_fields=_head,
    presets=PRESETS, scorer="vlpipe.models.jsfusion.scoring:PairScorer")
