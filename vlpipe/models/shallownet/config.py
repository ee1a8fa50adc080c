"""ShallowNet's hyper-parameters (torch-free: checked when the workflow is planned)."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.models.config_checks import check_positive, positive_tuple

RECURRENT = ("none", "gru")


@dataclass
class ShallowNetConfig:
    """A shallow convnet from a frame's pixels to its gaze map.

    Each entry of ``conv_channels`` (with the same entry of ``conv_kernels``) is a conv with
    "same" padding + ReLU + 2×2 max-pool; the last grid, flattened, goes through a fully
    connected maxout layer (``hidden`` units, each the max of ``maxout_pieces`` linear ones);
    ``recurrent="gru"`` (the thesis's ShallowNet+GRU) then runs a GRU of ``hidden`` units over
    the frames; a fully connected layer gives one logit per cell of the ``map_size``² map and a
    softmax the map. Defaults follow Pan et al.'s shallow net as far as the thesis cites it
    (three convs 5×5×32, 3×3×64, 3×3×64; a 4,608-unit maxout layer of 2 pieces, i.e. 2,304
    outputs; a 48×48 map, here 49×49 as the gaze task's).
    """

    conv_channels: tuple[int, ...] = (32, 64, 64)
    conv_kernels: tuple[int, ...] = (5, 3, 3)
    hidden: int = 2304
    maxout_pieces: int = 2
    recurrent: str = "none"
    map_size: int = 49

    def __post_init__(self) -> None:
        positive_tuple(self, "conv_channels", "one entry per conv")
        positive_tuple(self, "conv_kernels", "one entry per conv")
        if len(self.conv_channels) != len(self.conv_kernels):
            raise ValueError(f"conv_channels {list(self.conv_channels)} and conv_kernels "
                             f"{list(self.conv_kernels)}: one kernel per conv")
        if any(kernel % 2 != 1 for kernel in self.conv_kernels):
            raise ValueError(f"conv_kernels={list(self.conv_kernels)}: must be odd ('same' "
                             "padding)")
        check_positive(self, "hidden", "maxout_pieces", "map_size")
        if self.recurrent not in RECURRENT:
            raise ValueError(f"recurrent={self.recurrent!r}; allowed: {RECURRENT}")


PRESETS: dict[str, dict] = {
    "paper": {"conv_channels": (32, 64, 64), "conv_kernels": (5, 3, 3), "hidden": 2304,
              "maxout_pieces": 2, "map_size": 49},
}
