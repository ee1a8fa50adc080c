"""Per-frame pooled features from torchvision ResNets (pool5: the global average pool)."""

from __future__ import annotations

import numpy as np
import torch
import torchvision

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import Extractor
from vlpipe.extractors.weights import resolve_weights

# torchvision weight enums: their URL names the file torch's hub cache holds.
WEIGHTS = {
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
    "resnet152": torchvision.models.ResNet152_Weights.IMAGENET1K_V2,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNetPool(Extractor):
    """ResNet pool5 per frame (2048-d for ResNet-50/152, 512-d for ResNet-34)."""

    version = "1"

    def __init__(self, arch: str = "resnet152", fps: float = 5.0, image_size: int = 224,
                 weights_path: str | None = None, allow_random_init: bool = False,
                 seed: int = 0, precision: str = "auto") -> None:
        if arch not in WEIGHTS:
            raise KeyError(f"unknown ResNet {arch!r}; known: {sorted(WEIGHTS)}")
        self.name, self._spec, self.precision = arch, FrameSpec(fps, image_size), precision
        file_name = WEIGHTS[arch].url.rsplit("/", 1)[-1]
        resolved = resolve_weights(
            file_name, path=weights_path, allow_random_init=allow_random_init, seed=seed,
            how_to_get=(f"Run torchvision.models.{arch}(weights='{WEIGHTS[arch].name}') on a "
                        f"machine with internet and copy "
                        f"~/.cache/torch/hub/checkpoints/{file_name}."),
        )
        torch.manual_seed(seed)
        # Random init zeroes each block's last BN, so the untrained 50-block network neither
        # explodes (float16 stores overflow otherwise) nor loses its input signal.
        net = getattr(torchvision.models, arch)(weights=None, zero_init_residual=True)
        if resolved.pretrained:
            net.load_state_dict(resolved.state_dict)
        net.fc = torch.nn.Identity()  # keep pool5
        self.net = net.eval().to(memory_format=torch.channels_last)
        self.weights_identity = resolved.identity
        self.dim = 512 if arch == "resnet34" else 2048
        self.device = torch.device("cpu")
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @property
    def frame_spec(self) -> FrameSpec:
        return self._spec

    def to(self, device: torch.device) -> ResNetPool:
        self.device = torch.device(device)
        self.net = self.net.to(self.device)
        self._mean, self._std = self._mean.to(self.device), self._std.to(self.device)
        return self

    def _autocast(self):
        use_half = self.precision == "bf16" or (self.precision == "auto" and
                                                self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_half)

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> np.ndarray:
        # (T, H, W, 3) uint8 → (T, 3, H, W) float in [0, 1], ImageNet-normalised
        x = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            features = self.net(x)
        return features.float().cpu().numpy()
