"""Shared fixtures: a tiny synthetic world generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
