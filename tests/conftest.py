"""Shared fixtures: tiny synthetic worlds generated once per test session."""

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
from vlpipe.datasets.characters import read_characters
from vlpipe.synthetic import WorldConfig, generate_world
from vlpipe.synthetic.characters import character_settings

MSRVTT_OPTIONS = {"annotations": ["annotations/videodatainfo.json"], "video_dir": "videos"}
# 30 stories of 5 clips with a cast of 3 each (CiSIN: tests/test_characters.py and
# tests/test_person_tracks.py)
CAST = WorldConfig(seed=3, n_clips=150, train_fraction=0.6, validate_fraction=0.2,
                   test_fraction=0.2, duration_s=2.0, fps=10, size=48, sentences_per_clip=1,
                   story_length=5, cast=3)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """12 clips of 2 s at 10 fps, 64×64, MSR-VTT layout."""
    root = tmp_path_factory.mktemp("world")
    generate_world(root, WorldConfig(seed=3, n_clips=12, size=64))
    return root


@pytest.fixture(scope="session")
def tiny_clips(tiny_world):
    return read_dataset("msrvtt", tiny_world, **MSRVTT_OPTIONS).clips


@pytest.fixture(scope="session")
def cast_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cast")
    generate_world(root, CAST)
    return root


@pytest.fixture(scope="session")
def cast_clips(cast_world: Path):
    return read_dataset("msrvtt", cast_world, **MSRVTT_OPTIONS).clips


@pytest.fixture(scope="session")
def task_list(cast_world: Path, cast_clips):
    """The cast world's Fill-in the Characters sets."""
    return read_characters(cast_world, character_settings(), cast_clips)


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors run faster on one thread, which also survives a busy, oversubscribed CPU
    (use with ``pytestmark = pytest.mark.usefixtures("single_thread")``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
