"""What each data set is: its files, their published checksums, its mirrors and classes.

One table for the loaders, ``datasets download`` and ``datasets info``. Sizes
and md5 sums are the publishers' (MNIST: LeCun, Cortes and Burges; Fashion-MNIST:
Zalando Research; CIFAR-10: Krizhevsky, cs.toronto.edu/~kriz/cifar.html).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..data import DataError


class DatasetError(DataError):
    """A data-set file that is missing, truncated, corrupt or not what its name says."""


class DownloadError(OSError):
    """A download that could not be completed (network, server, or checksum)."""


@dataclass(frozen=True)
class KnownFile:
    name: str  # path relative to the data set's folder
    md5: str
    size: int | None = None  # bytes, where the publisher gives it


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]  # (H, W) grey or (C, H, W) colour, the order of the stored bytes
    n_train: int
    n_test: int
    mirrors: tuple[str, ...]  # base URLs, tried in order
    downloads: tuple[KnownFile, ...]  # what `datasets download` fetches
    extracted: tuple[KnownFile, ...] = ()  # other published files `datasets info` can verify


_MNIST_FILES = (
    KnownFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    KnownFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881),
    KnownFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877),
    KnownFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542),
)
_FASHION_FILES = (
    KnownFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
    KnownFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515),
    KnownFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102),
    KnownFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148),
)
_CIFAR_PY = "cifar-10-batches-py/"

SPECS = {
    "mnist": Spec(
        "mnist",
        "MNIST handwritten digits",
        tuple("0123456789"),
        (28, 28),
        60000,
        10000,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        downloads=_MNIST_FILES,
    ),
    "fashion-mnist": Spec(
        "fashion-mnist",
        "Fashion-MNIST (Zalando article images)",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (28, 28),
        60000,
        10000,
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        downloads=_FASHION_FILES,
    ),
    "cifar10": Spec(
        "cifar10",
        "CIFAR-10 tiny images",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (3, 32, 32),
        50000,
        10000,
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        # The binary version: reading it involves no pickle at all.
        downloads=(KnownFile("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", 170052171),),
        extracted=(
            KnownFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170498071),
            KnownFile(_CIFAR_PY + "data_batch_1", "c99cafc152244af753f735de768cd75f"),
            KnownFile(_CIFAR_PY + "data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            KnownFile(_CIFAR_PY + "data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            KnownFile(_CIFAR_PY + "data_batch_4", "634d18415352ddfa80567beed471001a"),
            KnownFile(_CIFAR_PY + "data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            KnownFile(_CIFAR_PY + "test_batch", "40351d587109b95175f43aff81a1287e"),
            KnownFile(_CIFAR_PY + "batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
    ),
}


def get_spec(name: str) -> Spec:
    key = name.lower().replace("_", "-")
    key = {"cifar-10": "cifar10", "fashion": "fashion-mnist", "fashionmnist": "fashion-mnist"}.get(key, key)
    if key not in SPECS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(SPECS)}")
    return SPECS[key]


def dataset_folder(spec: Spec, path) -> Path:
    """The folder holding ``spec``'s files: ``path/<name>`` when it exists, else ``path`` itself.

    So ``--data-dir data`` (as written by ``datasets download --dir data``) and
    ``--data-dir data/mnist`` both work.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such folder")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder")
    return path / spec.name if (path / spec.name).is_dir() else path


def md5sum(path, chunk=1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
