"""`datasets download|info`, `train mnist`, and the image plots, on small files in the published formats."""

import dataclasses
import gzip
import hashlib
import itertools

import numpy as np
import pytest
from dataset_files import (
    cifar_batches,
    cifar_files,
    huge_array_pickle,
    idx_bytes,
    idx_header,
    tar_end,
    tar_entries,
    tar_entry,
    write_cifar,
    write_gzip,
    zeros,
)
from test_cli import png_size, run

from torchlogit import datasets, load
from torchlogit.datasets._registry import KnownFile


def write_learnable_mnist(folder, n_train=300, n_test=60, seed=0):
    """Digit c lights rows 2c..2c+3 of the 28x28 picture, plus noise: a linear model learns it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4 : 2 * c + 8, 4:24] = 250
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))


def test_train_mnist_reports_test_accuracy_and_plots(tmp_path, capsys):
    write_learnable_mnist(tmp_path / "mnist")
    model = tmp_path / "m.safetensors"
    code, out, err = run(capsys, "train", "mnist", "--data-dir", str(tmp_path), "--model-out", str(model))
    assert code == 0, err
    assert "converged" in out and "test accuracy 1.0000 on 60 mnist test images" in out
    assert load(model).coef_.shape == (10, 784)
    sizes = {}
    for kind in ("weights", "samples", "confusion", "roc"):
        png = tmp_path / f"{kind}.png"
        code, _, err = run(
            capsys, "plot", str(model), "mnist", "--data-dir", str(tmp_path), "--kind", kind, "--out", str(png)
        )
        assert code == 0, err
        sizes[kind] = png_size(png)
    assert sizes["weights"][0] > sizes["weights"][1]  # 2 rows of 5 templates
    assert sizes["samples"][0] > 1000  # 8 columns of pictures


def test_train_mnist_with_sgd_runs_the_epochs(tmp_path, capsys):
    write_learnable_mnist(tmp_path)
    code, out, err = run(
        capsys,
        "train",
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--solver",
        "sgd",
        "--epochs",
        "3",
        "--learning-rate",
        "0.5",
        "--random-state",
        "0",
    )
    assert code == 0, err
    assert "solver sgd: 3 iterations" in out and "model not saved" in out
    assert float(out.split("test accuracy ")[1].split()[0]) > 0.9


def test_cifar10_weights_are_colour_pictures(tmp_path, capsys):
    batches = cifar_batches(n_per_batch=20, n_test=10)
    write_cifar(tmp_path / "cifar10", "binary", batches, archive=True)
    model = tmp_path / "c.safetensors"
    code, out, err = run(capsys, "train", "cifar10", "--data-dir", str(tmp_path), "--model-out", str(model))
    assert code == 0 and "on 10 cifar10 test images" in out, err
    for kind in ("weights", "samples"):
        code, _, err = run(
            capsys,
            "plot",
            str(model),
            "cifar10",
            "--data-dir",
            str(tmp_path),
            "--kind",
            kind,
            "--out",
            str(tmp_path / f"{kind}.png"),
        )
        assert code == 0, err
    code, _, err = run(
        capsys,
        "plot",
        str(model),
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--kind",
        "weights",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert code == 3 and "missing train-images-idx3-ubyte.gz" in err


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "mnist"], 3, "mnist is an image data set: give --data-dir DIR"),
        (["train", "cifar10", "--data-dir", "{tmp}/nowhere"], 3, "nowhere: no such folder"),
        (["datasets", "info", "{tmp}"], 3, "no MNIST, Fashion-MNIST or CIFAR-10 files found"),
        (["datasets", "download", "svhn"], 1, "unknown data set 'svhn'"),
    ],
)
def test_dataset_errors_are_one_line(tmp_path, capsys, args, code, message):
    got, out, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert got == code and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def hostile_mnist(tmp):
    write_learnable_mnist(tmp / "mnist")
    labels = tmp / "mnist" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_header((70000,)) + bytes(70000)))  # 10000 more than published
    return labels, "more than the published train-labels-idx1-ubyte (60000 uint8, 60000 bytes)"


def hostile_cifar_pickle(tmp):
    write_cifar(tmp / "cifar10", "python", cifar_batches())
    path = tmp / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(huge_array_pickle(2**28))  # 70 bytes asking numpy for 824 GB
    return path, "refused to load: the pickle asks for a 268435456x3072 uint8 array"


def hostile_cifar_archive(tmp):
    (tmp / "cifar10").mkdir()
    files = cifar_files("binary", cifar_batches())
    del files["cifar-10-batches-bin/test_batch.bin"]
    write_gzip(
        tmp / "cifar10" / "cifar-10-binary.tar.gz",
        itertools.chain(
            tar_entries(files),
            tar_entry("cifar-10-batches-bin/test_batch.bin", 800_000_000, zeros(1 << 20)),
            tar_end(),
        ),
    )
    return "cifar-10-binary.tar.gz:cifar-10-batches-bin/test_batch.bin", "800000000 bytes, more than the 30730000"


@pytest.mark.parametrize("write", [hostile_mnist, hostile_cifar_pickle, hostile_cifar_archive])
def test_hostile_data_files_are_refused_with_one_line(tmp_path, capsys, write):
    where, message = write(tmp_path)
    name = "mnist" if write is hostile_mnist else "cifar10"
    code, _, err = run(capsys, "train", name, "--data-dir", str(tmp_path))
    assert code == 3 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(where) in err and message in err


def small_spec(monkeypatch, mirrors):
    """Replace mnist's registry entry with two tiny files served from ``mirrors``."""
    files = {"a.bin": b"a" * 1000, "b.bin": b"b" * 500}
    known = tuple(KnownFile(n, hashlib.md5(d).hexdigest(), len(d)) for n, d in files.items())
    spec = dataclasses.replace(datasets.SPECS["mnist"], downloads=known, mirrors=tuple(mirrors))
    monkeypatch.setitem(datasets.SPECS, "mnist", spec)
    return files


def test_download_offline_fails_with_one_line_and_exit_6(tmp_path, capsys, monkeypatch):
    small_spec(monkeypatch, ["http://127.0.0.1:9/"])  # the discard port: nothing listens
    code, _, err = run(capsys, "datasets", "download", "mnist", "--dir", str(tmp_path / "d"))
    assert code == 6 and "cannot download a.bin: no mirror reachable" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_download_keeps_correct_files_and_info_checks_them(tmp_path, capsys, monkeypatch):
    files = small_spec(monkeypatch, ["http://127.0.0.1:9/"])
    (tmp_path / "mnist").mkdir()
    for name, data in files.items():
        (tmp_path / "mnist" / name).write_bytes(data)
    code, out, err = run(capsys, "datasets", "download", "mnist", "--dir", str(tmp_path))
    assert code == 0 and "2 files" in out and "md5 verified" in out, err  # no network needed
    code, out, _ = run(capsys, "datasets", "info", str(tmp_path))
    assert code == 0 and out.count("ok ") == 2 and hashlib.md5(files["a.bin"]).hexdigest() in out
    (tmp_path / "mnist" / "b.bin").write_bytes(b"c" * 500)
    code, out, err = run(capsys, "datasets", "info", str(tmp_path))
    assert code == 3 and "md5 mismatch  mnist/b.bin" in out and "1 file(s) missing or not matching" in err
