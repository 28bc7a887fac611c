"""IDX files, the format of MNIST and Fashion-MNIST.

Layout (big-endian): two zero bytes, a type code (0x08 = uint8, ...), the number
of dimensions D, then D uint32 sizes, then the data in C order. The published
files are gzipped; both forms are read.

The header is trusted only as far as the published files allow: the byte count
its sizes declare is checked against the registry's shape for that file name
(e.g. at most 60000x28x28 bytes for train-images-idx3-ubyte) before anything is
read, and the data is read (gzip inflated) in pieces into a buffer that grows
with the bytes actually there, never more than one byte past the declared
count. So a small gzip bomb costs no more memory than the published file
would, and a header alone, whatever it announces, costs next to nothing.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ._registry import SPECS, DatasetError

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"

# An IDX file that is not one of the published ones (read_idx on any path) may
# declare at most this many data bytes: generous (the largest published file,
# Fashion-MNIST's train images, holds 47 MB) but finite.
UNKNOWN_IDX_LIMIT = 1 << 30


def _published_shapes() -> dict[str, tuple[int, ...]]:
    """{IDX file name without .gz: its published shape}, from the registry.

    train-images-idx3-ubyte -> (60000, 28, 28), t10k-labels-idx1-ubyte -> (10000,), ...
    MNIST and Fashion-MNIST use the same names and shapes; the larger one wins.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in SPECS.values():
        for known in spec.downloads:
            if not known.name.endswith("-ubyte.gz"):
                continue
            stem = known.name.removesuffix(".gz")
            n = spec.n_train if stem.startswith("train-") else spec.n_test
            shape = (n, *spec.image_shape) if "-images-" in stem else (n,)
            shapes[stem] = max(shapes.get(stem, shape), shape, key=math.prod)
    return shapes


_PUBLISHED = _published_shapes()


def _refuse_large(path: Path, shape, dtype: np.dtype) -> None:
    """DatasetError when the header's shape describes more than the file may hold."""
    # An empty array's other dimensions count too: numpy refuses (0, 2**32-1, 2**32-1) as too big,
    # and no published file is empty; for any other shape this is the data's byte count.
    nbytes = math.prod(max(d, 1) for d in shape) * dtype.itemsize
    dims = "x".join(map(str, shape))
    declared = f"the header declares {dims} {dtype.name} values ({nbytes} bytes)"
    if 0 in shape:
        declared = f"the header declares an empty {dims} array whose other dimensions span {nbytes} bytes"
    published = _PUBLISHED.get(path.name.removesuffix(".gz"))
    if published is not None:
        limit = math.prod(published)  # the published files are all uint8
        if nbytes > limit:
            raise DatasetError(
                f"{path}: {declared}, more than the published {path.name.removesuffix('.gz')} "
                f"({'x'.join(map(str, published))} uint8, {limit} bytes); refusing to read it"
            )
    elif nbytes > UNKNOWN_IDX_LIMIT:
        raise DatasetError(
            f"{path}: {declared}, more than the {UNKNOWN_IDX_LIMIT} bytes allowed for an IDX file "
            "that is not one of the published MNIST or Fashion-MNIST files; refusing to read it"
        )


_CHUNK = 1 << 20  # bytes read (inflated) per call


def _read_up_to(stream, n: int) -> bytearray:
    """At most ``n`` bytes of ``stream`` (fewer where it ends), read in pieces.

    The buffer grows with the bytes that arrive, so that a header announcing
    1 GiB in front of a few bytes allocates a few bytes, not 1 GiB (GzipFile
    would also inflate one large request into a new bytes object first).
    """
    buffer = bytearray()
    while len(buffer) < n:
        piece = stream.read(min(_CHUNK, n - len(buffer)))
        if not piece:
            break
        buffer += piece
    return buffer


def _read(path: Path, stream, gz: bool) -> np.ndarray:
    head = _read_up_to(stream, 4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _TYPES or head[3] == 0:
        raise DatasetError(f"{path}: not an IDX file (magic number 0x{head.hex() or 'none'})")
    ndim = head[3]
    sizes = _read_up_to(stream, 4 * ndim)
    header = 4 + 4 * ndim
    if len(sizes) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header ({4 + len(sizes)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = np.dtype(_TYPES[head[2]])
    nbytes = math.prod(shape) * dtype.itemsize
    _refuse_large(path, shape, dtype)  # before reading any data

    data = _read_up_to(stream, nbytes)
    extra = stream.read(1)  # one byte past the declared data: never inflate more
    if len(data) == nbytes and not extra:
        return np.frombuffer(data, dtype).reshape(shape)  # writable: a view of the bytearray
    announces = f"the header announces {'x'.join(map(str, shape))} values ({header + nbytes} bytes with the header)"
    if extra:
        raise DatasetError(f"{path}: longer than its header says: {announces}, the data goes on past that")
    has = f"{header + len(data)} bytes" + (" once gunzipped" if gz else "")
    raise DatasetError(f"{path}: truncated: {announces}, the file has {has}")


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file, refused (DatasetError) when its header asks for too much."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(2) != _GZIP_MAGIC:
            f.seek(0)
            return _read(path, f, gz=False)
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                return _read(path, stream, gz=True)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise DatasetError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def find_idx(folder: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``folder``."""
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder}: missing {stem}.gz (or {stem})")


def read_split(folder: Path, prefix: str, n_classes: int, image_shape) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, H*W) uint8, labels (n,) int64) of the ``train`` or ``t10k`` split."""
    images_path = find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != tuple(image_shape):
        raise DatasetError(
            f"{images_path}: expected uint8 images of {image_shape}, found {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected a vector of uint8 labels, found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path}: {len(images)} images, but {labels_path.name} has {len(labels)} labels")
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise DatasetError(f"{labels_path}: label {labels[bad[0]]} at row {bad[0]} is not a class 0..{n_classes - 1}")
    return images.reshape(len(images), -1), labels.astype(np.int64)
