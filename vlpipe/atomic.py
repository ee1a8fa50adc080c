"""Atomic outputs: write to a hidden temporary sibling, then rename into place.

A killed process leaves at most a ``.tmp-*`` sibling behind, never a file or store that a later
step could mistake for a finished one; a failed write (a full disk) leaves nothing, and the
previous output, if any, as it was.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


def _temp_sibling(path: Path, directory: bool) -> Path:
    """A new hidden temporary next to ``path``; the temporaries a killed writer of the same
    path left behind are removed first (one job writes a given output at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{path.name}-"
    for stale in path.parent.glob(f"{glob.escape(prefix)}*"):
        _remove(stale)
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path``, on error it is removed (an
    ``OSError``, e.g. a full disk, gets a note naming ``path``)."""
    path = Path(path)
    tmp = _temp_sibling(path, directory)
    try:
        yield tmp
        if directory and path.exists():
            _remove(path)  # os.replace cannot replace a non-empty directory
        os.replace(tmp, path)
    except BaseException as error:
        _remove(tmp)
        if isinstance(error, OSError):
            error.add_note(f"{path}: not written (its temporary was removed)")
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
