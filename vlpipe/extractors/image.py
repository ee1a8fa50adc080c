"""Per-frame ImageNet CNNs from torchvision: a pooled vector and/or the last conv grid.

ResNet-34/50/152: ``pool5`` (global average pool, 512 / 2048) and ``res5c`` (layer4 output,
h×w×C, 7×7 at 224 px). GoogLeNet: ``pool5`` (1024) and ``inception5b`` (7×7×1024 at 224 px).
Both outputs come from one forward pass; grids are stored channels-last, ``(h, w, C)``.

Preprocessing follows the weight file's own evaluation transform, as torchvision's weight
metadata gives it (``<Arch>_Weights.<NAME>.transforms()``, the file found by its URL's name):
ImageNet-1K V2 ResNets resize the shorter side to 232 and centre-crop 224, V1 files (ResNet-34,
GoogLeNet, the V1 ResNet-50/152) 256 → 224; RGB in [0, 1] normalised by the ImageNet mean and
std. A file torchvision does not name (a ``weights_path`` of other origin) keeps the library's
default, the shorter side resized straight to the crop (224 → 224); ``resize`` and
``image_size`` (the crop) override either. The transform is recorded in the store's provenance.

Only torchvision-layout state dicts load (BatchNorm included): a Caffe GoogLeNet (LRN, no
BatchNorm, BGR mean-subtracted input), e.g. a converted GoogLeNet-Places205, is an error naming
the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from vlpipe.decode import DecodedMedia, FrameSpec
from vlpipe.extractors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ArraySpec,
    Extractor,
    Outputs,
    Units,
    he_initialise,
    normalized_images,
    select_outputs,
)
from vlpipe.extractors.weights import WEIGHT_FILES, ResolvedWeights, resolve_weights

# Classifier parameters in weight files, unused here: so ImageNet files (GoogLeNet's keep their
# auxiliary heads) and others of torchvision's layout, e.g. with a 205-class Places classifier,
# load alike.
CLASSIFIER_HEADS = ("fc.", "aux1.", "aux2.")


@dataclass(frozen=True)
class Backbone:  # its weight file: WEIGHT_FILES[arch], one of torchvision's (torchvision_weights)
    grid_node: str  # torchvision graph node of the last conv grid
    grid_name: str  # how the papers call it
    build_args: dict


BACKBONES = {
    # Random init zeroes each residual block's last BN, so an untrained deep ResNet neither
    # explodes (float16 stores overflow otherwise) nor loses its input signal.
    "resnet34": Backbone("layer4", "res5c", {"zero_init_residual": True}),
    "resnet50": Backbone("layer4", "res5c", {"zero_init_residual": True}),
    "resnet152": Backbone("layer4", "res5c", {"zero_init_residual": True}),
    "googlenet": Backbone("inception5b", "inception5b",
                          {"aux_logits": False, "init_weights": True}),
}


DEFAULT_CROP = 224  # the library's crop for weight files torchvision does not name


@dataclass(frozen=True)
class Transform:
    """Frames → network input: the shorter side resized to ``resize`` and the centre
    ``crop``×``crop`` kept (``resize`` None: the whole frame squashed to ``crop``×``crop``), RGB
    scaled to [0, 1] and normalised by ``mean`` and ``std``; ``source`` says where these come
    from."""

    resize: int | None
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def record(self) -> dict:
        """For provenance (the decoder resizes with FFmpeg's bilinear scaler, as torchvision's
        transforms interpolate bilinearly)."""
        return {"mode": "centre-crop" if self.resize else "squash", "resize": self.resize,
                "crop": self.crop, "interpolation": "bilinear", "channels": "RGB",
                "mean": list(self.mean), "std": list(self.std), "source": self.source}


def torchvision_weights(arch: str, file_name: str) -> torchvision.models.WeightsEnum | None:
    """torchvision's weights entry whose URL names ``file_name`` (e.g. "resnet152-f82ba261.pth"
    → ``ResNet152_Weights.IMAGENET1K_V2``), or None."""
    for weights in torchvision.models.get_model_weights(arch):
        if weights.url.rsplit("/", 1)[-1] == file_name:
            return weights
    return None


def choose_transform(arch: str, file_name: str | None, image_size: int | None = None,
                     resize: int | None = None, crop: bool = True) -> Transform:
    """The transform for weight file ``file_name`` of ``arch`` (None: a random init, which
    stands in for the backbone's default file): torchvision's own for a file it names, else the
    library's default (resize = crop = 224). ``image_size`` (the crop) and ``resize`` override;
    a crop of another size keeps the weights' resize/crop ratio (232/224 × 448 = 464)."""
    stand_in = file_name is None
    if stand_in:
        file_name = WEIGHT_FILES[arch].file_name
    weights = torchvision_weights(arch, file_name)
    if weights is not None:
        meta = weights.transforms()
        base_resize, base_crop = meta.resize_size[0], meta.crop_size[0]
        mean, std = tuple(meta.mean), tuple(meta.std)
        source = f"torchvision {type(weights).__name__}.{weights.name}"
        if stand_in:
            source += " (random init in its place)"
    else:
        base_resize = base_crop = DEFAULT_CROP
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        source = f"default ({file_name} is not a torchvision file)"
    crop_size = image_size or base_crop
    if not crop:
        if resize is not None:
            raise ValueError(f"{arch}: resize={resize} needs crop: true (crop: false squashes "
                             f"the whole frame to image_size)")
        return Transform(None, crop_size, mean, std, source)
    if resize is None:
        resize = round(crop_size * base_resize / base_crop)
    if resize < crop_size:
        raise ValueError(f"{arch}: resize ({resize}) must be at least the crop, image_size "
                         f"({crop_size})")
    return Transform(resize, crop_size, mean, std, source)


CAFFE_STYLE = (
    "It has no BatchNorm statistics: a Caffe-style network (e.g. GoogLeNet-Places205 or "
    "-Places365 converted from Caffe: LRN, no BatchNorm, BGR mean-subtracted input) is not "
    "supported. Weight files must be torchvision state dicts of torchvision.models.{arch} "
    "(BatchNorm included), e.g. one trained or fine-tuned on Places with torchvision.")


def torchvision_state_dict(state: dict) -> dict:
    """A checkpoint's state dict: under "state_dict" if nested there (training checkpoints),
    without DataParallel's "module." prefix."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def load_backbone(net: torch.nn.Module, arch: str, resolved: ResolvedWeights) -> None:
    """Load the weight file's parameters (its classifier heads left out) into ``net``, or fail
    naming the file and what does not fit."""
    where = resolved.path
    state = {k: v for k, v in torchvision_state_dict(resolved.state_dict).items()
             if not k.startswith(CLASSIFIER_HEADS)}
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that do not fit
        raise ValueError(f"{where}: does not fit torchvision.models.{arch}: {err}") from None
    if result.missing_keys or result.unexpected_keys:
        def some(keys):
            return ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
        caffe = not any(k.endswith("running_mean") for k in state)
        raise ValueError(
            f"{where}: not a torchvision.models.{arch} state dict: "
            f"{len(result.missing_keys)} parameters missing ({some(result.missing_keys)}), "
            f"{len(result.unexpected_keys)} unexpected ({some(result.unexpected_keys)}). "
            + (CAFFE_STYLE.format(arch=arch) if caffe else ""))


class ImageNetCNN(Extractor):
    """Frames → ``pool5`` and/or the conv grid of a torchvision ImageNet CNN."""

    version = "3"  # 3: each weight file's own resize/crop (2: the shorter side to the crop)

    def __init__(self, arch: str = "resnet152", fps: float = 5.0, image_size: int | None = None,
                 crop: bool = True, resize: int | None = None,
                 outputs: tuple[str, ...] = ("pool5",), weights_path: str | None = None,
                 allow_random_init: bool = False, seed: int = 0,
                 precision: str = "auto") -> None:
        if arch not in BACKBONES:
            raise KeyError(f"unknown backbone {arch!r}; known: {sorted(BACKBONES)}")
        backbone = BACKBONES[arch]
        outputs = select_outputs(arch, outputs, ("pool5", backbone.grid_name))
        self.name, self.precision = arch, precision
        file_name = WEIGHT_FILES[arch].file_name
        resolved = resolve_weights(
            file_name, path=weights_path, allow_random_init=allow_random_init, seed=seed,
            how_to_get=(f"Run torchvision.models.{arch}(weights="
                        f"'{torchvision_weights(arch, file_name).name}') on a "
                        f"machine with internet and copy "
                        f"~/.cache/torch/hub/checkpoints/{file_name}."))
        self.transform = choose_transform(arch, resolved.path.name if resolved.path else None,
                                          image_size, resize, crop)
        # The decoder resizes the shorter side and crops the centre square; prepare crops
        # that square's centre (a centre crop of a centre crop is the centre crop).
        self.needs = FrameSpec(fps, self.transform.resize or self.transform.crop, crop)
        torch.manual_seed(seed)
        # torchvision's pretrained GoogLeNet re-normalises its input (transform_input).
        extra = {"transform_input": True} if arch == "googlenet" and resolved.pretrained else {}
        net = getattr(torchvision.models, arch)(weights=None, **backbone.build_args, **extra)
        net.fc = torch.nn.Identity()  # the classifier is not a feature: any class count loads
        if resolved.pretrained:
            load_backbone(net, arch, resolved)
        elif arch == "googlenet":  # its std-0.01 init shrinks the signal to ~1e-12 at inception5b
            he_initialise(net)
        self.transform_input = bool(extra)
        nodes = {"flatten": "pool5", backbone.grid_node: backbone.grid_name}
        self.net = create_feature_extractor(
            net.eval(), {k: v for k, v in nodes.items() if v in outputs})
        self.net = self.net.to(memory_format=torch.channels_last)
        self.weights_identity = resolved.identity
        self.primary = outputs[0]
        self.outputs = self._output_specs(outputs)

    def provenance(self) -> dict:
        transform = self.transform.record()
        if self.name == "googlenet":
            transform["transform_input"] = self.transform_input
        return {**super().provenance(), "transform": transform}

    def prepare(self, media: DecodedMedia) -> Units:
        """Each sampled frame, the centre ``crop``×``crop`` of the decoded square."""
        frames, times = media.frames[self.needs]
        size = self.transform.crop
        top, left = (frames.shape[1] - size) // 2, (frames.shape[2] - size) // 2
        if top > 0 or left > 0:
            frames = np.ascontiguousarray(frames[:, top : top + size, left : left + size])
        return Units(torch.from_numpy(frames), times)

    def _output_specs(self, names: tuple[str, ...]) -> dict[str, ArraySpec]:
        """Output shapes from one dummy frame (grid size depends on the image size)."""
        size = self.transform.crop
        probe = torch.zeros(1, size, size, 3, dtype=torch.uint8)
        with torch.inference_mode():
            shapes = {k: v.shape[1:] for k, v in self.net(self._normalized(probe)).items()}
        # grids (C, h, w) are stored channels-last (h, w, C)
        return {k: ArraySpec(tuple(shapes[k]) if len(shapes[k]) == 1
                             else (*shapes[k][1:], shapes[k][0])) for k in names}

    def _normalized(self, frames: torch.Tensor) -> torch.Tensor:
        return normalized_images(frames, self.transform.mean, self.transform.std)

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        x = self._normalized(inputs.to(self.device, non_blocking=True))
        with self.autocast():
            outputs = self.net(x)
        result = {}
        for name, value in outputs.items():
            if value.ndim == 4:  # (N, C, h, w) → (N, h, w, C)
                value = value.permute(0, 2, 3, 1)
            result[name] = value.float().cpu().numpy()
        return result
