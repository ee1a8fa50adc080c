"""The CLI's `--threads`: torch's threads and every BLAS library's, for the whole step."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_info

from vlpipe import cli


def test_threads_limit_torch_and_numpy_blas_for_the_step(monkeypatch, tmp_path):
    seen = {}

    def step(args) -> None:
        seen["torch"] = torch.get_num_threads()
        seen["blas"] = {pool["num_threads"] for pool in threadpool_info()
                        if pool["user_api"] == "blas"}

    monkeypatch.setattr(cli, "_vocab", step)
    before = torch.get_num_threads()
    try:
        cli.main(["--threads", "1", "vocab", "--clips", "c.parquet", "--out", "v.json"])
    finally:
        torch.set_num_threads(before)
    assert seen == {"torch": 1, "blas": {1}}
