"""Fetch a data set's published files, resumably, and check files already on disk.

Standard library only (urllib), so ``datasets download`` needs nothing extra.
Each file streams into ``<name>.part`` next to its final place and is renamed
into place only after its size and md5 match the publisher's, so a finished
file is never half-written and an interrupted one resumes where it stopped.
The library prints nothing: callers pass ``progress`` to draw their own bar.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._registry import DownloadError, KnownFile, Spec, dataset_folder, md5sum

__all__ = ["download", "verify", "FileCheck"]

# Everything a flaky network or a bad mirror raises: each means "try the next mirror".
# (HTTPError is a URLError; http.client's own errors, e.g. a malformed status line,
# are not OSErrors, hence listed.)
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


@dataclass(frozen=True)
class FileCheck:
    name: str  # relative to the data set's folder, as in the registry
    path: Path
    status: str  # "ok", "missing", "size mismatch" or "md5 mismatch"
    detail: str


def _check(folder: Path, known: KnownFile) -> FileCheck:
    path = folder / known.name
    if not path.is_file():
        return FileCheck(known.name, path, "missing", f"{path} not found")
    size = path.stat().st_size
    # size first: a truncated file is caught without reading it all
    if known.size is not None and size != known.size:
        return FileCheck(known.name, path, "size mismatch", f"expected {known.size} bytes, got {size}")
    got = md5sum(path)
    if got != known.md5:
        return FileCheck(known.name, path, "md5 mismatch", f"expected md5 {known.md5}, got {got}")
    return FileCheck(known.name, path, "ok", f"{size} bytes, md5 {got}")


def verify(spec: Spec, directory) -> list[FileCheck]:
    """Check the files of ``spec`` under ``directory`` (or ``directory/<name>``).

    Downloaded archives are always reported, "missing" included; the optional
    extracted files only when present. When any extracted file is present, the
    data set is laid out that way instead (e.g. CIFAR-10's python batches), so
    absent archives are then not reported. Raises DatasetError if
    ``directory`` does not exist.
    """
    folder = dataset_folder(spec, directory)
    extracted = [c for c in (_check(folder, f) for f in spec.extracted) if c.status != "missing"]
    downloads = [_check(folder, f) for f in spec.downloads]
    if extracted:
        downloads = [c for c in downloads if c.status != "missing"]
    return downloads + extracted


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # the error message must stay on one line


def _stream(url: str, part: Path, known: KnownFile, progress, timeout: float, chunk: int) -> None:
    """Append the rest of ``url`` to ``part`` (or rewrite it when the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past our end: the .part holds it all; verify it
            return
        raise
    with response:
        if response.status == 206:
            # appending the wrong slice would silently corrupt the file
            if not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                raise ConnectionError(f"server answered with range {response.headers.get('Content-Range')}")
            mode = "ab"
        else:  # 200: the server ignored Range and sends the whole file
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        end = have + int(length) if length is not None else None
        total = end if end is not None else known.size
        done = have
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed run leaves no empty folder
        with open(part, mode) as out:
            while block := response.read(chunk):
                out.write(block)
                done += len(block)
                if progress is not None:
                    progress(known.name, done, total)
            out.flush()
            os.fsync(out.fileno())  # so the rename below never exposes unwritten data
    # http.client returns b"" rather than raising when the peer hangs up early
    if end is not None and done < end:
        raise ConnectionError(f"connection closed after {done} of {end} bytes")


def _fetch(known: KnownFile, bases: list[str], folder: Path, progress, timeout: float, chunk: int) -> Path:
    final = folder / known.name
    if _check(folder, known).status == "ok":  # already there: use no network at all
        if progress is not None:  # so a caller's bar shows the file as complete
            progress(known.name, final.stat().st_size, final.stat().st_size)
        return final
    part = final.with_name(final.name + ".part")
    # A leftover .part at (or past) full size cannot be resumed; keep it if it is right.
    if part.exists() and known.size is not None and part.stat().st_size >= known.size:
        if part.stat().st_size == known.size and md5sum(part) == known.md5:
            os.replace(part, final)
            return final
        part.unlink()
    failures = []
    for base in bases:
        url = (base if base.endswith("/") else base + "/") + known.name
        try:
            _stream(url, part, known, progress, timeout, chunk)
        except _NETWORK_ERRORS as exc:
            failures.append(f"{url}: {_reason(exc)}")  # the .part stays, for the next mirror or run
            continue
        size, got = part.stat().st_size, md5sum(part)
        if got != known.md5 or (known.size is not None and size != known.size):
            part.unlink()  # corrupt: resuming from it would only extend the damage
            raise DownloadError(
                f"{known.name} from {url} is corrupt: expected md5 {known.md5} "
                f"({known.size} bytes), got md5 {got} ({size} bytes); deleted it, run again to retry"
            )
        os.replace(part, final)
        return final
    raise DownloadError(
        f"cannot download {known.name}: no mirror reachable ({'; '.join(failures) or 'no mirrors given'}); "
        f"check the network, or copy the files by hand into {folder}"
    )


def download(
    spec: Spec, directory, *, mirrors=None, progress=None, timeout: float = 30.0, chunk: int = 1 << 20
) -> list[Path]:
    """Fetch every file of ``spec.downloads`` into ``directory/<spec.name>/``; return their paths.

    ``mirrors`` (base URLs ending in "/") replaces ``spec.mirrors``; each file
    comes from the first mirror that works. Files already present and correct
    are kept as they are. ``progress(file_name, done_bytes, total_bytes)`` is
    called as data arrives. Raises DownloadError (one line) when a file cannot
    be fetched from any mirror or arrives corrupt; files finished before stay.
    """
    folder = Path(directory) / spec.name
    bases = list(spec.mirrors if mirrors is None else mirrors)
    return [_fetch(known, bases, folder, progress, timeout, chunk) for known in spec.downloads]
