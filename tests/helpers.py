"""Helpers shared by tests that run vlpipe or Snakemake in subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def subprocess_env() -> dict[str, str]:
    """The environment for ``python -m vlpipe`` / ``snakemake`` subprocesses: this checkout first
    on the import path (whatever else the caller's PYTHONPATH holds) and this Python's scripts
    on PATH."""
    repo = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in [repo, os.environ.get("PYTHONPATH")] if p)
    return {**os.environ, "PYTHONPATH": python_path,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
