"""`torchlogit plot`: pictures of a saved model on a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from .. import load
from .. import plotting
from ..data import read_table
from ._common import fail, features_for_model, frame, out


def plot(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model saved by `torchlogit train`."),
    data: str = typer.Argument(..., help="CSV/Parquet file or built-in data set."),
    target: str = typer.Option(None, help="Target column."),
    kind: str = typer.Option("probability", help="probability, roc, calibration, confusion or loss."),
    out_file: Path = typer.Option(..., "--out", help="PNG file to write."),
):
    """Draw the probability curve, ROC, reliability diagram, confusion matrix or loss curve.

    Example: torchlogit plot hours.safetensors hours --kind probability --out pass.png
    """
    if kind not in plotting.KINDS:
        fail(f"unknown --kind {kind!r}; choose one of {', '.join(plotting.KINDS)}")
    model = load(model_path)
    if kind == "loss":
        fig = plotting.loss_curve(model)
    else:
        table = read_table(data, target)
        X, y = features_for_model(model, table), table.target_values()
        if kind == "probability":
            if model.n_features_in_ != 1 or len(model.classes_) != 2:
                fail("--kind probability needs a binary model with one feature; try --kind roc or calibration")
            name = str(getattr(model, "feature_names_in_", ["x"])[0])
            x = np.asarray(X, dtype=float).ravel()

            def p_class1(grid):  # a one-column input, named when the model knows its feature name
                column = np.asarray(grid, dtype=float)[:, None]
                named = hasattr(model, "feature_names_in_")
                return model.predict_proba(frame(column, [name]) if named else column)[:, 1]

            fig = plotting.probability_curve(
                p_class1, x, (np.asarray(y) == model.classes_[1]).astype(int),
                x_max=max(10.0, float(x.max()) * 1.1), xlabel=name.capitalize(),
            )  # fmt: skip
        else:
            fig = getattr(plotting, kind)(model, X, y)
    plotting.save_figure(fig, out_file)
    out.print(f"wrote {out_file}")
