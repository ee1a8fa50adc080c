"""I3D ResNet-50 (pytorchvideo's Kinetics-400 ``i3d_r50``) over windows of frames.

One unit is a window of ``window`` frames; windows do not overlap by default and each step's
time is its window's last frame. The defaults match the pretrained 8×8 model: 8 frames taken
every 8th frame of 30 fps Kinetics video, i.e. 8 frames at 3.75 fps (a 2.13 s window), 224×224,
Kinetics mean/std normalisation.

Outputs: ``pooled`` (2048,), the head's global average pool (before its dropout and projection);
``grid`` (h, w, 2048) channels-last, the last res stage's output averaged over its time axis
(7×7 at 224 px) — the "I3D last conv" grid of CiSIN/TAPM-style models.
"""

from __future__ import annotations

import torch
from pytorchvideo.models.hub.resnet import i3d_r50
from torch import nn

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import (
    ArraySpec,
    Outputs,
    WindowedExtractor,
    normalized_images,
    select_outputs,
)
from vlpipe.extractors.weights import WEIGHT_FILES, resolve_weights

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
WEIGHTS_URL = WEIGHT_FILES["i3d"].url
OUTPUTS = ("pooled", "grid")


def grid_side(image_size: int) -> int:
    """Side of the last res stage's grid: five stride-2 steps (stem conv, stem pool, res3–5),
    each ``ceil(side / 2)`` with their paddings."""
    side = image_size
    for _ in range(5):
        side = -(-side // 2)
    return side


class I3D(WindowedExtractor):
    """Windows of frames → I3D-R50 ``pooled`` vector and/or last-stage ``grid``."""

    name = "i3d"
    version = "1"

    def __init__(self, fps: float = 3.75, window: int = 8, stride: int | None = None,
                 image_size: int = 224, outputs: tuple[str, ...] = ("pooled",),
                 weights_path: str | None = None, allow_random_init: bool = False,
                 seed: int = 0, precision: str = "auto") -> None:
        outputs = select_outputs("i3d", outputs, OUTPUTS)
        stride = window if stride is None else stride
        if window < 2 or stride < 1:  # res2's temporal max pool needs 2 frames
            raise ValueError(f"i3d: needs window >= 2 and stride >= 1, got window={window}, "
                             f"stride={stride}")
        self.window, self.stride, self.frames_per_unit = window, stride, window
        self.precision = precision
        self.needs = FrameSpec(fps, image_size, crop=True)
        resolved = resolve_weights(
            WEIGHT_FILES["i3d"].file_name, path=weights_path,
            allow_random_init=allow_random_init, seed=seed,
            state_key="model_state",
            how_to_get=(f"Download {WEIGHTS_URL} (what pytorchvideo's i3d_r50(pretrained=True) "
                        f"fetches into ~/.cache/torch/hub/checkpoints/) on a machine with "
                        f"internet and copy it into the weight cache (or set weights_path)."))
        torch.manual_seed(seed)
        # The head's AvgPool3d((4, 7, 7)) is a global average only for 8×224² windows; an
        # adaptive pool is the same there, fits any window/size and has no weights. A random
        # init needs no rescaling: pytorchvideo's ResNet init keeps the stages O(1) (BN).
        net = i3d_r50(pretrained=False, head_pool=nn.AdaptiveAvgPool3d)
        if resolved.pretrained:
            net.load_state_dict(resolved.state_dict)
        self.net = net.eval().to(memory_format=torch.channels_last_3d)
        self.weights_identity = resolved.identity
        self.primary = outputs[0]
        side = grid_side(image_size)
        shapes = {"pooled": (2048,), "grid": (side, side, 2048)}
        self.outputs = {name: ArraySpec(shapes[name]) for name in outputs}

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        x = inputs.to(self.device, non_blocking=True)
        n, t, h, w, _ = x.shape
        # (N, T, H, W, 3) → (N·T, 3, H, W) normalised, channels-last → (N, 3, T, H, W), whose
        # strides are then those of channels_last_3d
        x = normalized_images(x.flatten(0, 1), KINETICS_MEAN, KINETICS_STD)
        x = x.view(n, t, 3, h, w).permute(0, 2, 1, 3, 4)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        *body, head = self.net.blocks
        with self.autocast():
            for block in body:
                x = block(x)  # ends as the last res stage's output (N, 2048, t', h', w')
        x = x.float()  # averages in float32
        values = {"pooled": head.pool(x).flatten(1),
                  "grid": x.mean(dim=2).permute(0, 2, 3, 1)}  # (N, h', w', 2048)
        return {name: values[name].cpu().numpy() for name in self.outputs}
