"""C3D (Tran et al., ICCV 2015): a 3-D CNN over windows of 16 frames, the classic motion feature.

One unit is a window of ``window`` frames ending at every ``stride``-th decoded frame; its step
time is the window's last frame (as in GEAN: a 16-frame window ending at each sampled frame).
Outputs (all after their ReLU, as Caffe's in-place ReLUs left the blobs that the original C3D
feature files were read from):

- ``fc6`` (4096,), ``fc7`` (4096,);
- ``conv5b``: for a 16×112×112 window conv5b is (512, 2, 7, 7) (C, t, h, w); its two temporal
  slices are stacked along the channels into a (7, 7, 1024) channels-last grid, channel
  ``t·512 + c`` — which is how the "7×7×1024" conv5b grid printed in the papers arises.

The network is written out here (C3D has no maintained PyTorch package); its parameter names are
those of ``c3d.pickle``, the Sports-1M weights converted to PyTorch by DavideA/c3d-pytorch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import (
    ArraySpec,
    Outputs,
    WindowedExtractor,
    he_initialise,
    select_outputs,
)
from vlpipe.extractors.weights import WEIGHT_FILES, resolve_weights

WEIGHTS_FILE, WEIGHTS_URL = WEIGHT_FILES["c3d"].file_name, WEIGHT_FILES["c3d"].url

# (conv layers, their width, the pool after them): 3×3×3 convs with padding 1, each + ReLU
STAGES = ((("conv1",), 64, (1, 2, 2)),
          (("conv2",), 128, (2, 2, 2)),
          (("conv3a", "conv3b"), 256, (2, 2, 2)),
          (("conv4a", "conv4b"), 512, (2, 2, 2)),
          (("conv5a", "conv5b"), 512, (2, 2, 2)))
OUTPUTS = ("fc6", "fc7", "conv5b")


def conv5b_size(window: int, image_size: int) -> tuple[int, int]:
    """conv5b's ``(t, side)`` for a ``window``-frame ``image_size``² input: pool1 halves space
    only, pool2–4 halve time and space (floored)."""
    return window // 8, image_size // 16


class C3DNet(nn.Module):
    """conv1 … conv5b, pool5 (padded (0, 1, 1) in h, w), fc6, fc7; returns post-ReLU ``conv5b``
    (N, 512, t, h, w), ``fc6`` and ``fc7`` (N, 4096). fc6's width follows the input size:
    8192 = 512·1·4·4 for 16×112×112, the Sports-1M layout."""

    def __init__(self, window: int = 16, image_size: int = 112) -> None:
        super().__init__()
        channels = 3
        for index, (convs, width, pool) in enumerate(STAGES, 1):
            for conv in convs:
                self.add_module(conv, nn.Conv3d(channels, width, kernel_size=3, padding=1))
                channels = width
            self.add_module(f"pool{index}", nn.MaxPool3d(
                pool, stride=pool, padding=(0, 1, 1) if index == len(STAGES) else 0))
        time, side = conv5b_size(window, image_size)
        self.fc6 = nn.Linear(channels * (time // 2) * (side // 2 + 1) ** 2, 4096)
        self.fc7 = nn.Linear(4096, 4096)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for index, (convs, _, _) in enumerate(STAGES, 1):
            for conv in convs:
                x = F.relu(getattr(self, conv)(x))
            conv5b = x  # after the last stage's convs: conv5b
            x = getattr(self, f"pool{index}")(x)
        fc6 = F.relu(self.fc6(x.flatten(1)))  # flattened in (C, t, h, w) order, as Caffe did
        return {"conv5b": conv5b, "fc6": fc6, "fc7": F.relu(self.fc7(fc6))}


def stack_time_in_channels(grid: torch.Tensor) -> torch.Tensor:
    """``(N, C, t, h, w)`` → ``(N, h, w, t·C)``: temporal slice ``t`` fills channels
    ``t·C … t·C + C - 1``."""
    n, c, t, h, w = grid.shape
    return grid.permute(0, 3, 4, 2, 1).reshape(n, h, w, t * c)


def _keep_signal(net: C3DNet) -> None:
    """He-initialise a randomly initialised C3D. It has no normalisation layers, so PyTorch's
    default init (weight variance 1/(3·fan_in)) shrinks the signal at every layer (raw pixels
    of RMS ~150 come out of fc6 at ~0.03). conv1 is also divided by 255, as if the pixels were
    in [0, 1]: conv5b and fc6 are then O(1) (RMS ~0.5–1) and float16-safe."""
    he_initialise(net)
    with torch.no_grad():
        net.conv1.weight.div_(255)


class C3D(WindowedExtractor):
    """Windows of frames → C3D ``fc6`` / ``fc7`` / ``conv5b`` (Sports-1M weights)."""

    name = "c3d"
    version = "1"

    def __init__(self, fps: float = 25.0, window: int = 16, stride: int = 5,
                 image_size: int = 112, outputs: tuple[str, ...] = ("fc6",),
                 weights_path: str | None = None, allow_random_init: bool = False,
                 seed: int = 0, precision: str = "auto") -> None:
        outputs = select_outputs("c3d", outputs, OUTPUTS)
        time, side = conv5b_size(window, image_size)
        if time < 2 or side < 1 or stride < 1:
            raise ValueError(f"c3d: needs window >= 16, image_size >= 16 and stride >= 1, got "
                             f"window={window}, image_size={image_size}, stride={stride}")
        self.window, self.stride, self.frames_per_unit = window, stride, window
        self.precision = precision
        # Short side resized to image_size, centre crop (DavideA/c3d-pytorch's predict.py).
        self.needs = FrameSpec(fps, image_size, crop=True)
        resolved = resolve_weights(
            WEIGHTS_FILE, path=weights_path, allow_random_init=allow_random_init, seed=seed,
            how_to_get=(f"It is the Sports-1M C3D converted to PyTorch by DavideA/c3d-pytorch: "
                        f"download {WEIGHTS_URL} on a machine with internet and copy it into "
                        f"the weight cache (or set weights_path)."))
        torch.manual_seed(seed)
        net = C3DNet(window, image_size)
        if resolved.pretrained:
            # fc8 is the Sports-1M classifier (487 classes), not a feature
            state = {k: v for k, v in resolved.state_dict.items() if not k.startswith("fc8.")}
            trained = state["fc6.weight"].shape[1]
            if trained != net.fc6.in_features:
                raise ValueError(f"c3d: the weights' fc6 takes {trained} inputs, which is "
                                 f"window 16 at image_size 112; window={window}, "
                                 f"image_size={image_size} give {net.fc6.in_features}")
            net.load_state_dict(state)
        else:
            _keep_signal(net)
        self.net = net.eval().to(memory_format=torch.channels_last_3d)
        self.weights_identity = resolved.identity
        self.primary = outputs[0]
        shapes = {"fc6": (4096,), "fc7": (4096,), "conv5b": (side, side, time * 512)}
        self.outputs = {name: ArraySpec(shapes[name]) for name in outputs}

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        # (N, T, H, W, 3) uint8 → (N, 3, T, H, W) float: the permuted view already has the
        # channels_last_3d layout. The converted Sports-1M weights take raw 0–255 RGB with no
        # mean subtracted (how DavideA/c3d-pytorch's predict.py feeds them).
        x = inputs.to(self.device, non_blocking=True).permute(0, 4, 1, 2, 3).float()
        with self.autocast():
            values = self.net(x.contiguous(memory_format=torch.channels_last_3d))
        result: dict[str, np.ndarray] = {}
        for name in self.outputs:
            value = values[name]
            if name == "conv5b":  # (N, 512, t, h, w) → (N, h, w, t·512)
                value = stack_time_in_channels(value)
            result[name] = value.float().cpu().numpy()
        return result
