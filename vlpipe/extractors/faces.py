"""Faces in every sampled frame: MTCNN detections, 112×112 crops and a face embedding each.

CiSIN's face feature: MTCNN finds the faces of each frame, each face is cropped to 112×112 and
embedded by a face-recognition network (ArcFace there). Here both come from facenet-pytorch:
its MTCNN (P/R/O-Net weights ship inside the package, so detection is always pretrained) and
its InceptionResnetV1 trained on VGGFace2 (512-d, L2-normalised) as the ArcFace-style embedder.

MTCNN looks at the whole frame: by default frames are squashed to ``image_size``² rather than
centre-cropped (``crop=False``), so no face at a frame's edge is lost and boxes/landmarks,
normalised by the decoded frame's width and height, are also the face's place in the original
video frame. The price is that faces are stretched by the frame's aspect ratio (4:3 → 1.33×
taller than wide for MSR-VTT) in detection, crops and embeddings; ``crop=True`` keeps aspect and
drops the sides. Detection runs in float32 (its thresholds are probabilities); the embedder runs
under bf16 autocast on CUDA. The VGGFace2 embedder was trained on 160×160 crops;
``face_size=112`` follows CiSIN, ``face_size=160`` matches the embedder's training.

Per clip: instance arrays (one row per face with ``prob >= min_prob``, ordered by step and then
by probability, highest first) and a step array ``count`` (faces per step).
"""

from __future__ import annotations

from importlib.metadata import version as package_version

import numpy as np
import torch
from facenet_pytorch import MTCNN, InceptionResnetV1, extract_face, fixed_image_standardization

from vlpipe.decode import FrameSpec
from vlpipe.extractors.base import ArraySpec, Extractor, Outputs, Units
from vlpipe.extractors.weights import WEIGHT_FILES, resolve_weights

EMBEDDER_FILE, EMBEDDER_URL = WEIGHT_FILES["faces"].file_name, WEIGHT_FILES["faces"].url
EMBEDDING_DIM = 512
FACE_ARRAYS = ("box", "prob", "landmarks", "crop")  # forward's per-frame entries + embedding


class FaceExtractor(Extractor):
    """Frames → per-face ``box``, ``prob``, ``landmarks``, ``embedding`` (+ ``crop``) and
    per-step ``count``."""

    name = "faces"
    version = "1"

    def __init__(self, fps: float = 5.0, image_size: int = 320, crop: bool = False,
                 min_prob: float = 0.9, min_face_size: int = 20, margin: int = 0,
                 face_size: int = 112, keep_crops: bool = True,
                 weights_path: str | None = None, allow_random_init: bool = False,
                 seed: int = 0, precision: str = "auto") -> None:
        self.precision, self.min_prob, self.keep_crops = precision, min_prob, keep_crops
        self.margin, self.face_size = margin, face_size
        self.needs = FrameSpec(fps, image_size, crop)
        # keep_all: every face of a frame (forward orders them). The P/R/O-Nets load the state
        # dicts shipped inside the package: nothing is downloaded.
        self.mtcnn = MTCNN(min_face_size=min_face_size, keep_all=True, select_largest=False)
        resolved = resolve_weights(
            EMBEDDER_FILE, path=weights_path, allow_random_init=allow_random_init, seed=seed,
            how_to_get=(f"Download {EMBEDDER_URL} (or copy facenet-pytorch's own cache, "
                        f"~/.cache/torch/checkpoints/{EMBEDDER_FILE}) into the vlpipe weight "
                        "cache, or set weights_path."))
        torch.manual_seed(seed)
        # pretrained=None: facenet-pytorch never downloads. A random init needs no rescaling:
        # the embedding is L2-normalised, so it stays unit length whatever the signal.
        embedder = InceptionResnetV1(pretrained=None, classify=False)
        if resolved.pretrained:
            # the released file also holds the VGGFace2 classifier (logits.*, 8631 identities)
            embedder.load_state_dict({k: v for k, v in resolved.state_dict.items()
                                      if not k.startswith("logits.")})
        self.net = torch.nn.ModuleDict({"mtcnn": self.mtcnn, "embedder": embedder}).eval()
        self.weights_identity = (f"facenet-pytorch-{package_version('facenet-pytorch')}-mtcnn+"
                                 f"{resolved.identity}")
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
            self.outputs["crop"] = ArraySpec((face_size, face_size, 3), "uint8", "instance")

    def to(self, device: torch.device | str) -> FaceExtractor:
        super().to(device)
        self.mtcnn.device = self.device  # MTCNN moves its input to its own ``device``
        return self

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> Outputs:
        """``inputs (N, H, W, 3) uint8`` → for each face array a list of N arrays, one row per
        face of that frame (boxes and landmarks normalised by W and H)."""
        height, width = inputs.shape[1:3]
        boxes, probs, points = self.mtcnn.detect(inputs.to(self.device), landmarks=True)
        scale = np.array([width, height], np.float32)
        entries = {name: [] for name in FACE_ARRAYS if name in self.outputs}
        faces = []  # (3, S, S) float32 crops (values 0..255) of the whole batch
        for frame, box, prob, point in zip(inputs.cpu(), boxes, probs, points, strict=True):
            if box is None:  # MTCNN found no face
                box, prob, point = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
            box = np.asarray(box, np.float32).reshape(-1, 4)  # object arrays → (k, 4)
            prob = np.asarray(prob, np.float32).reshape(-1)
            point = np.asarray(point, np.float32).reshape(-1, 5, 2)
            keep = np.flatnonzero(prob >= self.min_prob)
            keep = keep[np.argsort(-prob[keep], kind="stable")]
            crops = [extract_face(frame, b, self.face_size, self.margin) for b in box[keep]]
            faces += crops
            entries["box"].append(np.clip(box[keep] / np.tile(scale, 2), 0.0, 1.0))
            entries["prob"].append(prob[keep])
            entries["landmarks"].append(point[keep] / scale)
            if self.keep_crops:  # (k, S, S, 3) uint8
                entries["crop"].append(
                    torch.stack(crops).permute(0, 2, 3, 1).to(torch.uint8).numpy() if crops
                    else np.zeros((0, self.face_size, self.face_size, 3), np.uint8))
        embeddings = np.zeros((0, EMBEDDING_DIM), np.float32)
        if faces:  # every face of the batch in one call
            x = fixed_image_standardization(torch.stack(faces)).to(self.device)
            with self.autocast():
                embeddings = self.net["embedder"](x).float().cpu().numpy()
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
