"""download() and verify() against a local HTTP server: no real network is used."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from torchlogit.datasets._download import FileCheck, download, verify
from torchlogit.datasets._registry import SPECS, DownloadError, KnownFile

SIZE_A, SIZE_B = 300_000, 200_001
CHUNK = 64 * 1024
TIMEOUT = 2.0


def _data(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


DATA = {"a.bin": _data(1, SIZE_A), "b.bin": _data(2, SIZE_B)}


def _known(name: str, data: bytes) -> KnownFile:
    return KnownFile(name, hashlib.md5(data).hexdigest(), len(data))


SPEC = dataclasses.replace(
    SPECS["mnist"], name="fake", mirrors=(), downloads=tuple(_known(n, d) for n, d in DATA.items())
)


class FakeServer:
    """Serves ``files`` (URL path -> bytes); records (path, Range header) per request.

    ``ignore_ranges``: answer 200 with the whole file even to a Range request.
    ``cut[path] = k``: the next response for ``path`` announces the full
    Content-Length but hangs up after k body bytes (a dropped download).
    Paths not in ``files`` get a 404.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_ranges = False
        self.cut: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not server.ignore_ranges:
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.cut:
                    body = body[: server.cut.pop(self.path)]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def mirror(self, prefix: str, files=DATA) -> str:
        """Serve ``files`` under /prefix/ and return that mirror's base URL."""
        for name, data in files.items():
            self.files[f"/{prefix}/{name}"] = data
        return f"{self.base}{prefix}/"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@pytest.fixture
def server():
    srv = FakeServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=2)


@pytest.fixture
def closed_port_url():
    """A URL on a port nobody listens on: connecting is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/"


def fetch(tmp_path, mirrors, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("chunk", CHUNK)
    return download(SPEC, tmp_path, mirrors=mirrors, **kwargs)


def assert_complete(tmp_path):
    folder = tmp_path / "fake"
    for name, data in DATA.items():
        assert (folder / name).read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == sorted(DATA)  # no .part, nothing else


# --- download ------------------------------------------------------------------------------------


def test_download_writes_correct_files_and_no_part(server, tmp_path):
    paths = fetch(tmp_path, [server.mirror("m1")])
    assert paths == [tmp_path / "fake" / name for name in DATA]
    assert_complete(tmp_path)
    assert all(rng is None for _, rng in server.requests)


def test_second_run_uses_no_network(server, tmp_path):
    mirror = server.mirror("m1")
    fetch(tmp_path, [mirror])
    server.requests.clear()
    assert fetch(tmp_path, [mirror]) == [tmp_path / "fake" / name for name in DATA]
    assert server.requests == []


def test_dropped_connection_keeps_part_and_resumes(server, tmp_path):
    mirror = server.mirror("m1")
    server.cut["/m1/a.bin"] = 100_000
    with pytest.raises(DownloadError) as err:
        fetch(tmp_path, [mirror])
    message = str(err.value)
    assert "\n" not in message and "a.bin" in message and "cannot download" in message
    part = tmp_path / "fake" / "a.bin.part"
    assert part.stat().st_size == 100_000
    assert not (tmp_path / "fake" / "a.bin").exists()

    server.requests.clear()
    fetch(tmp_path, [mirror])
    assert server.requests[0] == ("/m1/a.bin", "bytes=100000-")
    assert_complete(tmp_path)


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    # a .part whose bytes are wrong: appending to it would corrupt the file
    (folder / "a.bin.part").write_bytes(b"\0" * 50_000)
    server.ignore_ranges = True
    fetch(tmp_path, [server.mirror("m1")])
    assert server.requests[0] == ("/m1/a.bin", "bytes=50000-")
    assert_complete(tmp_path)


def test_full_size_part_is_verified_without_network(server, tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "a.bin.part").write_bytes(DATA["a.bin"])
    fetch(tmp_path, [server.mirror("m1")])
    assert server.paths() == ["/m1/b.bin"]
    assert_complete(tmp_path)


def test_complete_part_of_unknown_size_is_verified_after_416(server, tmp_path):
    unsized = dataclasses.replace(SPEC, downloads=(dataclasses.replace(SPEC.downloads[0], size=None),))
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "a.bin.part").write_bytes(DATA["a.bin"])
    download(unsized, tmp_path, mirrors=[server.mirror("m1")], timeout=TIMEOUT, chunk=CHUNK)
    assert server.requests == [("/m1/a.bin", f"bytes={SIZE_A}-")]
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin"]
    assert (folder / "a.bin").read_bytes() == DATA["a.bin"]


def test_first_mirror_404_falls_back(server, tmp_path):
    server.mirror("good")
    fetch(tmp_path, [server.base + "empty/", server.base + "good/"])
    assert server.paths() == ["/empty/a.bin", "/good/a.bin", "/empty/b.bin", "/good/b.bin"]
    assert_complete(tmp_path)


def test_unreachable_mirror_falls_back(server, tmp_path, closed_port_url):
    fetch(tmp_path, [closed_port_url, server.mirror("good")])
    assert_complete(tmp_path)


def test_silent_mirror_times_out_and_falls_back(server, tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        fetch(tmp_path, [url, server.mirror("good")], timeout=0.2)
    assert_complete(tmp_path)


def test_all_mirrors_unreachable(tmp_path, closed_port_url):
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    second = f"http://127.0.0.1:{other.getsockname()[1]}/"
    other.close()
    with pytest.raises(DownloadError) as err:
        fetch(tmp_path, [closed_port_url, second])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot download a.bin: no mirror reachable (")
    assert closed_port_url + "a.bin" in message and second + "a.bin" in message
    assert str(tmp_path / "fake") in message
    assert not (tmp_path / "fake").exists()  # nothing arrived, so not even an empty folder


def test_wrong_md5_on_server(server, tmp_path):
    bad = dataclasses.replace(SPEC, downloads=(KnownFile("a.bin", "0" * 32, SIZE_A),))
    with pytest.raises(DownloadError) as err:
        download(bad, tmp_path, mirrors=[server.mirror("m1")], timeout=TIMEOUT, chunk=CHUNK)
    message = str(err.value)
    assert "\n" not in message and "a.bin" in message and server.base + "m1/a.bin" in message
    assert "0" * 32 in message and hashlib.md5(DATA["a.bin"]).hexdigest() in message
    assert list((tmp_path / "fake").iterdir()) == []  # no final file, no .part to resume from


def test_existing_correct_file_is_not_touched(server, tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    kept = folder / "a.bin"
    kept.write_bytes(DATA["a.bin"])
    os.utime(kept, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = kept.stat().st_mtime_ns
    fetch(tmp_path, [server.mirror("m1")])
    assert kept.stat().st_mtime_ns == before
    assert server.paths() == ["/m1/b.bin"]
    assert_complete(tmp_path)


def test_progress_counts_up_to_total(server, tmp_path):
    calls = []
    fetch(tmp_path, [server.mirror("m1")], progress=lambda *args: calls.append(args))
    for name, data in DATA.items():
        mine = [(done, total) for n, done, total in calls if n == name]
        assert len(mine) > 1  # several chunks
        dones = [done for done, _ in mine]
        assert dones == sorted(set(dones))  # strictly increasing
        assert all(total == len(data) for _, total in mine)
        assert dones[-1] == len(data)


# --- verify --------------------------------------------------------------------------------------


def _status(checks: list[FileCheck]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_verify_statuses(tmp_path):
    good, short, wrong = _data(3, 1000), _data(4, 1000), _data(5, 1000)
    spec = dataclasses.replace(
        SPEC,
        downloads=(_known("good", good), _known("short", short), _known("wrong", wrong), _known("gone", good)),
        extracted=(_known("extra/x", good), _known("extra/y", good)),
    )
    folder = tmp_path / "fake"
    (folder / "extra").mkdir(parents=True)
    (folder / "good").write_bytes(good)
    (folder / "short").write_bytes(short[:-1])
    (folder / "wrong").write_bytes(good)  # right size, wrong bytes
    (folder / "extra" / "x").write_bytes(good)
    checks = verify(spec, tmp_path)
    # an extracted file is present, so the data set may be laid out that way: the
    # absent download "gone" is not reported, the absent extracted "extra/y" never is
    assert _status(checks) == {"good": "ok", "short": "size mismatch", "wrong": "md5 mismatch", "extra/x": "ok"}
    by_name = {c.name: c for c in checks}
    assert by_name["good"].path == folder / "good"
    assert by_name["good"].detail == f"1000 bytes, md5 {hashlib.md5(good).hexdigest()}"
    assert by_name["short"].detail == "expected 1000 bytes, got 999"
    assert (
        by_name["wrong"].detail == f"expected md5 {hashlib.md5(wrong).hexdigest()}, got {hashlib.md5(good).hexdigest()}"
    )

    # without any extracted file, the absent download is reported; the folder itself works too
    (folder / "extra" / "x").unlink()
    checks = verify(spec, folder)
    assert _status(checks) == {"good": "ok", "short": "size mismatch", "wrong": "md5 mismatch", "gone": "missing"}


def test_verify_cifar10_layouts(tmp_path):
    spec = SPECS["cifar10"]
    folder = tmp_path / "cifar10"
    folder.mkdir()
    # nothing there: only the archive that `download` fetches is reported missing
    assert [(c.name, c.status) for c in verify(spec, tmp_path)] == [("cifar-10-binary.tar.gz", "missing")]

    (folder / "cifar-10-batches-py").mkdir()
    (folder / "cifar-10-batches-py" / "batches.meta").write_bytes(b"not the real file")
    checks = verify(spec, tmp_path)
    assert [(c.name, c.status) for c in checks] == [("cifar-10-batches-py/batches.meta", "md5 mismatch")]
    assert checks[0].detail.startswith("expected md5 5ff9c542aee3614f3951f8cda6e48888, got ")

    (folder / "cifar-10-binary.tar.gz").write_bytes(b"short")  # present archives are still checked
    assert _status(verify(spec, tmp_path))["cifar-10-binary.tar.gz"] == "size mismatch"
