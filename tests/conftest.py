"""Shared fixtures: a tiny synthetic world generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Without CUDA, Triton kernels run in Triton's interpreter (on CPU tensors). This must be set
# before triton is first imported (torch does not import it): its library functions are built then.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from vlpipe.datasets import read_dataset
from vlpipe.synthetic import WorldConfig, generate_world

MSRVTT_OPTIONS = {"annotations": ["annotations/videodatainfo.json"], "video_dir": "videos"}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """12 clips of 2 s at 10 fps, 64×64, MSR-VTT layout."""
    root = tmp_path_factory.mktemp("world")
    generate_world(root, WorldConfig(seed=3, n_clips=12, size=64))
    return root


@pytest.fixture(scope="session")
def tiny_clips(tiny_world):
    return read_dataset("msrvtt", tiny_world, **MSRVTT_OPTIONS).clips


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors run faster on one thread, which also survives a busy, oversubscribed CPU
    (use with ``pytestmark = pytest.mark.usefixtures("single_thread")``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
