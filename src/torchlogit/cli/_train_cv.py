"""`torchlogit train --cv K`: C (and the elastic-net mix) chosen by cross-validation, the refit saved.

The model file holds the refitted LogisticRegression (the format stores
LogisticRegression only); the cross-validation table that `plot --kind cv`
draws goes next to it as MODEL.cv.json: recomputing it in `plot` would mean
fitting every fold again, and the file is a few kilobytes.
"""

from __future__ import annotations

import json
import time

import numpy as np

from .. import LogisticRegressionCV
from .._atomic import atomic_write_bytes
from .._cv import cv_table
from .._io import ModelFileError
from ..metrics import evaluate
from ._common import convergence_record, image_set, load_xy, out, output_path


def cv_json_path(model_path):
    """bc.safetensors -> bc.cv.json: where train --cv writes its table and plot --kind cv reads it."""
    return model_path.with_suffix(".cv.json")


CV_TABLE_KEYS = ("C", "mean", "sem", "chosen_C", "l1_ratio", "min_C", "one_se_C", "n_folds")


def read_cv_table(model_path):
    """The table train --cv wrote next to ``model_path``, or None when there is none (ModelFileError: unreadable)."""
    path = cv_json_path(model_path)
    if not path.is_file():
        return None
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable cross-validation table ({exc})") from None
    missing = [key for key in CV_TABLE_KEYS if not isinstance(table, dict) or key not in table]
    if missing:
        raise ModelFileError(f"{path}: not a cross-validation table of train --cv (no {', '.join(missing)})")
    number = (int, float)
    columns = [table[key] for key in ("C", "mean", "sem")]
    if not (
        all(isinstance(c, list) and c and len(c) == len(columns[0]) for c in columns)
        and all(type(v) in number for c in columns for v in c)
        and all(type(table[key]) in number for key in CV_TABLE_KEYS[3:])
    ):
        raise ModelFileError(f"{path}: not a cross-validation table of train --cv (a field has the wrong type)")
    return table


def _ratios(text, penalty):
    """l1_ratios for LogisticRegressionCV from --l1-ratios and --penalty (l2 by default, l1 is (1,))."""
    kind = (penalty or "l2").lower()
    if text is not None:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--l1-ratios must be numbers separated by commas, got {text!r}") from None
        if not values or any(not 0 <= v <= 1 for v in values):  # also NaN
            raise ValueError(f"--l1-ratios must be numbers between 0 and 1, got {text!r}")
        if kind not in ("elasticnet", "l2") or (kind == "l2" and penalty is not None):
            raise ValueError(f"--l1-ratios chooses an elastic-net mix; it contradicts --penalty {kind}")
        return tuple(values)
    if kind not in ("l2", "l1", "elasticnet"):
        raise ValueError(f"--cv chooses C for --penalty l2, l1 or elasticnet (with --l1-ratios), not {penalty!r}")
    if kind == "elasticnet":
        raise ValueError("--penalty elasticnet --cv needs --l1-ratios R1,R2,... (the mixes to choose from)")
    return (1.0,) if kind == "l1" else (0.0,)


def train_cv(
    data, target, features, data_dir, model_out, penalty, solver, max_iter, tol, device, one_hot, cv, Cs, l1_ratios,
    selection,
):  # fmt: skip
    """Fit LogisticRegressionCV, print the choice and its CV score, save the refit (and MODEL.cv.json)."""
    if cv < 2:
        raise ValueError(f"--cv must be at least 2 folds, got {cv}")
    if Cs < 1:
        raise ValueError(f"--Cs must be at least 1, got {Cs}")
    if selection not in ("min", "1se"):
        raise ValueError(f"--selection must be min or 1se, got {selection!r}")
    if solver == "sgd":
        raise ValueError("--cv needs an exact solver (auto, lbfgs, newton, prox-newton): a path point must be optimal")
    ratios = _ratios(l1_ratios, penalty)
    output_path(model_out)
    table_path = output_path(None if model_out is None else cv_json_path(model_out))
    if image_set(data, data_dir) is not None:
        raise ValueError(f"--cv fits tables; {data} is an image data set")
    names = [f.strip() for f in features.split(",")] if features else None
    X, y, _ = load_xy(data, target, names, one_hot=one_hot)
    model = LogisticRegressionCV(
        Cs=Cs,
        cv=cv,
        l1_ratios=ratios,
        scoring="neg_log_loss",
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        selection=selection,
        use_legacy_attributes=False,
        device=device,
    )
    start = time.perf_counter()
    with convergence_record() as warnings_:
        model.fit(X, y)
    elapsed = time.perf_counter() - start
    table = cv_table(model)
    best = model.best_estimator()
    i = table["C"].index(table["chosen_C"])
    mix = f", l1_ratio {table['l1_ratio']:g}" if len(ratios) > 1 else ""
    rule = "one-standard-error rule" if selection == "1se" else "best mean"
    fits = len(ratios) * Cs * cv + 1
    status = "NOT converged: " + warnings_[0] if warnings_ else "every fit converged"
    gap = np.nanmax(model.cv_results_["max_duality_gap"])
    # the certificates, for `torchlogit report` (the saved refit is a plain LogisticRegression without them)
    table["max_fold_duality_gap"] = None if np.isnan(gap) else float(gap)
    table["refit_duality_gap"] = None if model.refit_duality_gap_ is None else float(model.refit_duality_gap_)
    grid = f"{cv} folds x {Cs} C x {len(ratios)} l1_ratio"
    out.print(f"cross-validation: {grid} = {fits} fits in {elapsed:.2f} s, {status}")
    out.print(f"largest duality gap of a fold's fit {gap:.2g}; refit on all rows: {model.refit_duality_gap_:.2g}")
    out.print(
        f"chosen C {table['chosen_C']:.4g}{mix} ({rule}): CV log-loss {-table['mean'][i]:.4f} "
        f"± {table['sem'][i]:.4f} (standard error over {cv} folds)"
    )
    scores = evaluate(best, X, y)
    out.print(f"refit: train accuracy {scores['accuracy']:.4f}, log-loss {scores['log_loss']:.4f}")
    if model_out is not None:
        best.save(model_out)
        atomic_write_bytes(table_path, (json.dumps(table, indent=1) + "\n").encode())
        out.print(f"saved {model_out} and {table_path}")
    else:
        out.print("model not saved (no --model-out)")
