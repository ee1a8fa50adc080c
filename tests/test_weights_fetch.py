"""``vlpipe weights fetch`` / ``list`` against a real HTTP server on 127.0.0.1 serving small
generated files: checksums, resuming with Range after a dropped connection, errors, statuses."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vlpipe import cli
from vlpipe.extractors.weights import (
    WEIGHT_FILES,
    MissingWeightsError,
    WeightFile,
    resolve_weights,
    weight_locations,
)
from vlpipe.extractors.weights_fetch import FetchError, fetch, fetch_one, select, table

DATA = random.Random(0).randbytes(200_000)  # a few read blocks
SHA = hashlib.sha256(DATA).hexdigest()
ORIGIN = "https://weights.invalid/models/"  # never contacted: the tests pass a base URL


@dataclass
class Served:
    files: dict[str, bytes]
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (file, Range)
    drops: dict[str, int] = field(default_factory=dict)  # times to send half, then hang up
    ignore_range: bool = False
    url: str = ""


@pytest.fixture
def server():
    served = Served({"good.bin": DATA, "bad.bin": DATA, "yolo.pt": DATA})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            name, byte_range = self.path.lstrip("/"), self.headers.get("Range")
            served.requests.append((name, byte_range))
            body = served.files.get(name)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if byte_range and not served.ignore_range:
                start = int(byte_range.removeprefix("bytes=").removesuffix("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if served.drops.get(name):
                served.drops[name] -= 1
                self.wfile.write(body[start:start + (len(body) - start) // 2])
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{httpd.server_port}"
    yield served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLPIPE_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.delenv("VLPIPE_WEIGHTS_URL", raising=False)
    return tmp_path / "weights"


GOOD = WeightFile(f"{ORIGIN}good.bin", SHA)
PREFIX = WeightFile(f"{ORIGIN}good.bin", SHA[:8])  # as torchvision publishes its checksums
BAD = WeightFile(f"{ORIGIN}bad.bin", "0" * 64)


def test_a_verified_download_lands_where_the_extractors_look(server, cache, capsys):
    path = fetch_one("good", PREFIX, server.url)
    assert path == weight_locations("good.bin")[0] == cache / "good.bin"
    assert path.read_bytes() == DATA
    assert sorted(p.name for p in cache.iterdir()) == ["good.bin"]  # no .part left
    assert f"sha256 {SHA} (verified)" in capsys.readouterr().out


def test_a_wrong_checksum_leaves_no_complete_looking_file(server, cache):
    with pytest.raises(FetchError) as error:
        fetch_one("bad", BAD, server.url)
    message = str(error.value)
    for part in ("bad.bin", f"{server.url}/bad.bin", "0" * 64, SHA, "deleted"):
        assert part in message
    assert list(cache.iterdir()) == []


def test_a_dropped_connection_resumes_with_range(server, cache, capsys):
    server.drops["good.bin"] = 1
    path = fetch_one("good", GOOD, server.url)
    assert path.read_bytes() == DATA
    half = len(DATA) // 2
    assert server.requests == [("good.bin", None), ("good.bin", f"bytes={half}-")]
    assert f"resuming from byte {half}" in capsys.readouterr().out


def test_a_download_dropped_every_time_is_kept_as_part_and_resumed_later(server, cache):
    server.drops["good.bin"] = 3
    with pytest.raises(FetchError, match=r"good: .*/good.bin: _Dropped: connection closed at "
                                         r"byte 175000 of 200000 \(3 attempts\); .*good.bin.part "
                                         r"is kept and a later fetch resumes it"):
        fetch_one("good", GOOD, server.url)
    assert sorted(p.name for p in cache.iterdir()) == ["good.bin.part"]
    fetch_one("good", GOOD, server.url)
    assert (cache / "good.bin").read_bytes() == DATA
    assert server.requests[-1] == ("good.bin", "bytes=175000-")


def test_a_part_file_is_resumed_or_restarted_where_range_is_ignored(server, cache):
    cache.mkdir()
    (cache / "good.bin.part").write_bytes(DATA[:1000])
    fetch_one("good", GOOD, server.url)
    server.ignore_range = True
    (cache / "good.bin").unlink()
    (cache / "good.bin.part").write_bytes(b"x" * 1000)  # would corrupt the file if appended to
    fetch_one("good", GOOD, server.url)
    assert (cache / "good.bin").read_bytes() == DATA
    assert server.requests == [("good.bin", "bytes=1000-")] * 2


def test_http_and_connection_errors_name_the_weight_and_url(server, cache):
    missing = WeightFile(f"{ORIGIN}gone.bin", SHA)
    errors = fetch(["gone", "good"], server.url, {"gone": missing, "good": GOOD})
    assert [str(e) for e in errors] == [f"gone: {server.url}/gone.bin: HTTP 404 Not Found"]
    assert (cache / "good.bin").is_file()  # the others are still fetched
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(FetchError, match=rf"gone: cannot reach http://127.0.0.1:{port}/gone.bin"):
        fetch_one("gone", missing, f"http://127.0.0.1:{port}")


def test_a_present_file_is_skipped_and_a_corrupt_one_replaced(server, cache, capsys,
                                                             monkeypatch):
    monkeypatch.setenv("VLPIPE_WEIGHTS_URL", server.url)  # the override by environment
    fetch_one("good", GOOD)
    fetch_one("good", GOOD)
    assert len(server.requests) == 1
    assert f"good: present, {cache / 'good.bin'}" in capsys.readouterr().out
    (cache / "good.bin").write_bytes(b"truncated")
    fetch_one("good", GOOD)
    assert (cache / "good.bin").read_bytes() == DATA and len(server.requests) == 2


def test_list_statuses(server, cache):
    registry = {"present": GOOD, "missing": WeightFile(f"{ORIGIN}none.bin", SHA),
                "corrupt": WeightFile(f"{ORIGIN}corrupt.bin", SHA),
                "partial": WeightFile(f"{ORIGIN}part.bin", SHA),
                "unverified": WeightFile(f"{ORIGIN}other.bin", None),
                "pose": WeightFile(f"{ORIGIN}yolo.pt", None, converted="yolo.state_dict.pt")}
    fetch_one("present", GOOD, server.url)
    (cache / "corrupt.bin").write_bytes(DATA[:-1])
    (cache / "part.bin.part").write_bytes(DATA[:5000])
    (cache / "other.bin").write_bytes(b"anything")
    rows = {line.split()[0]: line.split()[1:] for line in table(registry).splitlines()[2:]}
    assert {name: row[1] for name, row in rows.items()} == {
        "present": "present", "missing": "missing", "corrupt": "corrupt",
        "partial": "partial", "unverified": "present", "pose": "missing"}
    assert rows["present"][:4] == ["good.bin", "present", "195.3", "KiB"]
    assert rows["partial"][0] == "part.bin.part" and rows["missing"][2] == "-"
    fetch_one("pose", registry["pose"], server.url)
    assert table(registry).splitlines()[-1].split()[:3] == ["pose", "yolo.pt", "unconverted"]
    (cache / "yolo.state_dict.pt").write_bytes(b"state dict")
    assert table(registry).splitlines()[-1].split()[:3] == ["pose", "yolo.state_dict.pt",
                                                             "present"]


def test_the_conversion_step_is_printed_for_a_checkpoint(server, cache, capsys):
    fetch_one("pose", WeightFile(f"{ORIGIN}yolo.pt", None, converted="yolo.state_dict.pt"),
              server.url)
    out = capsys.readouterr().out
    assert "NOT verified: no checksum published" in out
    assert (f"YOLO('{cache / 'yolo.pt'}').model.float().state_dict(), "
            f"'{cache / 'yolo.state_dict.pt'}')") in out


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_an_archives_member_is_extracted_where_the_extractor_looks(server, cache, capsys):
    server.files["pack.zip"] = _zip({"pack/model.onnx": DATA, "pack/other.onnx": b"x"})
    server.files["empty.zip"] = _zip({"readme.txt": b"nothing"})
    entry = WeightFile(f"{ORIGIN}pack.zip", None, member="model.onnx")
    assert fetch_one("pack", entry, server.url) == cache / "model.onnx"
    assert (cache / "model.onnx").read_bytes() == DATA
    assert f"pack: extracted {cache / 'model.onnx'} from pack.zip" in capsys.readouterr().out
    assert table({"pack": entry}).splitlines()[-1].split()[:3] == ["pack", "model.onnx",
                                                                   "present"]
    assert entry.loads == "model.onnx"
    with pytest.raises(FetchError, match=r"empty.zip has no other.onnx"):
        fetch_one("empty", WeightFile(f"{ORIGIN}empty.zip", None, member="other.onnx"),
                  server.url)
    assert not (cache / "other.onnx").exists() and not (cache / "other.onnx.part").exists()


def test_unknown_names_are_an_error_listing_the_known_ones(cache):
    with pytest.raises(SystemExit, match=r"unknown weight\(s\) \['resnet99'\]; known: resnet34, "):
        cli.main(["weights", "fetch", "resnet34", "resnet99"])
    assert select([]) == list(WEIGHT_FILES)


def test_the_registry_names_the_files_extractors_load(cache, capsys):
    """The registry's torchvision files are torchvision's own (their transforms apply), I3D's is
    pytorchvideo's; a missing file's error says how to fetch it; the CLI lists every entry."""
    from pytorchvideo.models.hub.resnet import checkpoint_paths

    from vlpipe.extractors.image import BACKBONES, torchvision_weights

    for arch in BACKBONES:
        weights = torchvision_weights(arch, WEIGHT_FILES[arch].file_name)
        assert weights.url == WEIGHT_FILES[arch].url
    assert WEIGHT_FILES["i3d"].url == checkpoint_paths["i3d_r50"]
    with pytest.raises(MissingWeightsError, match=r"`vlpipe weights fetch c3d`"):
        resolve_weights(WEIGHT_FILES["c3d"].file_name)
    with pytest.raises(MissingWeightsError, match=r"`vlpipe weights fetch yolo11n-pose`"):
        resolve_weights("yolo11n-pose.state_dict.pt")
    cli.main(["weights", "list"])
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == list(WEIGHT_FILES)
    assert all(row.split()[2] == "missing" for row in rows)
