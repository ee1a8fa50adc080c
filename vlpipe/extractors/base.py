"""The extractor interface: what an extractor needs from decoding and what it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from vlpipe.decode import FrameSpec


class Extractor(ABC):
    """A frozen network that maps decoded frames to one feature vector per time step."""

    name: str
    version: str  # bump when the output for the same input changes
    dim: int
    weights_identity: str

    @property
    @abstractmethod
    def frame_spec(self) -> FrameSpec:
        """The frames this extractor consumes."""

    @abstractmethod
    def to(self, device: torch.device) -> Extractor:
        """Move the network to ``device``."""

    @abstractmethod
    def __call__(self, frames: torch.Tensor) -> np.ndarray:
        """``frames (T, H, W, 3) uint8`` → ``features (T, dim) float32``."""

    def provenance(self) -> dict:
        return {"extractor": self.name, "extractor_version": self.version,
                "weights": self.weights_identity, "fps": self.frame_spec.fps,
                "image_size": self.frame_spec.size, "dim": self.dim}
