"""`torchlogit plot`: pictures of a saved model on a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from .. import InferenceError, plotting
from .._io import ModelFileError
from ..data import read_table
from ..path import regularization_path
from ._common import DATA_DIR_HELP, fail, features_for_model, frame, image_set, load_classifier, out, output_path
from ._train_cv import cv_json_path

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
            name = str(getattr(model, "feature_names_in_", ["x"])[0])
            x = X.toarray().ravel() if hasattr(X, "toarray") else np.asarray(X, dtype=float).ravel()  # one column

            def as_input(grid):  # a one-column input, named when the model knows its feature name
                column = np.asarray(grid, dtype=float)[:, None]
                return frame(column, [name]) if hasattr(model, "feature_names_in_") else column

            band = _confidence_band(model, X, y, as_input)
            fig = plotting.probability_curve(
                lambda grid: model.predict_proba(as_input(grid))[:, 1],
                x,
                (np.asarray(y) == model.classes_[1]).astype(int),
                x_max=max(10.0, float(x.max()) * 1.1),
                xlabel=name.capitalize(),
                band=band,
            )
        else:
            fig = getattr(plotting, kind)(model, X, y)
    plotting.save_figure(fig, out_file)
    out.print(f"wrote {out_file}")


def _confidence_band(model, X, y, as_input):
    """grid -> (lower, upper) of P(class 1), from the model's summary on the plotted data; None if it has none."""
    try:
        result = model.summary(X, y)
    except InferenceError as exc:  # e.g. separated data without a penalty: draw the curve alone
        out.print(f"no confidence band: {exc}", highlight=False)
        return None

    def band(grid):
        lower, upper = result.predict_proba_ci(as_input(grid))
        return lower[:, 1], upper[:, 1]

    return band


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
    table_file = cv_json_path(model_path)
    table = None
    if table_file.is_file():
        try:
            table = json.loads(table_file.read_text())
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{table_file}: unreadable cross-validation table ({exc})") from None
    if kind == "cv":
        if table is None:
            raise ModelFileError(f"{table_file}: no cross-validation table; make the model with train --cv")
        return plotting.cv_scores(
            table["C"],
            -np.asarray(table["mean"]),
            table["sem"],
            chosen_C=table["chosen_C"],
            min_C=table["min_C"],
            one_se_C=table["one_se_C"],
            score_name="log-loss",
            greater_is_better=False,
            title=f"Choosing C: {table['n_folds']}-fold cross-validation",
        )
    rows = read_table(data, target)
    X, y = features_for_model(model, rows), rows.target_values(min_classes=2)
    Cs = table["C"] if table is not None else np.logspace(-4, 4, 20)
    ratio = float(model.l1_ratio or 0.0) if table is None else table["l1_ratio"]
    path = regularization_path(X, y, Cs=Cs, l1_ratio=ratio, gap_tol=None)
    chosen = table["chosen_C"] if table is not None else model.C
    names = getattr(model, "feature_names_in_", None)
    scale = None if hasattr(X, "nnz") else np.asarray(X, dtype=float).std(axis=0)  # features in their units
    return plotting.coefficient_path(path.Cs, path.coef, chosen_C=chosen, feature_names=names, scale=scale)
