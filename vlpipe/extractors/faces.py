"""Faces in every sampled frame: MTCNN detections, their crops and a face embedding each.

CiSIN's face feature: MTCNN finds the faces of each frame and each face is embedded by a
face-recognition network (`vlpipe.extractors.face_embedders`): ``embedder: arcface`` (the
default, CiSIN's) aligns the face by its 5 landmarks to ArcFace's 112×112 template and runs
insightface's ArcFace model (an ONNX file, `vlpipe weights fetch arcface`); ``embedder:
facenet`` resizes the box to ``face_size``² and runs facenet-pytorch's InceptionResnetV1
(VGGFace2). MTCNN's P/R/O-Net weights ship inside facenet-pytorch, so detection is always
pretrained. Embeddings are L2-normalised.

MTCNN looks at the whole frame: by default frames are squashed to ``image_size``² rather than
centre-cropped (``crop=False``), so no face at a frame's edge is lost and boxes/landmarks,
normalised by the decoded frame's width and height, are also the face's place in the original
video frame. The price is that faces are stretched by the frame's aspect ratio (4:3 → 1.33×
taller than wide for MSR-VTT) in detection, crops and embeddings; ``crop=True`` keeps aspect and
drops the sides. Detection runs in float32 (its thresholds are probabilities); InceptionResnetV1
runs under bf16 autocast on CUDA, ArcFace in float32 under onnxruntime (on CUDA where
onnxruntime has it). The VGGFace2 embedder was trained on 160×160 crops; ``face_size=112``
follows CiSIN, ``face_size=160`` matches the embedder's training.

Per clip: instance arrays (one row per face with ``prob >= min_prob``, ordered by step and then
by probability, highest first) and a step array ``count`` (faces per step).
"""

from __future__ import annotations

from importlib.metadata import version as package_version

import numpy as np
import torch
from facenet_pytorch import MTCNN

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import ArraySpec, Extractor, Outputs, Units
from vlpipe.extractors.face_embedders import EMBEDDING_DIM, ArcFace, FaceNet
from vlpipe.extractors.weights import WEIGHT_FILES, resolve_weights, weight_file
from vlpipe.weight_files import file_digest

EMBEDDER_FILE, EMBEDDER_URL = WEIGHT_FILES["faces"].file_name, WEIGHT_FILES["faces"].url
ARCFACE_FILE = WEIGHT_FILES["arcface"].loads
EMBEDDERS = ("arcface", "facenet")
FACE_ARRAYS = ("box", "prob", "landmarks", "crop")  # forward's per-frame entries + embedding


class FaceExtractor(Extractor):
    """Frames → per-face ``box``, ``prob``, ``landmarks``, ``embedding`` (+ ``crop``) and
    per-step ``count``."""

    name = "faces"
    version = "2"  # 2: the embedder is chosen (ArcFace by default; 1: InceptionResnetV1 only)

    def __init__(self, fps: float = 5.0, image_size: int = 320, crop: bool = False,
                 min_prob: float = 0.9, min_face_size: int = 20, margin: int = 0,
                 face_size: int = 112, keep_crops: bool = True, embedder: str = "arcface",
                 weights_path: str | None = None, allow_random_init: bool = False,
                 seed: int = 0, precision: str = "auto") -> None:
        if embedder not in EMBEDDERS:
            raise ValueError(f"embedder={embedder!r}; allowed: {list(EMBEDDERS)}")
        self.precision, self.min_prob, self.keep_crops = precision, min_prob, keep_crops
        self.needs = FrameSpec(fps, image_size, crop)
        # keep_all: every face of a frame (forward orders them). The P/R/O-Nets load the state
        # dicts shipped inside the package: nothing is downloaded.
        self.mtcnn = MTCNN(min_face_size=min_face_size, keep_all=True, select_largest=False)
        detector = f"facenet-pytorch-{package_version('facenet-pytorch')}-mtcnn"
        if embedder == "arcface":
            path = weight_file(
                ARCFACE_FILE, path=weights_path,
                how_to_get=(f"ArcFace is an ONNX file and has no random initialisation: get "
                            f"{ARCFACE_FILE} out of {WEIGHT_FILES['arcface'].url}, or set "
                            f"embedder: facenet."))
            self.embedder = ArcFace(path)
            if (face_size, margin) != (self.embedder.crop_size, 0):
                raise ValueError(f"face_size={face_size}, margin={margin}: ArcFace aligns each "
                                 f"face to its model's {self.embedder.crop_size}² template "
                                 "(face_size and margin apply to embedder: facenet)")
            self.weights_identity = f"{detector}+{path.name}@sha256:{file_digest(path)}"
            self.net = torch.nn.ModuleDict({"mtcnn": self.mtcnn}).eval()
        else:
            resolved = resolve_weights(
                EMBEDDER_FILE, path=weights_path, allow_random_init=allow_random_init,
                seed=seed,
                how_to_get=(f"Download {EMBEDDER_URL} (or copy facenet-pytorch's own cache, "
                            f"~/.cache/torch/checkpoints/{EMBEDDER_FILE}) into the vlpipe "
                            "weight cache, or set weights_path."))
            torch.manual_seed(seed)
            self.embedder = FaceNet(resolved.state_dict, face_size, margin)
            self.weights_identity = f"{detector}+{resolved.identity}"
            self.net = torch.nn.ModuleDict({"mtcnn": self.mtcnn,
                                            "embedder": self.embedder.net}).eval()
        size = self.embedder.crop_size
        self.primary = "count"  # a step array (FeatureStore[clip] pairs it with the step times)
        self.outputs = {
            "count": ArraySpec((), "int16", "step"),
            "step": ArraySpec((), "int32", "instance"),
            "box": ArraySpec((4,), "float32", "instance"),  # x1, y1, x2, y2 in [0, 1]
            "prob": ArraySpec((), "float32", "instance"),
            "landmarks": ArraySpec((5, 2), "float32", "instance"),  # eyes, nose, mouth corners
            "embedding": ArraySpec((EMBEDDING_DIM,), "float16", "instance"),
        }
        if keep_crops:
            self.outputs["crop"] = ArraySpec((size, size, 3), "uint8", "instance")

    def to(self, device: torch.device | str) -> FaceExtractor:
        super().to(device)
        self.mtcnn.device = self.device  # MTCNN moves its input to its own ``device``
        self.embedder.to(self.device)
        return self

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        """``inputs (N, H, W, 3) uint8`` → for each face array a list of N arrays, one row per
        face of that frame (boxes and landmarks normalised by W and H)."""
        height, width = inputs.shape[1:3]
        boxes, probs, points = self.mtcnn.detect(inputs.to(self.device), landmarks=True)
        scale = np.array([width, height], np.float32)
        entries = {name: [] for name in FACE_ARRAYS if name in self.outputs}
        faces = []  # (k, S, S, 3) float32 crops (values 0..255) of each frame
        for frame, box, prob, point in zip(inputs.cpu(), boxes, probs, points, strict=True):
            if box is None:  # MTCNN found no face
                box, prob, point = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
            box = np.asarray(box, np.float32).reshape(-1, 4)  # object arrays → (k, 4)
            prob = np.asarray(prob, np.float32).reshape(-1)
            point = np.asarray(point, np.float32).reshape(-1, 5, 2)
            keep = np.flatnonzero(prob >= self.min_prob)
            keep = keep[np.argsort(-prob[keep], kind="stable")]
            faces.append(self.embedder.crops(frame, box[keep], point[keep]))
            entries["box"].append(np.clip(box[keep] / np.tile(scale, 2), 0.0, 1.0))
            entries["prob"].append(prob[keep])
            entries["landmarks"].append(point[keep] / scale)
            if self.keep_crops:  # (k, S, S, 3) uint8
                entries["crop"].append(faces[-1].astype(np.uint8))
        crops = np.concatenate(faces)
        embeddings = np.zeros((0, EMBEDDING_DIM), np.float32)
        if len(crops):  # every face of the batch in one call
            with self.autocast():
                embeddings = self.embedder.embed(crops)
        ends = np.cumsum([len(p) for p in entries["prob"]])
        entries["embedding"] = np.split(embeddings, ends[:-1])  # N arrays (k, 512)
        return entries

    def finish(self, units: Units, outputs: Outputs) -> dict[str, np.ndarray]:
        """Per-frame entries → instance arrays (faces of all steps, in step order) and the
        ``count`` step array."""
        counts = np.array([len(p) for p in outputs["prob"]], np.int64)
        arrays = {"count": counts.astype(np.int16),
                  "step": np.repeat(np.arange(len(counts), dtype=np.int32), counts)}
        for name, entries in outputs.items():
            arrays[name] = np.concatenate(entries, dtype=self.outputs[name].dtype)
        return arrays
