"""The faces extractor's embedders: each crops a frame's detected faces and embeds the crops as
unit-length 512-d vectors.

- ``arcface`` (CiSIN's): insightface's ArcFace recognition model, an ONNX file (the buffalo_l
  pack's ``w600k_r50.onnx``: iresnet50 trained on WebFace600K) run by onnxruntime, on faces
  aligned by a similarity transform of their 5 landmarks onto ArcFace's 112×112 template
  (insightface's ``norm_crop``). insightface reads BGR images; frames are turned around for it.
- ``facenet``: facenet-pytorch's InceptionResnetV1 trained on VGGFace2, on the detected box
  resized to ``face_size``² (facenet-pytorch's ``extract_face``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1, extract_face, fixed_image_standardization

EMBEDDING_DIM = 512


class ArcFace:
    """insightface's ArcFace model from ``path`` (an ONNX file with one (N, 3, S, S) input and
    one (N, 512) output) on landmark-aligned S×S faces."""

    def __init__(self, path: Path) -> None:
        # insightface and onnxruntime are imported only where ArcFace runs
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        self.path = path
        self.model = ArcFaceONNX(model_file=str(path), session=self._session("cpu"))
        self.crop_size = int(self.model.input_size[0])

    def _session(self, device: torch.device | str):
        import onnxruntime

        wanted = (["CUDAExecutionProvider"] if torch.device(device).type == "cuda" else [])
        providers = [p for p in wanted if p in onnxruntime.get_available_providers()]
        return onnxruntime.InferenceSession(str(self.path),
                                            providers=[*providers, "CPUExecutionProvider"])

    def to(self, device: torch.device | str) -> ArcFace:
        """Run on ``device`` where onnxruntime can (a CUDA build), else on the CPU."""
        self.model.session = self._session(device)
        return self

    def crops(self, frame: torch.Tensor, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``frame (H, W, 3)`` uint8 RGB, ``landmarks (k, 5, 2)`` pixels (eyes, nose, mouth
        corners, as MTCNN gives them) → ``(k, S, S, 3)`` float32 aligned faces (0–255)."""
        from insightface.utils.face_align import norm_crop

        del boxes  # the landmarks place the face
        bgr = np.ascontiguousarray(frame.numpy()[..., ::-1])
        faces = [norm_crop(bgr, points, self.crop_size)[..., ::-1] for points in landmarks]
        return np.array(faces, np.float32).reshape(-1, self.crop_size, self.crop_size, 3)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """``(n, S, S, 3)`` RGB crops → ``(n, 512)`` unit-length embeddings."""
        bgr = [np.ascontiguousarray(c[..., ::-1].astype(np.uint8)) for c in crops]
        features = self.model.get_feat(bgr)  # (n, 512), the model's own normalisation
        return features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)


class FaceNet:
    """facenet-pytorch's InceptionResnetV1 (``state_dict`` None: seeded random init) on the
    detected box resized to ``face_size``² (``margin`` pixels around it)."""

    def __init__(self, state_dict: dict | None, face_size: int, margin: int) -> None:
        # pretrained=None: facenet-pytorch never downloads. A random init needs no rescaling:
        # the embedding is L2-normalised, so it stays unit length whatever the signal.
        self.net = InceptionResnetV1(pretrained=None, classify=False).eval()
        if state_dict is not None:
            # the released file also holds the VGGFace2 classifier (logits.*, 8631 identities)
            self.net.load_state_dict({k: v for k, v in state_dict.items()
                                      if not k.startswith("logits.")})
        self.crop_size, self.margin = face_size, margin

    def to(self, device: torch.device | str) -> FaceNet:
        self.net = self.net.to(device)
        return self

    def crops(self, frame: torch.Tensor, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``frame (H, W, 3)`` uint8, ``boxes (k, 4)`` pixels → ``(k, S, S, 3)`` float32 crops
        (0–255)."""
        del landmarks
        faces = [extract_face(frame, box, self.crop_size, self.margin) for box in boxes]
        if not faces:
            return np.zeros((0, self.crop_size, self.crop_size, 3), np.float32)
        return torch.stack(faces).permute(0, 2, 3, 1).numpy()  # (k, 3, S, S) → (k, S, S, 3)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """``(n, S, S, 3)`` crops → ``(n, 512)`` unit-length embeddings (under the caller's
        autocast)."""
        device = next(self.net.parameters()).device
        x = fixed_image_standardization(torch.from_numpy(crops).permute(0, 3, 1, 2)).to(device)
        return self.net(x).float().cpu().numpy()
