"""`torchlogit plot`: pictures of a saved model on a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from .. import InferenceError, plotting
from ..data import read_table
from ._common import DATA_DIR_HELP, fail, features_for_model, frame, image_set, load_classifier, out, output_path

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
    """
    if kind not in plotting.KINDS:
        fail(f"unknown --kind {kind!r}; choose one of {', '.join(plotting.KINDS)}")
    output_path(out_file)
    model = load_classifier(model_path, "plot")
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
