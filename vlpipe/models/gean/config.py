"""GEAN's hyper-parameters (torch-free: checked when the workflow is planned) and the thesis's
sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from vlpipe.models.config_checks import check_dropout, check_positive
from vlpipe.models.rgp import FAMILY as RGP_FAMILY
from vlpipe.models.rgp.config import RGPConfig

POOLS = ("scene", "motion", "fovea")  # the named inputs GEAN reads, in aggregation order
GAZE_KINDS = ("rgp", "uniform", "random", "central", "peripheral", "none")


@dataclass
class GEANConfig:
    """Gaze Encoding Attention Network (thesis ch. 3.3.3–3.3.4); defaults are the thesis's.

    ``pools``: which of the named inputs ``scene`` / ``motion`` / ``fovea`` are feature pools
    (Table 3.4's GEAN+GNet = ``[fovea]``, +C3D = ``[motion, fovea]``, +Scene = all three); with
    ``gaze="rgp"`` the ``motion`` input is read by the RGP even when it is not a pool.
    ``*_steps``: each pool's length cap (longer clips are subsampled uniformly).
    ``gaze``: the spatial attention map on the motion and fovea grids: ``"rgp"`` (predicted by the
    nested RGP, built from ``rgp``: RGP's model_args, a ``preset`` too), or Table 3.5's fixed maps
    ``"uniform"``, ``"random"`` (a random cell per frame), ``"central"``, ``"peripheral"``, each a
    one-hot cell smoothed with ``fixed_sigma`` grid cells; ``"none"`` (no spatial attention: the
    grids are mean-pooled). ``gaze_uniform``: λ, the weight of the uniform distribution mixed into
    every map. Widths: ``word_dim`` (B), ``attention_hidden`` (w, W_q, U_q), ``attention_gru``,
    ``multimodal_gru``, ``{scene,motion,fovea}_width`` (W_g rows).
    """

    word_dim: int = 512
    attention_hidden: int = 64
    attention_gru: int = 512
    multimodal_gru: int = 512
    scene_width: int = 256
    motion_width: int = 256
    fovea_width: int = 512
    dropout: float = 0.5
    pools: tuple[str, ...] = POOLS
    scene_steps: int = 20
    motion_steps: int = 35
    fovea_steps: int = 35
    gaze: str = "rgp"
    gaze_uniform: float = 0.6
    fixed_sigma: float = 1.0
    rgp: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_positive(self, "word_dim", "attention_hidden", "attention_gru", "multimodal_gru",
                       "scene_width", "motion_width", "fovea_width", "scene_steps",
                       "motion_steps", "fovea_steps")
        check_dropout(self)
        if isinstance(self.pools, str) or not self.pools:
            raise ValueError(f"pools={self.pools!r}: a non-empty list out of {POOLS}")
        self.pools = tuple(self.pools)
        unknown = [pool for pool in self.pools if pool not in POOLS]
        if unknown or len(set(self.pools)) != len(self.pools):
            raise ValueError(f"pools={list(self.pools)}: distinct names out of {POOLS}")
        if self.gaze not in GAZE_KINDS:
            raise ValueError(f"gaze={self.gaze!r}; allowed: {GAZE_KINDS}")
        if not self.gaze_uniform >= 0:
            raise ValueError(f"gaze_uniform={self.gaze_uniform!r}: must be ≥ 0")
        if not self.fixed_sigma > 0:
            raise ValueError(f"fixed_sigma={self.fixed_sigma!r}: must be > 0 (grid cells)")
        if not isinstance(self.rgp, dict):
            raise ValueError(f"rgp={self.rgp!r}: a mapping of RGP settings")
        # RGP's own settings, a preset expanded (`rgp: {preset: paper}` as gaze_prediction's)
        self.rgp = RGP_FAMILY.settings(self.rgp, "gaze", "rgp: ")

    @property
    def rgp_config(self) -> RGPConfig:
        return RGPConfig(**self.rgp)


# Thesis ch. 3.3.3–3.3.4: B ∈ R^{512×V}; w ∈ R^64; both GRUs 512; W_g^s, W_g^m 256 rows and
# W_g^f 512 (q ∈ R^1024); dropout 0.5; pools of 20 / 35 / 35 frames; λ = 0.6; σ = 1 cell for the
# fixed maps (Table 3.5); the RGP of ch. 3.3.2.
PRESETS: dict[str, dict] = {
    "paper": {"word_dim": 512, "attention_hidden": 64, "attention_gru": 512,
              "multimodal_gru": 512, "scene_width": 256, "motion_width": 256,
              "fovea_width": 512, "dropout": 0.5, "scene_steps": 20, "motion_steps": 35,
              "fovea_steps": 35, "gaze_uniform": 0.6, "fixed_sigma": 1.0, "rgp": {}},
}
