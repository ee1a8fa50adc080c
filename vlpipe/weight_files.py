"""What every weight file shares, without torch or the extractors: its checksum and the error
for one that is missing (the extractors' weights, the text encoder's checkpoint)."""

from __future__ import annotations

import hashlib
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights were required but not found; the message says where and how to get
    them."""


def sha256_hex(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def file_digest(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256 (the identity provenance records)."""
    return sha256_hex(path)[:12]
