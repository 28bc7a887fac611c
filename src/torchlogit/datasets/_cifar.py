"""CIFAR-10 in both published versions, from folders or straight from the archives.

Binary version (``cifar-10-batches-bin/``): ``data_batch_{1..5}.bin`` and
``test_batch.bin``, each a sequence of 3073-byte records (1 label byte, then
1024 red, 1024 green, 1024 blue pixel bytes, rows top to bottom), and
``batches.meta.txt`` with one class name per line.

Python version (``cifar-10-batches-py/``): the same batches without suffix,
each a pickled dict {'data': uint8 (N, 3072), 'labels': [N ints], ...}, and
``batches.meta`` with 'label_names'. Pickles can run code when loaded, so
they go through an unpickler that admits only what these files contain:
dicts, lists, strings, numbers and numpy arrays. Anything else is refused
before it is called.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ._registry import DatasetError

RECORD = 1 + 3072
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"


def _numpy_globals():
    from numpy._core import multiarray, numeric

    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,  # pickles written by numpy 1.x
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,  # and by numpy 2.x
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,  # protocol 5
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
    }


class _RestrictedUnpickler(pickle.Unpickler):
    allowed = None

    def find_class(self, module, name):
        allowed = self.allowed or _numpy_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return allowed[(module, name)]


def load_pickle(raw: bytes, where: str):
    """Unpickle a CIFAR python-version file without letting it call anything unexpected."""
    try:
        # latin1: the files were written by Python 2, whose str holds the array bytes
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refused global"):
            raise DatasetError(
                f"{where}: refused to load: the pickle asks for {str(exc)[15:]}, which no CIFAR-10 "
                "file contains (the file may be malicious)"
            ) from None
        raise DatasetError(f"{where}: corrupt or truncated pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise DatasetError(f"{where}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from None


def _python_batch(raw, where):
    batch = load_pickle(raw, where)
    if not isinstance(batch, dict):
        raise DatasetError(f"{where}: expected a dict of 'data' and 'labels', found {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{where}: 'data' should be a uint8 array of N x 3072 pixels, found {got}")
    labels = np.asarray(labels)
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DatasetError(f"{where}: 'labels' should be {len(data)} integers, found {labels.dtype} {labels.shape}")
    return _checked(data, labels.astype(np.int64), where)


def _binary_batch(raw, where):
    if len(raw) == 0 or len(raw) % RECORD:
        raise DatasetError(f"{where}: truncated or corrupt: {len(raw)} bytes is not a whole number of 3073-byte records")
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    return _checked(records[:, 1:], records[:, 0].astype(np.int64), where)


def _checked(data, labels, where):
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise DatasetError(f"{where}: label {labels[bad[0]]} at row {bad[0]} is not a class 0..9")
    return data, labels


def _python_names(raw, where):
    meta = load_pickle(raw, where)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10:
        raise DatasetError(f"{where}: expected 'label_names' with 10 class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _binary_names(raw, where):
    names = tuple(line.strip() for line in raw.decode("ascii", errors="replace").splitlines() if line.strip())
    if len(names) != 10:
        raise DatasetError(f"{where}: expected 10 class names, one per line, found {len(names)}")
    return names


VERSIONS = {  # version -> (folder in the archive, archive, file suffix, meta file, batch reader, names reader)
    "binary": ("cifar-10-batches-bin", "cifar-10-binary.tar.gz", ".bin", "batches.meta.txt", _binary_batch, _binary_names),
    "python": ("cifar-10-batches-py", "cifar-10-python.tar.gz", "", "batches.meta", _python_batch, _python_names),
}  # fmt: skip


def _from_folder(folder: Path):
    def read(name):
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{folder}: missing {name}")
        return path.read_bytes(), str(path)

    return read


def _from_archive(archive: Path, inner: str):
    """Read members straight from the .tar.gz: nothing is extracted to disk."""
    members = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 2 and parts[0] == inner:
                    members[parts[1]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"{archive}: corrupt or truncated archive ({exc})") from None

    def read(name):
        if name not in members:
            raise DatasetError(f"{archive}: no member {inner}/{name}")
        return members[name], f"{archive}:{inner}/{name}"

    return read


def locate(folder: Path):
    """(version, reader) for the first CIFAR-10 layout found in ``folder``."""
    for version, (inner, _, suffix, *_rest) in VERSIONS.items():
        if (folder / inner).is_dir():
            return version, _from_folder(folder / inner)
        if (folder / f"data_batch_1{suffix}").is_file():
            return version, _from_folder(folder)
    for version, (inner, archive, *_rest) in VERSIONS.items():
        if (folder / archive).is_file():
            return version, _from_archive(folder / archive, inner)
    raise DatasetError(
        f"{folder}: no CIFAR-10 files (looked for cifar-10-batches-bin/, cifar-10-batches-py/ "
        "and their .tar.gz archives)"
    )


def read_cifar10(folder: Path):
    """(X_train, y_train, X_test, y_test, class_names); X uint8 (n, 3072) in channel-major order."""
    version, read = locate(folder)
    _, _, suffix, meta, read_batch, read_names = VERSIONS[version]
    train = [read_batch(*read(name + suffix)) for name in TRAIN]
    X_test, y_test = read_batch(*read(TEST + suffix))
    names = read_names(*read(meta))
    X_train = np.concatenate([X for X, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return X_train, y_train, X_test, y_test, names
