"""CIFAR-10 in both published versions, from folders or straight from the archives.

Binary version (``cifar-10-batches-bin/``): ``data_batch_{1..5}.bin`` and
``test_batch.bin``, each a sequence of 3073-byte records (1 label byte, then
1024 red, 1024 green, 1024 blue pixel bytes, rows top to bottom), and
``batches.meta.txt`` with one class name per line.

Python version (``cifar-10-batches-py/``): the same batches without suffix,
each a pickled dict {'data': uint8 (N, 3072), 'labels': [N ints], ...}, and
``batches.meta`` with 'label_names'. Pickles can run code when loaded, so
they go through an unpickler that admits only what these files contain:
dicts, lists, strings, numbers and numpy arrays of plain numbers. Anything
else is refused before it is called.

Memory stays bounded whatever a file declares: each file's size is checked
against what the published one can hold before it is read, an archive yields
only the members the published archive has (others are skipped unread), and
the unpickler refuses arrays larger than a batch's (10000, 3072) pixels before
numpy allocates them.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._registry import DatasetError

RECORD = 1 + 3072
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"

N_BATCH = 10000  # images in each published batch
BINARY_BATCH_BYTES = N_BATCH * RECORD  # 30,730,000: each published .bin batch, exactly
# A published python batch is about 31.0 MB: the 30,720,000 pixel bytes, the
# labels and 10000 file names. Re-pickled by Python 3 at protocol 2, the pixels
# become UTF-8 text of up to 2 bytes each; 1 MiB more covers labels and names.
PICKLE_BATCH_BYTES = 2 * N_BATCH * 3072 + (1 << 20)
META_BYTES = 4096  # ten class names: the published meta files hold a few hundred bytes
# Arrays one pickle may build, in bytes all together: the (10000, 3072) uint8
# pixels plus 10000 labels, were they stored as an int64 array rather than a list.
PICKLE_ARRAY_BYTES = N_BATCH * (3072 + 8)
# Pickle opcodes one file may run. A published batch runs a few per image (a
# label, a file name and its memo entry); every opcode can create an object, so
# this bounds the memory a small file of tiny objects can claim.
PICKLE_MAX_OPS = 100 * N_BATCH
MAX_MEMBERS = 64  # entries in an archive; the published ones have 9 (folder, 6 batches, meta, readme.html)
_TAR_READ_CAP = 1 << 20  # the largest single read tarfile may make (its headers are 512 bytes)
_CHUNK = 1 << 18  # member data is read in pieces of this size, below the cap


class _Refused(pickle.UnpicklingError):
    """A pickle that asks for something no CIFAR-10 file contains."""


def _is_plain(dtype: np.dtype) -> bool:
    """A plain number type (bool, int, uint, float) with nothing attached (fields, flags, metadata)."""
    return (
        dtype.kind in "biuf"
        and dtype.itemsize <= 8
        and dtype.fields is None
        and dtype.metadata is None
        and dtype.flags == np.dtype(dtype.str).flags
    )


def _plain_dtype(dtype) -> np.dtype:
    """``dtype`` when it is a plain number type; _Refused otherwise."""
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"the pickle gives {type(dtype).__name__} where a numpy dtype belongs")
    if not _is_plain(dtype):
        raise _Refused(f"the pickle asks for numpy dtype {dtype!r}; CIFAR-10 files hold plain numbers only")
    return dtype


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise _Refused(f"the pickle gives {shape!r} where an array shape belongs")
    return shape


class _Unpickler(pickle._Unpickler):
    """Python's own unpickler (not the C one) with every allocation checked first.

    The C unpickler allocates the length a BINBYTES8 opcode declares before it
    reads a byte; the Python one reads only what the file holds. Its dispatch
    table is copied so that each opcode is counted and BUILD and BYTEARRAY8 are
    checked.
    """

    def __init__(self, raw: bytes):
        super().__init__(io.BytesIO(raw), encoding="latin1")  # the files were written by Python 2
        self.ops_left = PICKLE_MAX_OPS
        self.array_bytes_left = PICKLE_ARRAY_BYTES
        from numpy._core import multiarray, numeric

        self.multiarray, self.numeric = multiarray, numeric
        self.allowed = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,  # pickles written by numpy 1.x
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,  # and by numpy 2.x
            ("numpy._core.numeric", "_frombuffer"): self._frombuffer,  # protocol 5
            ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy", "ndarray"): _NDARRAY,  # only a token for _reconstruct: calling it would allocate
            ("numpy", "dtype"): self._dtype,
            ("_codecs", "encode"): self._encode,  # how Python 3 pickles bytes at protocol 2
        }

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            asked = f"{module}.{name}"
            asked = asked if asked.isprintable() else repr(asked)  # the file's bytes: maybe a newline
            raise _Refused(f"the pickle asks for {asked}, which no CIFAR-10 file contains (the file may be malicious)")
        return self.allowed[(module, name)]

    def _charge(self, shape, dtype) -> None:
        """Count an array of ``shape`` and ``dtype`` against the pickle's budget, before it exists."""
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > self.array_bytes_left:
            raise _Refused(
                f"the pickle asks for a {'x'.join(map(str, shape))} {dtype.name} array ({nbytes} bytes), "
                f"more than the {PICKLE_ARRAY_BYTES} bytes of arrays a CIFAR-10 batch holds"
            )
        self.array_bytes_left -= nbytes

    # What find_class hands out instead of numpy's own functions: each checks its arguments first.

    def _reconstruct(self, subtype, shape, typecode):
        if subtype is not _NDARRAY:
            raise _Refused(f"the pickle asks numpy to build a {type(subtype).__name__}, not an ndarray")
        shape = _shape(shape)
        if not isinstance(typecode, (str, bytes)):
            raise _Refused(f"the pickle gives {type(typecode).__name__} where a numpy type code belongs")
        dtype = _plain_dtype(np.dtype(typecode))
        self._charge(shape, dtype)  # numpy writes (0,); a hostile file may ask for (2**28, 3072)
        return self.multiarray._reconstruct(np.ndarray, shape, dtype)

    def _frombuffer(self, buffer, dtype, shape, order, axis_order=None):
        # the buffer came from the file (bytes, or a bytearray or memoryview of them): a view, no copy
        if not isinstance(buffer, (bytes, bytearray, memoryview)):
            raise _Refused(f"the pickle gives {type(buffer).__name__} where array bytes belong")
        shape = _shape(shape)
        self._charge(shape, _plain_dtype(dtype))
        if axis_order is None:  # numpy before 2.x takes no axis_order
            return self.numeric._frombuffer(buffer, dtype, shape, order)
        return self.numeric._frombuffer(buffer, dtype, shape, order, _shape(axis_order))

    def _dtype(self, typecode, align=False, copy=True):
        if not isinstance(typecode, (str, bytes)):
            raise _Refused(f"the pickle gives {type(typecode).__name__} where a numpy type code belongs")
        # always a copy: BUILD may set its state, which must never touch numpy's shared dtypes
        return _plain_dtype(np.dtype(typecode, bool(align), True))

    def _encode(self, text, encoding="utf-8", errors="strict"):
        # Python 3 pickles bytes b as _codecs.encode(b.decode('latin1'), 'latin1'): same length
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused(f"the pickle asks for _codecs.encode of {type(text).__name__} to {encoding!r}")
        return codecs.encode(text, encoding, errors)

    # Opcodes replaced in the dispatch table.

    def _build(self):
        """BUILD: set an array's or a dtype's state, checked before numpy applies it."""
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            # (version, shape, dtype, is_fortran, raw data) with the version optional
            fields = state[1:] if isinstance(state, tuple) and len(state) == 5 else state
            if not isinstance(fields, tuple) or len(fields) != 4 or not isinstance(fields[3], (bytes, str)):
                raise _Refused("the pickle sets an ndarray's state to something numpy does not write")
            shape = _shape(fields[0])
            self._charge(shape, _plain_dtype(fields[1]))
        elif isinstance(inst, np.dtype):
            # numpy accepts states that attach fields anywhere (object pointers, offsets
            # past the element) to a dtype arrays may already use: try it on a copy first
            trial = np.dtype(inst.str, False, True)
            trial.__setstate__(state)
            if not _is_plain(trial) or trial.itemsize != inst.itemsize:
                raise _Refused(
                    f"the pickle sets numpy dtype {inst!r} to {trial!r}; CIFAR-10 files hold plain numbers only"
                )
        else:
            raise _Refused(f"the pickle sets the state of a {type(inst).__name__}, which no CIFAR-10 file does")
        self.stack.pop()
        inst.__setstate__(state)

    def _bytearray8(self):
        """BYTEARRAY8: read the bytes before making the bytearray (Python's own allocates first)."""
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)  # no more than the file holds
        if len(data) != size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(data))


class _NdarrayToken:
    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


def _counted(handler):
    def run(unpickler):
        unpickler.ops_left -= 1
        if unpickler.ops_left < 0:
            raise _Refused(f"the pickle runs more than {PICKLE_MAX_OPS} operations, far more than a CIFAR-10 batch")
        handler(unpickler)

    return run


_Unpickler.dispatch = {
    op: _counted({pickle.BUILD[0]: _Unpickler._build, pickle.BYTEARRAY8[0]: _Unpickler._bytearray8}.get(op, handler))
    for op, handler in pickle._Unpickler.dispatch.items()
}


def load_pickle(raw: bytes, where: str):
    """Unpickle a CIFAR python-version file without letting it call or allocate anything unexpected."""
    try:
        return _Unpickler(raw).load()
    except _Refused as exc:
        raise DatasetError(f"{where}: refused to load: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{where}: corrupt or truncated pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error, OverflowError) as exc:
        raise DatasetError(f"{where}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from None


def _python_labels(labels, n: int, where: str) -> np.ndarray:
    # Checked before np.asarray: a list of n references to one long string would
    # become an (n,) array of that string's width, gigabytes from a small file.
    if isinstance(labels, list) and len(labels) == n and all(type(v) is int for v in labels):
        bad = next((row for row, v in enumerate(labels) if not 0 <= v <= 9), None)  # before int64 overflows
        if bad is not None:
            raise DatasetError(f"{where}: label {labels[bad]} at row {bad} is not a class 0..9")
        return np.array(labels, np.int64)
    if isinstance(labels, np.ndarray) and labels.shape == (n,) and labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    got = f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
    if isinstance(labels, list):
        got = f"a list of {len(labels)}" + ("" if len(labels) != n else " with non-integers")
    raise DatasetError(f"{where}: 'labels' should be {n} integers, found {got}")


def _python_batch(raw, where):
    batch = load_pickle(raw, where)
    if not isinstance(batch, dict):
        raise DatasetError(f"{where}: expected a dict of 'data' and 'labels', found {type(batch).__name__}")
    batch = _str_keys(batch)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{where}: 'data' should be a uint8 array of N x 3072 pixels, found {got}")
    return _checked(data, _python_labels(labels, len(data), where), where)


def _binary_batch(raw, where):
    if len(raw) == 0 or len(raw) % RECORD:
        raise DatasetError(
            f"{where}: truncated or corrupt: {len(raw)} bytes is not a whole number of 3073-byte records"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    return _checked(records[:, 1:], records[:, 0].astype(np.int64), where)


def _checked(data, labels, where):
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise DatasetError(f"{where}: label {labels[bad[0]]} at row {bad[0]} is not a class 0..9")
    return data, labels


def _str_keys(pickled: dict) -> dict:
    """Keys as str: b'data' too, as a pickle loaded with encoding='bytes' and saved again has them."""
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in pickled.items()}


def _python_names(raw, where):
    meta = load_pickle(raw, where)
    names = _str_keys(meta).get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (str, bytes)) for n in names):
        raise DatasetError(f"{where}: expected 'label_names' with 10 class names")
    try:
        return tuple(n.decode() if isinstance(n, bytes) else n for n in names)
    except UnicodeDecodeError:
        raise DatasetError(f"{where}: the class names in 'label_names' are not UTF-8 text") from None


def _binary_names(raw, where):
    names = tuple(line.strip() for line in bytes(raw).decode("ascii", errors="replace").splitlines() if line.strip())
    if len(names) != 10:
        raise DatasetError(f"{where}: expected 10 class names, one per line, found {len(names)}")
    return names


class Version(NamedTuple):
    inner: str  # the folder in the archive
    archive: str
    suffix: str  # of the batch files
    meta: str  # the class names' file
    read_batch: Callable  # (raw bytes, where) -> (data (n, 3072) uint8, labels (n,) int64)
    read_names: Callable  # (raw bytes, where) -> 10 class names
    batch_bytes: int  # the most a published batch file holds

    def limits(self) -> dict[str, int]:
        """{file name in ``inner``: the most bytes it may have}, for every file the loader reads."""
        batches = {name + self.suffix: self.batch_bytes for name in (*TRAIN, TEST)}
        return {**batches, self.meta: META_BYTES}


VERSIONS = {
    "binary": Version(
        "cifar-10-batches-bin",
        "cifar-10-binary.tar.gz",
        ".bin",
        "batches.meta.txt",
        _binary_batch,
        _binary_names,
        BINARY_BATCH_BYTES,
    ),
    "python": Version(
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        "",
        "batches.meta",
        _python_batch,
        _python_names,
        PICKLE_BATCH_BYTES,
    ),
}


def _too_large(where: str, size: int, limit: int) -> DatasetError:
    return DatasetError(
        f"{where}: {size} bytes, more than the {limit} bytes the published file can hold; refusing to read it"
    )


def _from_folder(folder: Path, limits: dict[str, int]):
    def read(name):
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{folder}: missing {name}")
        size = path.stat().st_size
        if size > limits[name]:
            raise _too_large(str(path), size, limits[name])
        with open(path, "rb") as f:
            raw = f.read(size + 1)  # one more byte than stat said, never more than the limit + 1
        if len(raw) > limits[name]:
            raise _too_large(str(path), len(raw), limits[name])
        return raw, str(path)

    return read


class _CappedReads:
    """The archive's inflated stream as tarfile sees it: no single read over _TAR_READ_CAP bytes.

    tarfile reads a GNU long-name or pax header's data (whatever size that header
    declares) in one call, before the member is handed to us; member data is read
    below in _CHUNK pieces, so only a hostile header meets the cap.
    """

    def __init__(self, stream, archive: Path):
        self.stream, self.archive = stream, archive

    def read(self, size=-1):
        if size is None or size < 0 or size > _TAR_READ_CAP:
            raise DatasetError(
                f"{self.archive}: a tar header at byte {self.stream.tell()} asks to read {size} bytes at once "
                "(a long name or pax header; the published archive has none); refusing to read it"
            )
        return self.stream.read(size)

    def seek(self, offset, whence=io.SEEK_SET):
        return self.stream.seek(offset, whence)  # forward seeks inflate and discard, piece by piece

    def tell(self):
        return self.stream.tell()


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytearray:
    data = bytearray(member.size)  # its size was checked against the published one
    view, done = memoryview(data), 0
    with tar.extractfile(member) as f:
        while done < member.size:
            got = f.readinto(view[done : done + _CHUNK])
            if not got:
                raise EOFError(f"member {member.name} ends after {done} of its {member.size} bytes")
            done += got
    return data


def _from_archive(archive: Path, inner: str, limits: dict[str, int]):
    """Read the expected members straight from the .tar.gz: nothing is extracted to disk."""
    members = {}
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            tar = tarfile.TarFile(fileobj=_CappedReads(stream, archive), mode="r")
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise DatasetError(
                        f"{archive}: more than {MAX_MEMBERS} entries, the published archive has 9; refusing to read on"
                    )
                folder, _, name = member.name.partition("/")
                if folder != inner or name not in limits or not member.isfile():
                    continue  # skipped unread: tarfile moves past it piece by piece
                where = f"{archive}:{member.name}"
                if name in members:
                    raise DatasetError(f"{where}: appears twice in the archive")
                if member.size > limits[name]:
                    raise _too_large(where, member.size, limits[name])
                members[name] = _read_member(tar, member)
                if len(members) == len(limits):
                    break  # all there: nothing after it is read
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{archive}: corrupt or truncated archive ({exc})") from None

    def read(name):
        if name not in members:
            raise DatasetError(f"{archive}: no member {inner}/{name}")
        return members[name], f"{archive}:{inner}/{name}"

    return read


def locate(folder: Path):
    """(version, reader) for the first CIFAR-10 layout found in ``folder``."""
    for version, spec in VERSIONS.items():
        if (folder / spec.inner).is_dir():
            return version, _from_folder(folder / spec.inner, spec.limits())
        if (folder / f"data_batch_1{spec.suffix}").is_file():
            return version, _from_folder(folder, spec.limits())
    for version, spec in VERSIONS.items():
        if (folder / spec.archive).is_file():
            return version, _from_archive(folder / spec.archive, spec.inner, spec.limits())
    raise DatasetError(
        f"{folder}: no CIFAR-10 files (looked for cifar-10-batches-bin/, cifar-10-batches-py/ "
        "and their .tar.gz archives)"
    )


def read_cifar10(folder: Path):
    """(X_train, y_train, X_test, y_test, class_names); X uint8 (n, 3072) in channel-major order."""
    version, read = locate(folder)
    spec = VERSIONS[version]
    train = [spec.read_batch(*read(name + spec.suffix)) for name in TRAIN]
    X_test, y_test = spec.read_batch(*read(TEST + spec.suffix))
    names = spec.read_names(*read(spec.meta))
    X_train = np.concatenate([X for X, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return X_train, y_train, X_test, y_test, names
