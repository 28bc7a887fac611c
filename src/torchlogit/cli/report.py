"""`torchlogit report`: one self-contained HTML page about a saved model on a data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from .._atomic import atomic_write_bytes
from .._io import read_metadata
from ..data import read_table
from ..report import build_report
from ._common import DATA_DIR_HELP, fail, features_for_model, image_set, load_classifier, out, output_path
from ._train_cv import read_cv_table


def report(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model saved by `torchlogit train`."),
    data: str = typer.Argument(
        ...,
        help="CSV/Parquet file, svmlight/libsvm file (.svm, .libsvm: its labels are the target), built-in table, "
        "or image data set (mnist, fashion-mnist, cifar10: its test split).",
    ),
    target: str = typer.Option(None, help="Target column."),
    out_file: Path = typer.Option(..., "--out", help="HTML file to write."),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
):
    """Write one self-contained HTML page: model card, metrics, coefficient table and pictures (no network needed).

    Example: torchlogit report bc.safetensors breast-cancer --out report.html

    After train --cv (MODEL.cv.json beside the model) the page adds the cross-validation curve and the path.
    """
    output_path(out_file)
    model = load_classifier(model_path, "report")
    metadata = read_metadata(model_path)
    cv_table = read_cv_table(model_path)
    images = image_set(data, data_dir)
    if images is not None:
        n_pixels = int(np.prod(images.image_shape))
        if model.n_features_in_ != n_pixels:
            fail(f"the model has {model.n_features_in_} features, {images.name} images have {n_pixels} pixels")
        X, y, shape, names = images.X_test, images.y_test, images.image_shape, images.class_names
        data_name = f"{images.name} test split"
    else:
        table = read_table(data, target)
        X, y, shape, names = features_for_model(model, table), table.target_values(), None, None
        data_name = data
    page = build_report(
        model,
        X,
        y,
        model_name=str(model_path),
        data_name=data_name,
        metadata=metadata,
        cv_table=cv_table,
        image_shape=shape,
        class_names=names,
    )
    atomic_write_bytes(out_file, page.encode("utf-8"))
    out.print(f"wrote {out_file}")
