"""The torch device a step runs on, for every step (extraction, text, training)."""

from __future__ import annotations

import ctypes

import torch


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise ``device`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# On the CPU the network sees at most this many frames at a time. glibc serves an allocation
# above its mmap threshold (32 MiB at most) with fresh pages that are faulted in on first touch
# and unmapped on free: a ResNet layer on 64 frames at 224 px (≈ 200 MB of activations) pays
# that on every layer. At 8 frames each buffer stays below the threshold and is reused from the
# heap (benchmarks/extract_bench.py --device cpu: docs/benchmarks.md).
CPU_BATCH_FRAMES = 8
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def batch_frames_on(device: torch.device, batch_frames: int) -> int:
    """The frames per forward pass on ``device`` for a configured ``batch_frames``."""
    return min(batch_frames, CPU_BATCH_FRAMES) if device.type == "cpu" else batch_frames


def keep_cpu_heap() -> bool:
    """Where the C library is glibc: raise its mmap threshold to the most it takes (32 MiB)
    and stop it returning freed heap memory to the OS, so that the same activation buffers are
    reused batch after batch instead of page-faulted in anew. False where not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
                and libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
