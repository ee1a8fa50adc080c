"""``vlpipe weights fetch`` / ``list``: download the registry's weight files (``WEIGHT_FILES``)
into the weight cache, where the extractors look for them.

A download goes to ``<file>.part``, resumed with an HTTP Range request after a dropped
connection (restarted where the server ignores Range), and is renamed into place only once its
checksum matches; a mismatching download is deleted. ``vlpipe/atomic.py`` does not fit here: it
removes a killed writer's temporary, which is what a resumed download continues from. A file the
extractor loads out of an archive (``WeightFile.member``) is extracted beside it.
"""

from __future__ import annotations

import http.client
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from vlpipe.extractors.weights import (
    WEIGHT_FILES,
    WeightFile,
    state_dict_command,
    weight_locations,
    weights_cache,
)
from vlpipe.weight_files import sha256_hex

BASE_URL_ENV = "VLPIPE_WEIGHTS_URL"  # a base URL replacing each file's own (a mirror)
ATTEMPTS = 3  # transfers per fetch: a dropped connection resumes twice
TIMEOUT_S = 60
BLOCK = 1 << 16


class FetchError(RuntimeError):
    """A weight file could not be fetched; the message names it, its URL and why."""


class _Dropped(Exception):
    """The connection ended before the whole body arrived."""


def select(names: Iterable[str], registry: Mapping[str, WeightFile] = WEIGHT_FILES) -> list[str]:
    """``names`` checked against the registry (none given: all of it)."""
    names = list(names) or list(registry)
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise KeyError(f"unknown weight(s) {unknown}; known: {', '.join(registry)}")
    return names


def file_url(entry: WeightFile, base_url: str | None = None) -> str:
    """The entry's URL, or its file under ``base_url`` (default ``$VLPIPE_WEIGHTS_URL``)."""
    base = base_url or os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{entry.file_name}" if base else entry.url


def _matches(entry: WeightFile, digest: str) -> bool:
    return entry.sha256 is None or digest.startswith(entry.sha256)


def _expected(entry: WeightFile) -> str:
    if entry.sha256 is None:
        return "none published"
    return f"sha256 {entry.sha256}" + ("" if len(entry.sha256) == 64 else "… (prefix)")


def _found(file_name: str) -> Path | None:
    return next((path for path in weight_locations(file_name) if path.is_file()), None)


def _transfer(name: str, url: str, part: Path) -> None:
    """Append the rest of ``url`` to ``part`` (all of it anew where the server ignores Range);
    ``_Dropped`` or an ``OSError`` if the connection ends early."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as error:
        if error.code == 416 and offset:  # nothing past the .part's end: the checksum decides
            return
        raise FetchError(f"{name}: {url}: HTTP {error.code} {error.reason}") from None
    except (URLError, OSError) as error:
        raise FetchError(f"{name}: cannot reach {url}: "
                         f"{getattr(error, 'reason', error)}") from None
    with response:
        if offset and response.status != 206:  # the server ignored Range: start again
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with part.open("ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, desc=name, unit="B", unit_scale=True,
                     unit_divisor=1024, leave=False, file=sys.stderr) as bar:
            while block := response.read(BLOCK):
                out.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Dropped(f"connection closed at byte {size} of {total}")


def _download(name: str, url: str, part: Path) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _transfer(name, url, part)
            return
        except (_Dropped, OSError, http.client.HTTPException) as error:
            reason = f"{type(error).__name__}: {error}"
            if attempt < ATTEMPTS:
                done = part.stat().st_size if part.exists() else 0
                print(f"{name}: {reason}; resuming from byte {done}")
    raise FetchError(f"{name}: {url}: {reason} ({ATTEMPTS} attempts); {part} is kept and a "
                     f"later fetch resumes it")


def fetch_one(name: str, entry: WeightFile, base_url: str | None = None) -> Path:
    """Download ``entry`` into the weight cache unless a file with the right checksum is where
    the extractors look; returns that file. Raises ``FetchError``."""
    derived = _found(entry.loads) if entry.derived else None
    if derived:
        print(f"{name}: present, {derived}")
        return derived
    target = weights_cache() / entry.file_name
    present = _found(entry.file_name)
    if present:
        digest = sha256_hex(present)
        if _matches(entry, digest):
            print(f"{name}: present, {present} (checksum: {_expected(entry)})")
            return _derive(name, entry, present)
        print(f"{name}: {present} is corrupt (sha256 {digest}, expected {_expected(entry)}); "
              f"downloading it again")
        if present == target:  # known bad: not left where the extractor would load it
            present.unlink()
    url = file_url(entry, base_url)
    part = target.with_name(f"{target.name}.part")
    target.parent.mkdir(parents=True, exist_ok=True)
    _download(name, url, part)
    digest = sha256_hex(part)
    if not _matches(entry, digest):
        part.unlink()
        raise FetchError(f"{name}: checksum mismatch for {target.name} from {url}: expected "
                         f"{_expected(entry)}, got sha256 {digest}; the download was deleted "
                         f"(nothing written to {target})")
    os.replace(part, target)
    checked = "verified" if entry.sha256 else "NOT verified: no checksum published"
    print(f"{name}: {target} ({target.stat().st_size} bytes), sha256 {digest} ({checked})")
    return _derive(name, entry, target)


def _derive(name: str, entry: WeightFile, download: Path) -> Path:
    """What the extractor loads from ``download``: its archive member, extracted beside it (the
    path returned), or the conversion to run by hand (printed; the download returned)."""
    if entry.member:
        target = download.with_name(entry.member)
        part = target.with_name(f"{target.name}.part")
        try:
            with zipfile.ZipFile(download) as archive:
                member = next((m for m in archive.namelist()
                               if Path(m).name == entry.member), None)
                if member is None:
                    raise FetchError(f"{name}: {download} has no {entry.member}")
                part.write_bytes(archive.read(member))  # then renamed: never half a file
        except zipfile.BadZipFile as error:
            raise FetchError(f"{name}: {download}: {error}") from None
        os.replace(part, target)
        print(f"{name}: extracted {target} from {download.name}")
        return target
    if entry.converted:
        target = download.with_name(entry.converted)
        print(f"{name}: the extractor loads {entry.converted}, a state dict made from this "
              f"ultralytics checkpoint (vlpipe never unpickles it); convert it once with:\n"
              f"  {state_dict_command(str(download), str(target))}")
    return download


def fetch(names: Iterable[str] = (), base_url: str | None = None,
          registry: Mapping[str, WeightFile] = WEIGHT_FILES) -> list[FetchError]:
    """Fetch each named weight file (none named: all); the errors, each printed, are returned
    after the others were fetched."""
    errors = []
    for name in select(names, registry):
        try:
            fetch_one(name, registry[name], base_url)
        except FetchError as error:
            print(f"error: {error}", file=sys.stderr)
            errors.append(error)
    return errors


def status(entry: WeightFile) -> tuple[str, Path, int | None]:
    """(present | corrupt | unconverted | partial | missing, the file, its size in bytes)."""
    if entry.derived and (derived := _found(entry.loads)):
        return "present", derived, derived.stat().st_size
    found = _found(entry.file_name)
    if found:
        size = found.stat().st_size
        if not _matches(entry, sha256_hex(found)):
            return "corrupt", found, size
        return ("unconverted" if entry.derived else "present"), found, size
    target = weights_cache() / entry.file_name
    part = target.with_name(f"{target.name}.part")
    if part.is_file():
        return "partial", part, part.stat().st_size
    return "missing", target, None


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def table(registry: Mapping[str, WeightFile] = WEIGHT_FILES) -> str:
    """``vlpipe weights list``: one row per weight file, its status where the extractors look."""
    rows = [("name", "file", "status", "size", "checksum")]
    for name, entry in registry.items():
        state, path, size = status(entry)
        where = path.name if path.parent == weights_cache() else str(path)
        rows.append((name, where, state, _size(size), _expected(entry)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip() for row in rows]
    return f"weight cache: {weights_cache()}\n" + "\n".join(lines)
