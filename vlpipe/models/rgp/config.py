"""RGP's and the gaze-prior baselines' hyper-parameters (torch-free: checked when the workflow
is planned) and the thesis's sizes."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.models.config_checks import check_positive, positive_tuple

RECURRENT = ("conv_gru", "gru", "none")
PRIOR_KINDS = ("mean", "central", "uniform")


@dataclass
class RGPConfig:
    """Recurrent gaze prediction (thesis ch. 3.3.2); defaults are the thesis's sizes.

    C3D grid (h, w, C) → 1×1 conv to ``project_channels`` → conv-GRU (``kernel``²,
    ``state_channels``) → one transposed conv (k3, s2, p1: s → 2s − 1) per entry of
    ``deconv_channels``, ReLU after each → conv (``final_kernel``²) to 1 channel → softmax over
    the ``map_size``² cells. The thesis's ablations of the recurrence (Table 3.2):
    ``recurrent="none"`` is C3D+Conv (a ``kernel``² conv + tanh per frame instead of the
    conv-GRU); ``"gru"`` is C3D+GRU (a fully connected GRU of ``gru_hidden`` units over the
    flattened projected grid, its state mapped by a linear layer + tanh to the (h, w,
    ``state_channels``) grid the deconvs read: the thesis does not give its size).
    """

    project_channels: int = 512
    state_channels: int = 128
    kernel: int = 3
    deconv_channels: tuple[int, ...] = (64, 32, 16)
    final_kernel: int = 3
    map_size: int = 49
    recurrent: str = "conv_gru"
    gru_hidden: int = 512

    def __post_init__(self) -> None:
        positive_tuple(self, "deconv_channels", "one channel count per transposed conv")
        check_positive(self, "project_channels", "state_channels", "kernel", "final_kernel",
                  "map_size", "gru_hidden")
        for name in ("kernel", "final_kernel"):
            if getattr(self, name) % 2 != 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be odd ('same' padding)")
        if self.recurrent not in RECURRENT:
            raise ValueError(f"recurrent={self.recurrent!r}; allowed: {RECURRENT}")


# Thesis ch. 3.3.2 / Fig. 3.1(b): 7×7×512 projection, 7×7×128 state, 3×3 kernels, three
# transposed convs 7 → 13 → 25 → 49, a 49×49 map. The deconvs' widths are not legible in
# the text; (64, 32, 16) is this implementation's choice.
PRESETS: dict[str, dict] = {
    "paper": {"project_channels": 512, "state_channels": 128, "kernel": 3,
              "deconv_channels": (64, 32, 16), "map_size": 49, "recurrent": "conv_gru"},
}


@dataclass
class GazePriorConfig:
    """Gaze baselines without features: ``"mean"``, a learned ``map_size``² logit map shared by
    every frame (trained by the gaze cross-entropy it converges to the training frames' mean
    map: the data's central bias); ``"central"``, a fixed isotropic Gaussian at the centre with
    ``sigma`` cells (7 cells of 49 = the thesis's σ = 1 on the 7×7 grid); ``"uniform"``, a
    constant map. The fixed kinds have no trainable parameter (the training loop then scores
    the model once as it is)."""

    kind: str = "mean"
    sigma: float = 7.0
    map_size: int = 49

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise ValueError(f"kind={self.kind!r}; allowed: {PRIOR_KINDS}")
        if not isinstance(self.sigma, int | float) or not self.sigma > 0:
            raise ValueError(f"sigma={self.sigma!r}: must be a positive number (cells)")
        check_positive(self, "map_size")
