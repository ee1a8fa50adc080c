"""One weight resolver for every extractor: a configured file, the library's weight cache
(``$VLPIPE_WEIGHTS``, default ``~/.cache/vlpipe/weights``), torch's hub cache, or (only when the
config allows it) a seeded random initialisation that is recorded as such.

``WEIGHT_FILES`` names each extractor's published weight file (URL, checksum, file name): the
extractors take their file names from it and ``vlpipe weights fetch`` downloads from it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from vlpipe.weight_files import MissingWeightsError, file_digest


@dataclass(frozen=True)
class ResolvedWeights:
    """Weights to load (``state_dict`` None = random init) and their identity for provenance."""

    state_dict: dict | None
    identity: str  # "<file name>@sha256:<12 hex>" or "random-seed-<N>"
    path: Path | None = None  # the file loaded (None = random init)

    @property
    def pretrained(self) -> bool:
        return self.state_dict is not None


@dataclass(frozen=True)
class WeightFile:
    """A published weight file. ``sha256``: its full hex digest, or a prefix of it (torchvision
    publishes only the 8 digits in its file names, and checks those), or None where no checksum
    is published (the download is then unverified). ``converted``: the file the extractor loads,
    made from this one by a step fetch prints (``state_dict_command``); ``member``: the file
    the extractor loads out of this zip archive, which fetch extracts."""

    url: str
    sha256: str | None
    converted: str | None = None
    member: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def loads(self) -> str:
        """The file name the extractor looks for."""
        return self.converted or self.member or self.file_name

    @property
    def derived(self) -> bool:
        """Whether the extractor loads a file made from the download (not the download)."""
        return self.loads != self.file_name


def _torchvision(file_name: str) -> WeightFile:
    """torchvision's ``<arch>-<sha256 prefix>.pth``, checked against that prefix as torchvision
    checks it (``check_hash``)."""
    prefix = re.fullmatch(r".+-([0-9a-f]{8,})\.pth", file_name)[1]
    return WeightFile(f"https://download.pytorch.org/models/{file_name}", prefix)


_TORCHVGGISH = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"

# name → file. Not exercised against the real hosts here (no internet), only against a local
# server in the tests. torchvggish's names carry a torch-hub-style suffix that torchvggish never
# checks (not known to be a sha256 prefix); the others publish no checksum.
WEIGHT_FILES: dict[str, WeightFile] = {
    "resnet34": _torchvision("resnet34-b627a593.pth"),  # ResNet34_Weights.IMAGENET1K_V1
    "resnet50": _torchvision("resnet50-11ad3fa6.pth"),  # ResNet50_Weights.IMAGENET1K_V2
    "resnet152": _torchvision("resnet152-f82ba261.pth"),  # ResNet152_Weights.IMAGENET1K_V2
    "googlenet": _torchvision("googlenet-1378be20.pth"),  # GoogLeNet_Weights.IMAGENET1K_V1
    # Sports-1M C3D converted to PyTorch by DavideA/c3d-pytorch (its README's link)
    "c3d": WeightFile("http://imagelab.ing.unimore.it/files/c3d_pytorch/c3d.pickle", None),
    # what pytorchvideo's i3d_r50(pretrained=True) downloads (its checkpoint_paths)
    "i3d": WeightFile("https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
                      "I3D_8x8_R50.pyth", None),
    "vggish": WeightFile(f"{_TORCHVGGISH}vggish-10086976.pth", None),
    "vggish-pca": WeightFile(f"{_TORCHVGGISH}vggish_pca_params-970ea276.pth", None),
    # insightface's buffalo_l pack (what FaceAnalysis("buffalo_l") downloads): its ArcFace
    # recognition model, an iresnet50 trained on WebFace600K
    "arcface": WeightFile("https://github.com/deepinsight/insightface/releases/download/v0.7/"
                          "buffalo_l.zip", None, member="w600k_r50.onnx"),
    # facenet-pytorch's InceptionResnetV1(pretrained="vggface2") file
    "faces": WeightFile("https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
                        "20180402-114759-vggface2.pt", None),
    # what ultralytics 8.4's YOLO("yolo11n-pose.pt") downloads: a pickled model object, which
    # vlpipe never unpickles (weights_only loads only); the persons extractor loads its state dict
    "yolo11n-pose": WeightFile("https://github.com/ultralytics/assets/releases/download/v8.4.0/"
                               "yolo11n-pose.pt", None, converted="yolo11n-pose.state_dict.pt"),
}


def state_dict_command(checkpoint: str, target: str) -> str:
    """The shell command converting ultralytics checkpoint ``checkpoint`` (unpickled by
    ultralytics itself) into the state dict ``target`` that the persons extractor loads."""
    return (f"python -c \"import torch; from ultralytics import YOLO; "
            f"torch.save(YOLO('{checkpoint}').model.float().state_dict(), '{target}')\"")


def weights_cache() -> Path:
    return Path(os.environ.get("VLPIPE_WEIGHTS", "~/.cache/vlpipe/weights")).expanduser()


def weight_locations(file_name: str) -> list[Path]:
    """Where ``file_name`` is looked for (no ``weights_path`` configured), in order: the weight
    cache (where ``vlpipe weights fetch`` puts it), then torch's hub cache."""
    return [weights_cache() / file_name, Path(torch.hub.get_dir()) / "checkpoints" / file_name]


def _fetch_hint(file_name: str) -> str:
    name = next((name for name, entry in WEIGHT_FILES.items() if entry.loads == file_name), None)
    return f"Or run `vlpipe weights fetch {name}` (see docs/weights.md). " if name else ""


def _candidates(file_name: str, path: str | None) -> list[Path]:
    # a configured file is the only candidate: never silently use another one
    return [Path(path).expanduser()] if path else weight_locations(file_name)


def _missing(file_name: str, candidates: list[Path], how_to_get: str, then: str
             ) -> MissingWeightsError:
    looked = ", ".join(str(c) for c in candidates)
    return MissingWeightsError(f"weights {file_name!r} not found (looked in: {looked}). "
                               f"{how_to_get} {_fetch_hint(file_name)}{then}")


def weight_file(file_name: str, *, path: str | None = None, how_to_get: str = "") -> Path:
    """The file ``file_name`` as `resolve_weights` finds it, for weights that are not a torch
    state dict (an ONNX model); missing, an error (they have no random initialisation)."""
    candidates = _candidates(file_name, path)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise _missing(file_name, candidates, how_to_get, "")
    return found


def resolve_weights(file_name: str, *, path: str | None = None, allow_random_init: bool = False,
                    seed: int = 0, how_to_get: str = "",
                    state_key: str | None = None) -> ResolvedWeights:
    """Find ``file_name``: at ``path`` if configured (then nowhere else), else in the library's
    weight cache, else in torch's hub cache. ``state_key`` picks a nested state dict.

    Missing weights are an error unless ``allow_random_init``, in which case the caller builds
    the model under ``torch.manual_seed(seed)`` and the identity says ``random-seed-<seed>``.
    """
    candidates = _candidates(file_name, path)
    for candidate in candidates:
        if candidate.is_file():
            state = torch.load(candidate, map_location="cpu", weights_only=True)
            if state_key is not None:
                if state_key not in state:
                    raise KeyError(f"{candidate}: no {state_key!r} entry; it has {sorted(state)}")
                state = state[state_key]
            return ResolvedWeights(state, f"{candidate.name}@sha256:{file_digest(candidate)}",
                                   candidate)
    if allow_random_init and not path:
        return ResolvedWeights(None, f"random-seed-{seed}")
    raise _missing(file_name, candidates, how_to_get, "Or set allow_random_init: true to run "
                   "with seeded random weights (the report says so).")
