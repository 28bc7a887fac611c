"""`torchlogit summary`: standard errors, p-values and intervals of a saved model on its data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from ..data import read_table
from ._common import as_list, features_for_model, load_classifier, out


def summary(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model saved by `torchlogit train`."),
    data: str = typer.Argument(
        ...,
        help="The data for inference (normally the training data): CSV/Parquet, svmlight/libsvm (.svm) or built-in.",
    ),
    target: str = typer.Option(None, help="Target column."),
    cov_type: str = typer.Option("nonrobust", "--cov-type", help="nonrobust, HC0 or HC1 (sandwich)."),
    baseline: str = typer.Option(
        "first", help="Multinomial: reference class ('first', a class label, or 'none' for all classes)."
    ),
    alpha: float = typer.Option(0.05, help="1 - confidence level of the intervals."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """A statsmodels-style table: coefficients, standard errors, z, p-values, intervals, log-likelihoods.

    Example: torchlogit summary bc.safetensors breast-cancer --cov-type HC0
    """
    model = load_classifier(model_path, "summary")
    table = read_table(data, target)
    y = table.target_values()
    X = features_for_model(model, table)
    base = None if baseline.lower() == "none" else _label(baseline, model.classes_)
    result = model.summary(X, y, cov_type=cov_type, baseline=base)
    if not as_json:
        out.print(str(result), highlight=False, markup=False)
        return
    ci = result.conf_int(alpha)
    print(
        json.dumps(
            {
                "names": result.names,
                "equations": as_list(result.equations),
                "baseline": as_list([result.baseline])[0],
                "params": result.params.tolist(),
                "bse": result.bse.tolist(),
                "zvalues": result.zvalues.tolist(),
                "pvalues": result.pvalues.tolist(),
                "conf_int": {"alpha": alpha, "lower": ci[..., 0].tolist(), "upper": ci[..., 1].tolist()},
                "llf": result.llf,
                "llnull": result.llnull,
                "prsquared": result.prsquared,
                "aic": result.aic,
                "bic": result.bic,
                "nobs": result.nobs,
                "df_resid": result.df_resid,
                "cov_type": result.cov_type,
                "penalized": result.penalized,
                "notes": result.notes,
            },
            indent=2,
        )
    )


def _label(text, classes):
    """The class label spelled ``text`` ('first' passes through), typed like ``classes``."""
    if text == "first":
        return text
    for c in classes:
        if str(c) == text:
            return c.item() if isinstance(c, np.generic) else c
    raise ValueError(f"--baseline {text!r} is not a class of the model ({', '.join(map(str, classes))})")
