"""MNIST, Fashion-MNIST and CIFAR-10 from local files, without torchvision.

    from torchlogit.datasets import load
    data = load("mnist", "data")           # data/mnist/ or data/ itself
    LogisticRegression().fit(data.X_train, data.y_train).score(data.X_test, data.y_test)

Features are float32 pixels scaled to [0, 1] (``as_uint8=True`` keeps the raw
bytes), one row per image in the stored byte order: (28, 28) for the MNIST
family, (3, 32, 32) channel-major for CIFAR-10. Labels are int64 class indices.
Files come from ``torchlogit datasets download`` or any copy of the published
files; nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._cifar import read_cifar10
from ._download import FileCheck, download, verify
from ._idx import read_idx, read_split
from ._registry import SPECS, DatasetError, DownloadError, Spec, dataset_folder, get_spec


@dataclass
class ImageDataset:
    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]  # of one stored row: (H, W) or (C, H, W)
    X_train: np.ndarray  # (n_train, prod(image_shape))
    y_train: np.ndarray  # (n_train,) int64
    X_test: np.ndarray
    y_test: np.ndarray

    def images(self, X) -> np.ndarray:
        """Rows of X as pictures for plotting: (n, H, W) grey or (n, H, W, 3) colour."""
        X = np.asarray(X).reshape(-1, *self.image_shape)
        return X.transpose(0, 2, 3, 1) if len(self.image_shape) == 3 else X


def _pixels(raw: np.ndarray, as_uint8: bool) -> np.ndarray:
    # k / 255 computed in float32 is the correctly rounded float32 of the true value
    return raw.copy() if as_uint8 else np.divide(raw, 255, dtype=np.float32)


def load(name: str, path, *, as_uint8: bool = False) -> ImageDataset:
    """Read a data set's train and test splits from ``path`` (see the module docstring)."""
    spec = get_spec(name)
    folder = dataset_folder(spec, path)
    if spec.name == "cifar10":
        X_train, y_train, X_test, y_test, class_names = read_cifar10(folder)
    else:
        X_train, y_train = read_split(folder, "train", len(spec.class_names), spec.image_shape)
        X_test, y_test = read_split(folder, "t10k", len(spec.class_names), spec.image_shape)
        class_names = spec.class_names
    return ImageDataset(
        spec.name,
        tuple(class_names),
        spec.image_shape,
        _pixels(X_train, as_uint8),
        y_train,
        _pixels(X_test, as_uint8),
        y_test,
    )


def load_mnist(path, **kwargs) -> ImageDataset:
    return load("mnist", path, **kwargs)


def load_fashion_mnist(path, **kwargs) -> ImageDataset:
    return load("fashion-mnist", path, **kwargs)


def load_cifar10(path, **kwargs) -> ImageDataset:
    return load("cifar10", path, **kwargs)


__all__ = [
    "load",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "ImageDataset",
    "read_idx",
    "download",
    "verify",
    "FileCheck",
    "SPECS",
    "Spec",
    "get_spec",
    "DatasetError",
    "DownloadError",
]
