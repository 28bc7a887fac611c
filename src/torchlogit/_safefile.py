"""The container of model files and checkpoints: safetensors + JSON metadata + a SHA-256 of every byte.

Layout (a plain safetensors file that any safetensors reader opens)::

    8 bytes   little-endian u64: N, the header length
    N bytes   compact JSON header, padded with spaces to a multiple of 8, in
              this order:
              {"__metadata__":{"torchlogit_sha256":"<64 hex digits>",
                               "torchlogit":"<metadata JSON: format, format_version, ...>"},
               "<tensor>":{"dtype":..,"shape":..,"data_offsets":..}, ...}
    ...       raw little-endian tensor bytes, tensors in name order

The digest is the SHA-256 of the whole file with its own 64 hex digits
replaced by 64 '0's. It sits at a fixed offset (right after the
``{"__metadata__":{"torchlogit_sha256":"`` prefix), so every other byte is
covered: metadata, dtypes, shapes, offsets, the header's padding and the
tensor data. Any change, a single flipped bit included, is refused. The
digest detects damage and edits, not forgery: the formats built on this
(:mod:`torchlogit._io`, :mod:`torchlogit._checkpoint`) also check every
field. Reading parses JSON and raw numbers only, so a file never runs code.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "U8": np.dtype("u1")}
_CODES = {dtype: code for code, dtype in DTYPES.items()}
# the digest's place in the file: right after these bytes
_DIGEST_PREFIX = b'{"__metadata__":{"torchlogit_sha256":"'
_DIGEST_AT = 8 + len(_DIGEST_PREFIX)
_PLACEHOLDER = b"0" * 64


class Invalid(Exception):
    """A reason a file is refused; the public functions of each format add the file's name."""


def encode(meta: dict, tensors: dict) -> bytes:
    """The file's bytes, digest included. ``tensors``: name -> numpy array of a dtype in DTYPES."""
    header = {"__metadata__": {"torchlogit_sha256": _PLACEHOLDER.decode(), "torchlogit": json.dumps(meta)}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        header[name] = {"dtype": _CODES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        chunks.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()  # ASCII: json escapes the rest
    text += b" " * (-len(text) % 8)  # safetensors aligns the tensor data to 8 bytes
    blank = struct.pack("<Q", len(text)) + text + b"".join(chunks)
    assert blank[8:_DIGEST_AT] == _DIGEST_PREFIX
    return blank[:_DIGEST_AT] + _file_digest(blank).encode() + blank[_DIGEST_AT + 64 :]


def _file_digest(data: bytes) -> str:
    """SHA-256 of ``data`` with the 64 bytes of the digest read as '0's."""
    view = memoryview(data)
    h = hashlib.sha256(view[:_DIGEST_AT])
    h.update(_PLACEHOLDER)
    h.update(view[_DIGEST_AT + 64 :])
    return h.hexdigest()


def _read_header(data: bytes, noun: str) -> tuple[dict, int]:
    if len(data) < 8:
        raise Invalid(f"not a torchlogit {noun} (file too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise Invalid(f"not a torchlogit {noun}, or truncated (header runs past the end of the file)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, RecursionError):  # ValueError: also UnicodeDecodeError and integers over 4300 digits
        raise Invalid(f"not a torchlogit {noun}, or damaged (no readable safetensors header)") from None
    if not isinstance(header, dict):
        raise Invalid(f"not a torchlogit {noun}, or damaged (malformed header)")
    return header, 8 + n


def checked_metadata(data: bytes, fmt: str, version: int, noun: str, older=None) -> tuple[dict, dict, int]:
    """(header, metadata, start of tensor data) of a file of format ``fmt`` whose digest matches.

    ``noun`` names the kind of file in messages ("model", "checkpoint");
    ``older``: the message for a version below ``version`` (None: older ones are read).
    """
    header, start = _read_header(data, noun)
    outer = header.get("__metadata__")
    raw = outer.get("torchlogit") if isinstance(outer, dict) else None
    if not isinstance(raw, str):
        raise Invalid(f"a safetensors file, but not a torchlogit {noun} (no torchlogit metadata)")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, or an integer too long to parse
        raise Invalid("the torchlogit metadata is not valid JSON (file edited or damaged?)") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise Invalid(f"not a torchlogit {noun} (format {found!r})")
    found = meta.get("format_version")
    # checked before the digest: a newer version may compute it differently
    if type(found) is not int or found < 1:
        raise Invalid(f"not a torchlogit {noun}, or damaged (format version {found!r})")
    if found > version:
        raise Invalid(
            f"{noun} file format version {found} is newer than this torchlogit reads ({version}); upgrade torchlogit"
        )
    if found < version and older is not None:
        raise Invalid(older.format(version=found))
    stored = data[_DIGEST_AT : _DIGEST_AT + 64]
    if data[8:_DIGEST_AT] != _DIGEST_PREFIX or stored != _file_digest(data).encode():
        if _declared_size(header, start) > len(data):
            raise Invalid("truncated: the tensor data ends early")
        raise Invalid("checksum mismatch: the file was modified or damaged after saving")
    return header, meta, start


def _declared_size(header: dict, start: int) -> int:
    """The file size the header's tensor offsets imply (0 when they are malformed)."""
    ends = [e.get("data_offsets") for e in header.values() if isinstance(e, dict)]
    ends = [o[1] for o in ends if isinstance(o, list) and len(o) == 2 and type(o[1]) is int]
    return start + max(ends, default=0)


def read_tensors(header: dict, data: bytes, start: int, names, dtypes) -> dict:
    """The tensors ``names`` (exactly those) as native numpy arrays, after checking dtypes, shapes and offsets.

    ``dtypes``: the codes allowed (e.g. {"F32", "F64"}).
    """
    found = sorted(k for k in header if k != "__metadata__")
    if found != sorted(names):
        raise Invalid(f"expected the tensors {', '.join(sorted(names))}, found {found}"[:300])
    body, spans, tensors = len(data) - start, [], {}
    for name in found:
        entry = header[name]
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise Invalid(f"malformed entry for tensor {name!r}")
        code, shape, offsets = str(entry["dtype"]), entry["shape"], entry["data_offsets"]
        if code not in dtypes:
            raise Invalid(f"tensor {name!r} has dtype {entry['dtype']!r}; expected {' or '.join(sorted(dtypes))}")
        dtype = DTYPES[code]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise Invalid(f"tensor {name!r} has an invalid shape {shape!r}"[:300])
        count = math.prod(shape)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise Invalid(f"tensor {name!r} has invalid offsets {offsets!r}"[:300])
        if not 0 <= offsets[0] <= offsets[1] <= body or offsets[1] - offsets[0] != count * dtype.itemsize:
            raise Invalid(f"tensor {name!r}: offsets {offsets!r} do not match its shape and dtype")
        spans.append(offsets)
        a = np.frombuffer(data, dtype=dtype, count=count, offset=start + offsets[0])
        tensors[name] = a.reshape(shape).astype(dtype.newbyteorder("="))  # a writable native copy
    spans.sort()
    if spans and ([s[0] for s in spans] != [0] + [s[1] for s in spans[:-1]] or spans[-1][1] != body):
        raise Invalid("the tensors do not tile the data section")
    return tensors
