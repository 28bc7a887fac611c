"""IDX files, the format of MNIST and Fashion-MNIST.

Layout (big-endian): two zero bytes, a type code (0x08 = uint8, ...), the number
of dimensions D, then D uint32 sizes, then the data in C order. The published
files are gzipped; both forms are read.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ._registry import DatasetError

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is a gzip file; corrupt gzip data is a DatasetError."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (read-only view of the file's bytes)."""
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _TYPES or raw[3] == 0:
        raise DatasetError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex() or 'none'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_TYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DatasetError(
            f"{path}: {what}: the header announces {'x'.join(map(str, shape))} values "
            f"({expected} bytes with the header), the file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype, count=math.prod(shape), offset=header).reshape(shape)


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
        raise DatasetError(f"{images_path}: expected uint8 images of {image_shape}, found {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected a vector of uint8 labels, found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path}: {len(images)} images, but {labels_path.name} has {len(labels)} labels")
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise DatasetError(f"{labels_path}: label {labels[bad[0]]} at row {bad[0]} is not a class 0..{n_classes - 1}")
    return images.reshape(len(images), -1), labels.astype(np.int64)
