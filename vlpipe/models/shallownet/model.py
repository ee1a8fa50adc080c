"""ShallowNet on the frames' pixels (see `vlpipe.models.shallownet.config`): each frame's
(H, W, 3) pixels → convs + ReLU + max-pool → maxout layer → [GRU over the frames] → one logit
per map cell → log-softmax over the cells. Without the GRU each frame is predicted on its own,
as an image saliency model. Right padding never reaches a valid step (the GRU runs forward)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.inputs import ModelInputs, only_grid_input
from vlpipe.models.shallownet.config import ShallowNetConfig


class ShallowNet(nn.Module):
    """Frames (B, N, H·W·3) → per-step log-probabilities (B, N, G, G)."""

    def __init__(self, config: ShallowNetConfig, image: tuple[int, int, int]) -> None:
        super().__init__()
        self.config, self.image = config, tuple(image)
        layers: list[nn.Module] = []
        channels, side = image[2], image[:2]
        for width, kernel in zip(config.conv_channels, config.conv_kernels, strict=True):
            layers += [nn.Conv2d(channels, width, kernel, padding=kernel // 2), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels, side = width, (side[0] // 2, side[1] // 2)
        if min(side) < 1:
            raise ValueError(f"ShallowNet: {image[0]}×{image[1]} frames are too small for "
                             f"{len(config.conv_channels)} 2×2 poolings")
        self.convs = nn.Sequential(*layers)
        self.maxout = nn.Linear(channels * side[0] * side[1],
                                config.hidden * config.maxout_pieces)
        self.recurrent = (nn.GRU(config.hidden, config.hidden, batch_first=True)
                          if config.recurrent == "gru" else None)
        self.out = nn.Linear(config.hidden, config.map_size**2)

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        """feats (B, N, H·W·3) (the frames flattened channels-last), mask (B, N) →
        log-probabilities (B, N, G, G)."""
        batch, steps = mask.shape
        frames = feats.unflatten(-1, self.image).flatten(0, 1)  # (B·N, H, W, 3)
        x = self.convs(frames.permute(0, 3, 1, 2)).flatten(1)  # (B·N, C·h·w)
        x = self.maxout(x).unflatten(-1, (self.config.hidden, -1)).amax(dim=-1)  # (B·N, hidden)
        x = x.unflatten(0, (batch, steps))  # (B, N, hidden)
        if self.recurrent is not None:
            x, _ = self.recurrent(x)  # (B, N, hidden)
        logits = self.out(x).float()  # (B, N, G²)
        size = self.config.map_size
        return F.log_softmax(logits, dim=-1).unflatten(-1, (size, size))


def build(config: ShallowNetConfig, inputs: ModelInputs) -> ShallowNet:
    """ShallowNet over the input named ``frames`` (or the only input), a (H, W, 3) grid."""
    if inputs.predicts != "gaze":
        raise ValueError(f"ShallowNet predicts gaze maps, not {inputs.predicts!r}")
    return ShallowNet(config, only_grid_input(inputs, "frames", "ShallowNet").shape)
