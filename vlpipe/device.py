"""The torch device a step runs on, for every step (extraction, text, training)."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise ``device`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
