"""The extractor interface.

An extraction job decodes each clip once (``vlpipe.decode.decode_media``) for every extractor it
runs, then for each extractor:

1. ``prepare(media)`` — CPU, inside a decode worker: the clip's decoded input → ``Units``, one
   row per network input (a frame, a 16-frame window, a 0.96 s log-mel example, ...);
2. ``forward(inputs)`` — on the device, batched over the units of many clips → one output row
   (or one ragged entry, e.g. a frame's detections) per unit;
3. ``finish(units, outputs)`` — per clip: the outputs of its units → the arrays the store keeps
   (aligned to the step times, tracks linked, masks set, ...).

Every output array is declared in ``outputs`` with its per-row shape, dtype and axis: ``step``
arrays have one row per time step of the clip (``Units.times``); ``instance`` arrays one row per
detection (faces, person boxes), with an ``instance`` array named ``step`` saying where it is.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vlpipe.decode import AudioSpec, DecodedMedia, FrameSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ArraySpec:
    """One output array: ``shape`` and ``dtype`` of a row; ``axis`` = "step" or "instance"."""

    shape: tuple[int, ...]
    dtype: str = "float16"
    axis: str = "step"


@dataclass
class Units:
    """One clip made ready for the network.

    ``inputs`` has one row per unit; ``times`` are the clip's output steps (seconds from the clip
    start); ``context`` carries whatever ``finish`` needs besides the network outputs.
    """

    inputs: torch.Tensor  # (U, ...)
    times: np.ndarray  # (T,)
    context: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)


Outputs = dict[str, Any]  # name → np.ndarray (U, ...) or a list of U ragged entries


class Extractor(ABC):
    """A frozen network that turns decoded media into per-step (and per-instance) arrays.

    Subclasses set ``name``, ``version`` (bump when the output for the same input changes),
    ``needs`` (what to decode), ``weights_identity`` (from ``resolve_weights``), ``outputs``,
    ``primary`` (a step array: what ``FeatureStore[clip]`` and sequence models read) and ``net``
    (the ``torch.nn.Module`` that ``to`` moves).
    """

    name: str
    needs: FrameSpec | AudioSpec
    version: str
    weights_identity: str
    outputs: dict[str, ArraySpec]
    primary: str
    net: torch.nn.Module
    frames_per_unit: int = 1  # decoded frames (or audio examples) one unit stands for
    precision: str = "auto"  # auto (bf16 on cuda) | fp32 | bf16
    device: torch.device = torch.device("cpu")

    def prepare(self, media: DecodedMedia) -> Units:
        """Default for per-frame networks: every sampled frame is one unit and one step."""
        frames, times = media.frames[self.needs]
        return Units(torch.from_numpy(frames), times)

    @abstractmethod
    def forward(self, inputs: torch.Tensor) -> Outputs:
        """``inputs (N, ...)`` (units of several clips) → outputs with N rows/entries."""

    def finish(self, units: Units, outputs: Outputs) -> dict[str, np.ndarray]:
        """Default: the units are the steps, the outputs are the arrays. A clip without units
        gets empty ``outputs`` ({})."""
        return outputs

    @property
    def dim(self) -> int:
        """Width of the primary array (its row flattened)."""
        return int(np.prod(self.outputs[self.primary].shape))

    def to(self, device: torch.device | str) -> Extractor:
        self.device = torch.device(device)
        self.net = self.net.to(self.device)
        return self

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA (precision "auto") or where asked for ("bf16")."""
        use_half = self.precision == "bf16" or (self.precision == "auto" and
                                                self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_half)

    def provenance(self) -> dict:
        """What the stored arrays depend on besides the clip (compared for incremental reuse)."""
        needs = self.needs
        return {"extractor": self.name, "extractor_version": self.version,
                "weights": self.weights_identity, "needs": {"kind": type(needs).__name__,
                                                            **needs.__dict__},
                "outputs": {k: [list(v.shape), v.dtype, v.axis] for k, v in self.outputs.items()},
                "primary": self.primary}


class WindowedExtractor(Extractor):
    """A clip network: units are windows of ``window`` frames ending at every ``stride``-th
    decoded frame (see ``sliding_windows``); a step's time is its window's last frame."""

    window: int
    stride: int

    def prepare(self, media: DecodedMedia) -> Units:
        frames, times = media.frames[self.needs]
        windows, ends = sliding_windows(frames, times, self.window, self.stride)
        return Units(torch.from_numpy(windows), ends)  # (U, window, H, W, 3) uint8


def select_outputs(name: str, outputs, known) -> tuple[str, ...]:
    """The configured ``outputs`` (the first is the primary), checked against the ``known``
    ones; an empty or unknown choice is an error naming the extractor."""
    outputs = tuple(outputs)
    if not outputs or not set(outputs) <= set(known):
        raise ValueError(f"{name}: outputs must be a non-empty subset of {list(known)}, "
                         f"got {list(outputs)}")
    return outputs


def he_initialise(net: torch.nn.Module) -> None:
    """He-initialise every conv and linear layer of a randomly initialised network (zero
    biases). Frameworks' default inits shrink the signal layer by layer in deep ReLU networks
    without normalisation (features of ~1e-12 to ~1e-3 that overflow or vanish in float16
    stores); He init keeps it O(1) through the ReLUs."""
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Conv3d | torch.nn.Linear):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def normalized_images(frames: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      channels_last: bool = True) -> torch.Tensor:
    """``frames (N, H, W, 3) uint8`` → ``(N, 3, H, W) float32``, scaled to [0, 1] and
    normalised per channel."""
    x = frames.permute(0, 3, 1, 2).float().div_(255)
    mean_t = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean_t) / std_t
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def sliding_windows(frames: np.ndarray, times: np.ndarray, window: int,
                    stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``window`` consecutive frames ending at every ``stride``-th frame.

    ``frames (T, ...)`` → ``windows (U, window, ...)`` and the time of each window's last frame
    ``(U,)``; windows reaching before the first frame repeat it (so short clips still give one
    window). The first window ends at frame ``min(window, T) - 1``.
    """
    count = len(frames)
    ends = np.arange(min(window, count) - 1, count, stride)
    # (U, window) frame indices, clamped at 0: repeat-pad from the start
    index = np.clip(ends[:, None] - np.arange(window - 1, -1, -1)[None, :], 0, None)
    return frames[index], times[ends]
