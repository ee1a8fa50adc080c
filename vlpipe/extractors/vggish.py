"""VGGish audio embeddings aligned to the video frame rate (JSFusion: "VGGish → PCA-128").

The waveform becomes 0.96 s log-mel examples (``logmel``), each example a 128-d embedding from
the VGGish network, PCA-whitened, clipped and 8-bit quantised with Google's released parameters
(stored as float). Every output step ``t_k = k / fps`` takes the embedding of the example that
contains it, so the array lines up with the per-frame image features at the same rate.

The network's parameter names are those of the widely used torch port (torchvggish,
``vggish-10086976.pth``: ``features.*``, ``embeddings.*``); its PCA file
(``vggish_pca_params-970ea276.pth``) holds ``pca_eigen_vectors (128, 128)`` and ``pca_means``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vlpipe.decode import AudioSpec, DecodedMedia
from vlpipe.extractors import logmel
from vlpipe.extractors.base import ArraySpec, Extractor, Outputs, Units, he_initialise
from vlpipe.extractors.weights import WEIGHT_FILES, ResolvedWeights, resolve_weights

WEIGHTS_FILE, PCA_FILE = WEIGHT_FILES["vggish"].file_name, WEIGHT_FILES["vggish-pca"].file_name
EMBEDDING_SIZE = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
# conv widths, "M" = 2×2 max pool: conv64-pool, conv128-pool, conv256×2-pool, conv512×2-pool
LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


class VGGishNetwork(nn.Module):
    """``(N, 1, 96, 64)`` log-mel examples → ``(N, 128)`` embeddings (ReLU after every layer,
    the last fully connected one included, as in the reference)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in LAYOUT:
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(True),
            nn.Linear(4096, 4096), nn.ReLU(True),
            nn.Linear(4096, EMBEDDING_SIZE), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 512, 6, 4)
        # (N, C, H, W) → (N, H, W, C) → (N, 12288): TensorFlow's channels-last flatten order,
        # which the converted weights of the first fully connected layer expect
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(x)


class PCAQuantize(nn.Module):
    """The reference postprocessing: ``(N, 128)`` embeddings → PCA (with whitening) → clip to
    [-2, 2] → 0..255 (truncated, as the reference's cast to uint8), kept as float."""

    def __init__(self, eigen_vectors: torch.Tensor, means: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("eigen_vectors", torch.as_tensor(eigen_vectors).float())
        self.register_buffer("means", torch.as_tensor(means).float().reshape(-1))
        if self.eigen_vectors.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or \
                self.means.shape != (EMBEDDING_SIZE,):
            raise ValueError(f"PCA parameters must be ({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and "
                             f"({EMBEDDING_SIZE},), got {tuple(self.eigen_vectors.shape)} and "
                             f"{tuple(self.means.shape)}")

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        projected = (embeddings - self.means) @ self.eigen_vectors.T  # (N, 128)
        clipped = projected.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
        return torch.floor((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))


def _numpy_safe_globals() -> list:
    """What ``torch.load(weights_only=True)`` must allow to read plain float numpy arrays (the
    released PCA file holds numpy arrays, pickled by numpy 1.x or 2.x)."""
    reconstruct = np.empty(0).__reduce__()[0]
    return [(reconstruct, "numpy.core.multiarray._reconstruct"),
            (reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType]


def _resolve_pca(path: str | None, allow_missing: bool) -> ResolvedWeights | None:
    """The PCA parameters, or None where they are missing and that is allowed."""
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        resolved = resolve_weights(
            PCA_FILE, path=path, allow_random_init=allow_missing,
            how_to_get=f"Download {WEIGHT_FILES['vggish-pca'].url} on a machine with internet.")
    return resolved if resolved.pretrained else None


class VGGish(Extractor):
    """Audio → per-step ``embedding`` (128, VGGish → PCA → 8-bit values) and ``mask``."""

    name = "vggish"
    version = "1"
    primary = "embedding"
    needs = AudioSpec(rate=logmel.RATE)
    frames_per_unit = 1  # one unit = one 0.96 s example: batch_frames examples per batch

    def __init__(self, fps: float = 5.0, weights_path: str | None = None,
                 pca_path: str | None = None, allow_random_init: bool = False, seed: int = 0,
                 precision: str = "auto") -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps, self.precision = float(fps), precision
        resolved = resolve_weights(
            WEIGHTS_FILE, path=weights_path, allow_random_init=allow_random_init, seed=seed,
            how_to_get=f"Download {WEIGHT_FILES['vggish'].url} on a machine with internet.")
        torch.manual_seed(seed)
        network = VGGishNetwork()
        if resolved.pretrained:
            network.load_state_dict(resolved.state_dict)
        else:  # torch's default init leaves embeddings ~5e-3 that barely differ between inputs
            he_initialise(network)
        modules = {"vggish": network.eval()}
        # The PCA (and its clip range) is fitted to the trained network's embeddings and means
        # nothing for a random network's, which therefore keeps its raw embeddings.
        pca = _resolve_pca(pca_path, allow_random_init) if resolved.pretrained else None
        if pca is not None:
            modules["pca"] = PCAQuantize(pca.state_dict["pca_eigen_vectors"],
                                         pca.state_dict["pca_means"])
        self.net = nn.ModuleDict(modules)
        self.weights_identity = f"{resolved.identity}+{pca.identity if pca else 'no-pca'}"
        self.outputs = {"embedding": ArraySpec((EMBEDDING_SIZE,)), "mask": ArraySpec((), "uint8")}


    def step_times(self, media: DecodedMedia, waveform: np.ndarray | None) -> np.ndarray:
        """``t_k = k / fps`` for ``k < ceil(duration · fps)``, as the frame sampler's count."""
        duration = media.duration
        if math.isnan(duration):  # the file does not say: the audio does, if there is any
            duration = 0.0 if waveform is None else len(waveform) / logmel.RATE
        count = math.ceil(round(duration * self.fps, 6))  # round: no extra step for 2.0000001
        return np.arange(count) / self.fps

    def prepare(self, media: DecodedMedia) -> Units:
        waveform = media.audio[self.needs]
        times = self.step_times(media, waveform)
        examples = (np.zeros((0, logmel.EXAMPLE_FRAMES, logmel.MEL_BANDS), np.float32)
                    if waveform is None else logmel.waveform_to_examples(waveform))
        # the example holding t_k; the epsilon keeps t_k = 0.96 · i in example i
        index = np.floor(times / logmel.EXAMPLE_SECONDS + 1e-9).astype(np.int64)
        mask = (index < len(examples)).astype(np.uint8)
        return Units(torch.from_numpy(examples), times,
                     {"example": np.minimum(index, len(examples) - 1), "mask": mask})

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        x = inputs.to(self.device, non_blocking=True).unsqueeze(1)  # (N, 96, 64) → (N, 1, 96, 64)
        with self.autocast():
            embeddings = self.net["vggish"](x)
        embeddings = embeddings.float()  # PCA and quantisation in float32
        if "pca" in self.net:
            embeddings = self.net["pca"](embeddings)
        return {"embedding": embeddings.cpu().numpy()}

    def finish(self, units: Units, outputs: Outputs) -> dict[str, np.ndarray]:
        mask = units.context["mask"]
        if len(units) == 0:  # no audio stream, or too short for one example
            embedding = np.zeros((len(units.times), EMBEDDING_SIZE), np.float32)
        else:  # steps past the last whole example take it (their mask says 0)
            embedding = outputs["embedding"][units.context["example"]]
        return {"embedding": embedding, "mask": mask}
