"""The sampled frames themselves, downscaled: the input of models that learn from pixels
(ShallowNet, the thesis's image-saliency baseline for gaze prediction)."""

from __future__ import annotations

import torch

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import ArraySpec, Extractor, Outputs


class Frames(Extractor):
    """Frames at ``fps`` → ``pixels`` (image_size, image_size, 3) per step, RGB in [0, 1]
    (float16), channels-last like the CNN grids. ``crop=False`` (the default) squashes the whole
    frame to the square, so the pixels cover the area the gaze maps do; ``True`` keeps the
    centre square."""

    name = "frames"
    version = "1"
    weights_identity = "none"  # no network: the pixels are the feature
    primary = "pixels"

    def __init__(self, fps: float = 5.0, image_size: int = 96, crop: bool = False) -> None:
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise ValueError(f"frames: image_size={image_size!r}, must be a positive integer")
        self.needs = FrameSpec(fps, image_size, crop)
        self.outputs = {"pixels": ArraySpec((image_size, image_size, 3))}
        self.net = torch.nn.Identity()

    def forward(self, inputs: torch.Tensor) -> Outputs:
        """Frames (N, H, W, 3) uint8 → ``pixels`` (N, H, W, 3) float32 in [0, 1]."""
        return {"pixels": inputs.float().div(255).cpu().numpy()}
