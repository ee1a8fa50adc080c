"""Per-frame ImageNet CNNs from torchvision: a pooled vector and/or the last conv grid.

ResNet-34/50/152: ``pool5`` (global average pool, 512 / 2048) and ``res5c`` (layer4 output,
h×w×C, 7×7 at 224 px). GoogLeNet: ``pool5`` (1024) and ``inception5b`` (7×7×1024 at 224 px).
Both outputs come from one forward pass; grids are stored channels-last, ``(h, w, C)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import (
    ArraySpec,
    Extractor,
    Outputs,
    he_initialise,
    normalized_images,
    select_outputs,
)
from vlpipe.extractors.weights import resolve_weights

# Classifier parameters in weight files, unused here: so ImageNet files (GoogLeNet's keep their
# auxiliary heads) and others, e.g. GoogLeNet-Places205 (GEAN's scene stream), load alike.
CLASSIFIER_HEADS = ("fc.", "aux1.", "aux2.")


@dataclass(frozen=True)
class Backbone:
    weights: torchvision.models.WeightsEnum  # its URL names the file the caches hold
    grid_node: str  # torchvision graph node of the last conv grid
    grid_name: str  # how the papers call it
    build_args: dict


BACKBONES = {
    # Random init zeroes each residual block's last BN, so an untrained deep ResNet neither
    # explodes (float16 stores overflow otherwise) nor loses its input signal.
    "resnet34": Backbone(torchvision.models.ResNet34_Weights.IMAGENET1K_V1, "layer4", "res5c",
                         {"zero_init_residual": True}),
    "resnet50": Backbone(torchvision.models.ResNet50_Weights.IMAGENET1K_V2, "layer4", "res5c",
                         {"zero_init_residual": True}),
    "resnet152": Backbone(torchvision.models.ResNet152_Weights.IMAGENET1K_V2, "layer4", "res5c",
                          {"zero_init_residual": True}),
    "googlenet": Backbone(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1, "inception5b",
                          "inception5b", {"aux_logits": False, "init_weights": True}),
}


class ImageNetCNN(Extractor):
    """Frames → ``pool5`` and/or the conv grid of a torchvision ImageNet CNN."""

    version = "2"

    def __init__(self, arch: str = "resnet152", fps: float = 5.0, image_size: int = 224,
                 crop: bool = True, outputs: tuple[str, ...] = ("pool5",),
                 weights_path: str | None = None, allow_random_init: bool = False,
                 seed: int = 0, precision: str = "auto") -> None:
        if arch not in BACKBONES:
            raise KeyError(f"unknown backbone {arch!r}; known: {sorted(BACKBONES)}")
        backbone = BACKBONES[arch]
        outputs = select_outputs(arch, outputs, ("pool5", backbone.grid_name))
        self.name, self.precision = arch, precision
        self.needs = FrameSpec(fps, image_size, crop)
        file_name = backbone.weights.url.rsplit("/", 1)[-1]
        resolved = resolve_weights(
            file_name, path=weights_path, allow_random_init=allow_random_init, seed=seed,
            how_to_get=(f"Run torchvision.models.{arch}(weights='{backbone.weights.name}') on a "
                        f"machine with internet and copy "
                        f"~/.cache/torch/hub/checkpoints/{file_name}."))
        torch.manual_seed(seed)
        # torchvision's pretrained GoogLeNet re-normalises its input (transform_input).
        extra = {"transform_input": True} if arch == "googlenet" and resolved.pretrained else {}
        net = getattr(torchvision.models, arch)(weights=None, **backbone.build_args, **extra)
        net.fc = torch.nn.Identity()  # the classifier is not a feature: any class count loads
        if resolved.pretrained:
            net.load_state_dict({k: v for k, v in resolved.state_dict.items()
                                 if not k.startswith(CLASSIFIER_HEADS)})
        elif arch == "googlenet":  # its std-0.01 init shrinks the signal to ~1e-12 at inception5b
            he_initialise(net)
        nodes = {"flatten": "pool5", backbone.grid_node: backbone.grid_name}
        self.net = create_feature_extractor(
            net.eval(), {k: v for k, v in nodes.items() if v in outputs})
        self.net = self.net.to(memory_format=torch.channels_last)
        self.weights_identity = resolved.identity
        self.primary = outputs[0]
        self.outputs = self._output_specs(outputs)

    def _output_specs(self, names: tuple[str, ...]) -> dict[str, ArraySpec]:
        """Output shapes from one dummy frame (grid size depends on the image size)."""
        probe = torch.zeros(1, self.needs.size, self.needs.size, 3, dtype=torch.uint8)
        with torch.inference_mode():
            shapes = {k: v.shape[1:] for k, v in self.net(normalized_images(probe)).items()}
        # grids (C, h, w) are stored channels-last (h, w, C)
        return {k: ArraySpec(tuple(shapes[k]) if len(shapes[k]) == 1
                             else (*shapes[k][1:], shapes[k][0])) for k in names}

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        x = normalized_images(inputs.to(self.device, non_blocking=True))
        with self.autocast():
            outputs = self.net(x)
        result = {}
        for name, value in outputs.items():
            if value.ndim == 4:  # (N, C, h, w) → (N, h, w, C)
                value = value.permute(0, 2, 3, 1)
            result[name] = value.float().cpu().numpy()
        return result
