"""Render the same 10 clips extract_bench.py uses for its CPU run (--clips 10 --seconds 4,
default --unique 16 --video-fps 30 --video-size 320) into the folder given."""
import shutil
import sys
import tempfile
from pathlib import Path

from vlpipe.synthetic import WorldConfig, generate_world

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    world = Path(tmp) / "world"
    generate_world(world, WorldConfig(seed=0, n_clips=16, duration_s=4.0, fps=30, size=320,
                                      train_fraction=1.0, validate_fraction=0.0,
                                      test_fraction=0.0))
    for i in range(10):
        shutil.copyfile(world / "videos" / f"video{i}.mp4", out / f"clip{i:05d}.mp4")
print(sorted(p.name for p in out.iterdir()))
