"""`torchlogit plot`: pictures of a saved model on a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from .. import plotting
from .._io import ModelFileError
from ..data import read_table
from ._common import DATA_DIR_HELP, fail, features_for_model, image_set, load_classifier, out, output_path
from ._train_cv import cv_json_path, read_cv_table

IMAGE_KINDS = ("weights", "samples")


def plot(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model saved by `torchlogit train`."),
    data: str = typer.Argument(
        ...,
        help="CSV/Parquet file, svmlight/libsvm file (.svm, .libsvm), built-in table, "
        "or image data set (mnist, fashion-mnist, cifar10).",
    ),
    target: str = typer.Option(None, help="Target column."),
    kind: str = typer.Option("probability", help=", ".join(plotting.KINDS) + " (the last two for image data sets)."),
    out_file: Path = typer.Option(..., "--out", help="PNG file to write."),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
):
    """Draw a model's pictures: probability curve, ROC, reliability, confusion, loss; weights and samples for images.

    Example: torchlogit plot hours.safetensors hours --kind probability --out pass.png

    On an image data set: torchlogit plot mnist.safetensors mnist --data-dir data --kind weights --out weights.png

    After train --cv: torchlogit plot bc.safetensors breast-cancer --kind cv --out cv.png (and --kind path)
    """
    if kind not in plotting.KINDS:
        fail(f"unknown --kind {kind!r}; choose one of {', '.join(plotting.KINDS)}")
    output_path(out_file)
    model = load_classifier(model_path, "plot")
    if kind in ("path", "cv"):
        fig = _choice_plot(model, model_path, data, target, kind)
        plotting.save_figure(fig, out_file)
        out.print(f"wrote {out_file}")
        return
    images = None if kind == "loss" else image_set(data, data_dir)
    if images is None and kind in IMAGE_KINDS:
        fail(f"--kind {kind} draws images: DATA must be mnist, fashion-mnist or cifar10 (with --data-dir)")
    if kind == "loss":
        fig = plotting.loss_curve(model)
    elif images is not None:
        fig = _image_plot(model, images, kind)
    else:
        table = read_table(data, target)
        X, y = features_for_model(model, table), table.target_values()
        if kind == "probability":
            if model.n_features_in_ != 1 or len(model.classes_) != 2:
                fail("--kind probability needs a binary model with one feature; try --kind roc or calibration")
            fig, note = plotting.model_probability_curve(model, X, y)
            if note:
                out.print(note, highlight=False)
        else:
            fig = getattr(plotting, kind)(model, X, y)
    plotting.save_figure(fig, out_file)
    out.print(f"wrote {out_file}")


def _image_plot(model, images, kind):
    """Pictures of a model trained on an image data set, drawn from its test split."""
    n_pixels = int(np.prod(images.image_shape))
    if model.n_features_in_ != n_pixels:
        fail(f"the model has {model.n_features_in_} features, {images.name} images have {n_pixels} pixels")
    names = images.class_names
    if kind == "weights":
        return plotting.weights(model.coef_, images.image_shape, names)
    if kind == "samples":
        return plotting.samples(images.X_test, images.y_test, model.predict(images.X_test), images.image_shape, names)
    if kind == "confusion":
        return plotting.confusion(model, images.X_test, images.y_test, class_names=names)
    if kind == "probability":  # the default --kind: a curve over one feature, which images do not have
        fail(
            f"--kind probability needs one feature; for {images.name} "
            "use weights, samples, confusion, roc or calibration"
        )
    return getattr(plotting, kind)(model, images.X_test, images.y_test)


def _choice_plot(model, model_path, data, target, kind):
    """--kind cv: the table train --cv wrote next to the model; --kind path: the path on DATA over its C."""
    table = read_cv_table(model_path)
    if kind == "cv":
        if table is None:
            raise ModelFileError(
                f"{cv_json_path(model_path)}: no cross-validation table; make the model with train --cv"
            )
        return plotting.cv_table_scores(table)
    rows = read_table(data, target)
    X, y = features_for_model(model, rows), rows.target_values(min_classes=2)
    return plotting.model_coefficient_path(model, X, y, table)
