"""CUDA paths (bf16 autocast in extraction and scoring); skipped where no GPU is present."""

import numpy as np
import pytest
import torch

from vlpipe.extractors.job import extract_shard
from vlpipe.features import FeatureStore
from vlpipe.manifest import SHARD_COLUMNS, with_file_identity
from vlpipe.models import build_model
from vlpipe.tasks.retrieval import RetrievalTask
from vlpipe.text import Vocabulary

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SETTINGS = {"fps": 5, "image_size": 64, "allow_random_init": True, "seed": 0}


def test_bf16_extraction_matches_fp32_cpu(tiny_clips, tmp_path):
    """One job, four extractors (frames, windows, audio), decode workers: CUDA bf16 vs CPU."""
    shard = tmp_path / "shard.parquet"
    with_file_identity(tiny_clips.iloc[:4])[SHARD_COLUMNS].to_parquet(shard, index=False)
    settings = {"resnet34": SETTINGS, "vggish": {"allow_random_init": True},
                "c3d": {"fps": 10, "image_size": 32, "stride": 4, "allow_random_init": True},
                "i3d": {"fps": 5, "image_size": 32, "allow_random_init": True}}
    for device in ["cuda", "cpu"]:
        stores = {name: tmp_path / device / f"{name}.zarr" for name in settings}
        extract_shard(shard, stores, settings, device=device, num_workers=2)
    for name in settings:
        gpu = FeatureStore(tmp_path / "cuda" / f"{name}.zarr")
        cpu = FeatureStore(tmp_path / "cpu" / f"{name}.zarr")
        for clip_id in tiny_clips.clip_id[:4]:
            a, b = gpu[clip_id][0].astype(np.float32), cpu[clip_id][0].astype(np.float32)
            assert a.shape == b.shape
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99, (name, clip_id)


def test_scoring_under_autocast_ranks_like_fp32(tiny_clips):
    rng = np.random.default_rng(0)
    features = {c: rng.normal(size=(8, 32)).astype(np.float32) for c in tiny_clips.clip_id}
    clips = tiny_clips.assign(split="test")
    vocab = Vocabulary.build((s for ss in clips.sentences for s in ss), min_count=1)
    task = RetrievalTask(clips, features, vocab, max_frames=8, feature_norm="none")
    torch.manual_seed(0)
    model = build_model("jsfusion", {"word_dim": 16, "encoder_hidden": 16, "d1": 32, "d2": 32,
                                     "d3": 32, "d4": 32, "conv_channels": 16, "d5": 16,
                                     "d6": 16, "d7": 8},
                        task.model_inputs()).eval()
    assert task.model_inputs().video_dim == 32
    cpu = task.score(model, "test", torch.device("cpu"))
    gpu = task.score(model.cuda(), "test", torch.device("cuda"))  # bf16 autocast
    assert np.isfinite(gpu).all()
    assert np.corrcoef(cpu.ravel(), gpu.ravel())[0, 1] > 0.98
