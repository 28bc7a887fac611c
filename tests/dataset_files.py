"""Writers of small files in the exact published formats, for the loader tests."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np


def idx_header(shape, type_code=0x08) -> bytes:
    """An IDX header alone: it may declare any shape, whatever data follows."""
    return b"\0\0" + bytes([type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 0, 0, type 0x08 (uint8), ndim, big-endian uint32 sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder: Path, n_train=12, n_test=5, seed=0, gz=True):
    """The four MNIST files; returns (X_train, y_train, X_test, y_test) as uint8 arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        arrays[prefix] = (images.reshape(n, -1), labels)
    return (*arrays["train"], *arrays["t10k"])


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle (protocol 2) wrote the CIFAR-10 files.

    Python 2 str (keys, class names, the arrays' raw bytes) is stored with the
    BINSTRING opcodes, and numpy's reconstructor under its numpy 1.x name.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode())
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_batches(n_per_batch=4, n_test=3, seed=0):
    """{batch name: (data uint8 (n, 3072), labels int)} for the five train batches and the test batch."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    sizes = [n_per_batch] * 5 + [n_test]
    return {
        name: (rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), rng.integers(0, 10, size=n))
        for name, n in zip(names, sizes)
    }


def cifar_files(version, batches):
    """{relative path: bytes} of the published layout of ``version`` ('python' or 'binary')."""
    files = {}
    if version == "python":
        for name, (data, labels) in batches.items():
            batch = {
                "batch_label": f"batch {name}",
                "labels": [int(v) for v in labels],
                "data": data,
                "filenames": [f"img_{i}.png" for i in range(len(labels))],
            }
            files[f"cifar-10-batches-py/{name}"] = py2_pickle(batch)
        meta = {"num_cases_per_batch": 10000, "label_names": CIFAR_NAMES, "num_vis": 3072}
        files["cifar-10-batches-py/batches.meta"] = py2_pickle(meta)
    else:
        for name, (data, labels) in batches.items():
            records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
            files[f"cifar-10-batches-bin/{name}.bin"] = records.tobytes()
        files["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR_NAMES) + "\n\n").encode()
    return files


def write_cifar(folder: Path, version, batches, archive=False):
    """Write the files into ``folder`` (extracted) or as the published .tar.gz archive."""
    files = cifar_files(version, batches)
    folder.mkdir(parents=True, exist_ok=True)
    if not archive:
        for rel, raw in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(raw)
        return
    name = "cifar-10-python.tar.gz" if version == "python" else "cifar-10-binary.tar.gz"
    with tarfile.open(folder / name, "w:gz") as tar:
        for rel, raw in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


# Hostile files: small on disk, huge in what they declare or inflate to.


def zeros(n, piece=1 << 20):
    """``n`` zero bytes in pieces of at most ``piece``: a stream, never one big buffer."""
    block = bytes(piece)
    while n > 0:
        yield block[: min(n, piece)]
        n -= piece


def write_gzip(path: Path, pieces) -> Path:
    """Gzip the byte ``pieces`` into ``path`` as they come (100 MB of zeros makes ~100 kB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    with open(path, "wb") as f:
        for piece in pieces:
            f.write(packer.compress(piece))
        f.write(packer.flush())
    return path


def tar_entry(name, declared, pieces=(), kind=tarfile.REGTYPE):
    """One tar entry as pieces: its header declaring ``declared`` bytes, then ``pieces``, padded.

    The data may be shorter than declared (a truncated archive); padding then
    fills the 512-byte block of what is there.
    """
    info = tarfile.TarInfo(name)
    info.size, info.type = declared, kind
    yield info.tobuf(format=tarfile.GNU_FORMAT)
    written = 0
    for piece in pieces:
        written += len(piece)
        yield piece
    yield bytes(-written % tarfile.BLOCKSIZE)


def tar_entries(files: dict):
    """Well-formed entries of {name: bytes}, as cifar_files returns them."""
    for name, raw in files.items():
        yield from tar_entry(name, len(raw), [raw])


def tar_end():
    yield bytes(2 * tarfile.BLOCKSIZE)


RECONSTRUCT = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"  # protocol 2, then two globals


def huge_array_pickle(rows) -> bytes:
    """A ~70-byte pickle: numpy.core.multiarray._reconstruct(ndarray, (rows, 3072), 'B').

    numpy always pickles shape (0,) here and sets the real shape with the data;
    a bigger shape makes numpy allocate it at once.
    """
    return RECONSTRUCT + b"J" + struct.pack("<i", rows) + b"M\x00\x0c\x86U\x01B\x87R."
