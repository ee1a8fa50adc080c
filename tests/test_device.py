"""Device settings of the extraction job: the CPU batch cap and glibc's heap kept for reuse."""

from __future__ import annotations

import subprocess
import sys

import torch

from vlpipe.device import CPU_BATCH_FRAMES, batch_frames_on

from .helpers import subprocess_env

# Minor page faults per forward pass of a small CNN on 8 frames: each layer's output (8 × 64 ×
# 56 × 56 floats, 6.4 MB) is above glibc's initial mmap threshold.
FAULTS_PER_FORWARD = """
import resource, sys, torch
from vlpipe.device import keep_cpu_heap
torch.set_num_threads(1)
if sys.argv[1] == "kept":
    assert keep_cpu_heap()
net = torch.nn.Sequential(*[torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(6)]).eval()
x = torch.randn(8, 64, 56, 56)
with torch.inference_mode():
    net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def test_the_cpu_gets_small_batches_and_an_accelerator_the_configured_ones():
    assert batch_frames_on(torch.device("cpu"), 64) == CPU_BATCH_FRAMES == 8
    assert batch_frames_on(torch.device("cpu"), 4) == 4
    assert batch_frames_on(torch.device("cuda"), 64) == 64


def faults_per_forward(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_FORWARD, mode], check=True,
                         capture_output=True, text=True, env=subprocess_env()).stdout
    return float(out)


def test_a_kept_heap_reuses_activation_buffers_instead_of_faulting_them_in():
    default, kept = faults_per_forward("default"), faults_per_forward("kept")
    assert default > 5_000  # glibc's defaults: fresh pages for most layer outputs
    assert kept < default / 10, (default, kept)
