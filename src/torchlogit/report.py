"""A fitted classifier's report: one self-contained HTML page.

    html = build_report(model, X, y, model_name="bc.safetensors", data_name="breast-cancer")

The page holds the model card (data, classes, features, parameters, solver,
how the fit converged), the metrics on (X, y), the statsmodels-style table of
``model.summary`` where one applies, and the pictures of
``torchlogit.plotting``. It needs no network and runs no script: pictures
are PNG ``data:`` URIs and the style sheet is inline, so the file can be
mailed, archived or opened offline. Every string that comes from the user
(file names, feature names, class labels, parameter values, messages) goes
through ``html.escape``.

Building the page computes nothing new: numbers come from
``torchlogit.metrics.evaluate`` and ``model.summary``, pictures from the
plotting functions; this module only lays them out.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from dataclasses import dataclass

import numpy as np

from . import __version__, plotting
from ._inference import InferenceError
from .metrics import evaluate
from .penalties import from_params

MAX_SUMMARY_PARAMS = 50  # rows of the coefficient table; beyond this it is not read, and costs (K d)^2 memory
MAX_LISTED_NAMES = 30  # feature names listed in full up to this many; more: the first 20 and the last 5
MAX_CLASS_TABLE = 20  # per-class metrics and the confusion matrix as tables up to this many classes
_PARAMS_FIRST = ("C", "penalty", "l1_ratio", "solver", "fit_intercept", "tol", "max_iter", "class_weight")


@dataclass
class Picture:
    """One figure of the report: its PNG bytes (None when it cannot be drawn, ``caption`` saying why)."""

    title: str
    png: bytes | None
    caption: str = ""
    wide: bool = False  # spans the page's width (image grids, paths)


def build_report(
    model,
    X,
    y,
    *,
    model_name: str,
    data_name: str,
    metadata: dict | None = None,
    cv_table: dict | None = None,
    image_shape: tuple | None = None,
    class_names=None,
    max_summary_params: int = MAX_SUMMARY_PARAMS,
) -> str:
    """The HTML report of a fitted classifier ``model`` on data (X, y).

    ``model_name``, ``data_name``: how the page names the model file and the
    data. ``metadata``: the model file's JSON metadata
    (``torchlogit._io.read_metadata``), for the version that saved it.
    ``cv_table``: the table ``train --cv`` writes next to the model
    (MODEL.cv.json): adds the cross-validation curve and the regularisation
    path fitted on (X, y). ``image_shape``: (X, y) are images, so the weight
    templates and sample images are drawn. ``class_names``: the name of each
    label, indexed by the label (an image data set's labels are 0 .. K-1).
    """
    result = evaluate(model, X, y)
    # the model's classes by name, in classes_ order (a model may have seen fewer classes than the data set has)
    names = None if class_names is None else [str(class_names[int(c)]) for c in model.classes_]
    sections = [
        _card(model, metadata, model_name, data_name, names, image_shape, cv_table),
        _metrics(result, data_name, names),
        _summary_section(model, X, y, max_summary_params),
        _pictures(_figures(model, X, y, cv_table, image_shape, names, class_names)),
    ]
    title = f"torchlogit report: {_short(model_name)} on {_short(data_name)}"
    return _PAGE.format(
        title=_e(title),
        style=_STYLE,
        heading=_e(title),
        sub=_e(f"{type(model).__name__}, {len(result['classes'])} classes, {model.n_features_in_:,} features"),
        body="\n".join(sections),
        version=_e(__version__),
    )


# ------------------------------------------------------------------ the sections
def _card(model, metadata, model_name, data_name, class_names, image_shape, cv_table):
    labels = class_names if class_names is not None else model.classes_
    rows = [
        ("Model file", _e(model_name)),
        ("Data", _e(data_name)),
        ("Estimator", _e(type(model).__name__) + _saved_by(metadata)),
        ("Classes", _e(f"{len(labels)}: ") + _list(labels, limit=MAX_LISTED_NAMES)),
        ("Features", _features(model, image_shape)),
        ("Penalty", _e(_penalty_text(model))),
        ("Parameters", _params(model, metadata)),
        ("Solver", _e(str(getattr(model, "solver_", None) or "n/a"))),
        ("Convergence", _convergence(model) + _cv_certificate(cv_table)),
        ("Coefficients", _e(_coef_text(model))),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section id="card"><h2>Model card</h2><table class="kv">{body}</table></section>'


def _metrics(result, data_name, class_names):
    auc = result["roc_auc"]
    kind = "ROC AUC" if len(result["classes"]) == 2 else "ROC AUC (macro, one-vs-rest)"
    tiles = [
        ("rows", f"{result['n_samples']:,}"),
        ("accuracy", f"{result['accuracy']:.4f}"),
        ("log-loss", f"{result['log_loss']:.4f}"),
        (kind, "n/a" if auc is None else f"{auc:.4f}"),
    ]
    parts = [
        f'<section id="metrics"><h2>Metrics on {_e(data_name)}</h2><div class="tiles">',
        *(f'<div class="tile"><div class="value">{v}</div><div class="label">{_e(k)}</div></div>' for k, v in tiles),
        "</div>",
    ]
    labels = class_names or [str(c) for c in result["classes"]]
    if auc is None:
        parts.append('<p class="note">ROC AUC is not defined here: the data lacks some of the classes.</p>')
    if len(labels) <= MAX_CLASS_TABLE:
        rows = "".join(
            f"<tr><th>{_e(name)}</th><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td>"
            f"<td>{r['f1']:.3f}</td><td>{r['support']:,}</td></tr>"
            for name, r in zip(labels, result["per_class"])
        )
        parts.append(
            '<div class="pair"><table class="grid"><caption>Per class</caption>'
            "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
            f"{rows}</table>"
        )
        head = "".join(f"<th>{_e(name)}</th>" for name in labels)
        cells = "".join(
            f"<tr><th>{_e(name)}</th>" + "".join(f"<td>{v:,}</td>" for v in counts) + "</tr>"
            for name, counts in zip(labels, result["confusion_matrix"])
        )
        parts.append(
            '<table class="grid"><caption>Confusion matrix</caption>'
            f'<tr><th class="corner">true \\ predicted</th>{head}</tr>{cells}</table></div>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def _summary_section(model, X, y, max_params):
    """The statsmodels-style table of ``model.summary(X, y)``, or one sentence saying why there is none."""
    head = '<section id="summary"><h2>Coefficients, standard errors and p-values</h2>'
    k = 1 if len(model.classes_) == 2 else len(model.classes_) - 1
    n_params = k * (model.n_features_in_ + int(model.fit_intercept))
    if n_params > max_params:
        return (
            f'{head}<p class="skip">Not shown: {n_params:,} parameters are more than a readable table holds '
            f"({max_params}); <code>torchlogit summary</code> prints them all.</p></section>"
        )
    try:
        r = model.summary(X, y)
    except InferenceError as exc:
        return f'{head}<p class="skip">Not shown: {_e(str(exc).rstrip("."))}.</p></section>'
    stats = [
        ("Model", "Logit" if r.params.ndim == 1 else "MNLogit"),
        ("Observations", f"{r.nobs:,}"),
        ("Df residuals", str(r.df_resid)),
        ("Covariance type", r.cov_type),
        ("Pseudo R² (McFadden)", f"{r.prsquared:.4f}"),
        ("Log-likelihood", f"{r.llf:#.5g}"),
        ("LL-null", f"{r.llnull:#.5g}"),
        ("AIC / BIC", f"{r.aic:#.5g} / {r.bic:#.5g}"),
    ]
    stat_cells = "".join(f'<div><span class="label">{_e(a)}</span> {_e(b)}</div>' for a, b in stats)
    ci = r.conf_int(0.05).reshape(np.atleast_2d(r.params).shape + (2,))
    params, bse, z, p = (np.atleast_2d(a) for a in (r.params, r.bse, r.zvalues, r.pvalues))
    rows = []
    for e, label in enumerate(r.equations):
        if params.shape[0] > 1:
            rows.append(
                f'<tr class="eq"><th colspan="7">class {_e(str(label))} against {_e(str(r.baseline))}</th></tr>'
            )
        for j, term in enumerate(r.names):
            rows.append(
                f"<tr><th>{_e(str(term))}</th><td>{params[e, j]:.4f}</td><td>{bse[e, j]:.3f}</td>"
                f"<td>{z[e, j]:.3f}</td><td>{p[e, j]:.3f}</td><td>{ci[e, j, 0]:.3f}</td><td>{ci[e, j, 1]:.3f}</td></tr>"
            )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in r.notes)
    return (
        f'{head}<div class="stats">{stat_cells}</div>'
        '<table class="grid coef"><tr><th></th><th>coef</th><th>std err</th><th>z</th><th>P&gt;|z|</th>'
        f"<th>[0.025</th><th>0.975]</th></tr>{''.join(rows)}</table>"
        f'<p class="note">Computed on the data above ({r.nobs:,} rows): inference about the fit when it is '
        f"the training data.</p>{notes}</section>"
    )


def _figures(model, X, y, cv_table, image_shape, class_names, label_names):
    """The pictures of ``torchlogit plot`` that apply to this model and data."""
    present = np.unique(np.asarray(y))
    pictures = []
    if len(model.classes_) == 2 and model.n_features_in_ == 1 and image_shape is None:
        fig, note = plotting.model_probability_curve(model, X, y)
        pictures.append(Picture("Probability curve", plotting.png_bytes(fig), note or "with its 95 % confidence band"))
    if len(present) >= 2:
        pictures.append(Picture("ROC curve", plotting.png_bytes(plotting.roc(model, X, y))))
    else:
        pictures.append(Picture("ROC curve", None, "not drawn: the data holds a single class"))
    pictures.append(
        Picture(
            "Calibration",
            plotting.png_bytes(plotting.calibration(model, X, y)),
            "observed frequency against predicted probability",
        )
    )
    pictures.append(
        Picture("Confusion matrix", plotting.png_bytes(plotting.confusion(model, X, y, class_names=class_names)))
    )
    if getattr(model, "loss_curve_", None):
        pictures.append(
            Picture("Training loss", plotting.png_bytes(plotting.loss_curve(model)), "objective per iteration")
        )
    if image_shape is not None:
        names = class_names or [str(c) for c in model.classes_]
        rows = names if len(model.coef_) == len(names) else names[1:]  # binary: one row, for classes_[1]
        fig = plotting.weights(model.coef_, image_shape, rows)
        pictures.append(
            Picture(
                "Weight templates", plotting.png_bytes(fig), "red raises a class's logit, blue lowers it", wide=True
            )
        )
        if label_names is not None:  # samples index the names by label value
            fig = plotting.samples(X, np.asarray(y), model.predict(X), image_shape, [str(c) for c in label_names])
            pictures.append(Picture("Sample images", plotting.png_bytes(fig), "wrong predictions in red", wide=True))
    if cv_table is not None:
        pictures.append(Picture("Cross-validation", plotting.png_bytes(plotting.cv_table_scores(cv_table)), wide=True))
        if len(present) >= 2:
            fig = plotting.model_coefficient_path(model, X, y, cv_table)
            pictures.append(
                Picture("Regularisation path", plotting.png_bytes(fig), "fitted on the data above", wide=True)
            )
    return pictures


def _pictures(pictures):
    cells = []
    for pic in pictures:
        caption = f"<figcaption><b>{_e(pic.title)}</b>{': ' + _e(pic.caption) if pic.caption else ''}</figcaption>"
        if pic.png is None:
            cells.append(f'<figure class="missing">{caption}</figure>')
            continue
        width, height = _png_size(pic.png)
        src = "data:image/png;base64," + base64.b64encode(pic.png).decode("ascii")
        cells.append(
            f'<figure class="{"wide" if pic.wide else ""}"><img src="{src}" width="{width}" height="{height}" '
            f'alt="{_e(pic.title)}">{caption}</figure>'
        )
    return f'<section id="pictures"><h2>Pictures</h2><div class="figures">{"".join(cells)}</div></section>'


# ------------------------------------------------------------------ pieces of the card
def _short(name) -> str:
    """A path's last part: the page's title names files, the card gives the paths as given."""
    return str(name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or str(name)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _list(values, limit):
    """Values as escaped text, the middle left out when there are more than ``limit``."""
    values = [str(v.item() if isinstance(v, np.generic) else v) for v in values]
    if len(values) <= limit:
        return ", ".join(_e(v) for v in values)
    head, tail = values[:20], values[-5:]
    return ", ".join(_e(v) for v in head) + ", &hellip;, " + ", ".join(_e(v) for v in tail)


def _features(model, image_shape):
    d = model.n_features_in_
    names = getattr(model, "feature_names_in_", None)
    if image_shape is not None:
        return _e(f"{d:,} pixels of {' × '.join(str(s) for s in image_shape)} images")
    if names is None:
        return _e(f"{d:,} unnamed columns (x0 … x{d - 1})" if d > 1 else "1 unnamed column")
    return _e(f"{d:,}: ") + _list(names, limit=MAX_LISTED_NAMES)


def _saved_by(metadata):
    version = (metadata or {}).get("torchlogit_version")
    return f' <span class="muted">(saved by torchlogit {_e(version)})</span>' if isinstance(version, str) else ""


def _penalty_text(model):
    penalty = from_params(model.penalty, model.C, model.l1_ratio, 1.0)
    kind = {"NoPenalty": "none", "L2": "L2", "L1": "L1", "ElasticNet": "elastic net"}.get(type(penalty).__name__)
    if kind is None:
        kind = type(penalty).__name__
    if kind == "none":
        return "none"
    ratio = f", l1_ratio {model.l1_ratio:g}" if kind == "elastic net" else ""
    return f"{kind} (C = {model.C:g}{ratio})"


def _params(model, metadata):
    stored = (metadata or {}).get("params")
    params = stored if isinstance(stored, dict) else model.get_params()
    first = [k for k in _PARAMS_FIRST if k in params]
    rest = sorted(k for k in params if k not in _PARAMS_FIRST)
    main = ", ".join(f"<code>{_e(k)}={_e(_value(params[k]))}</code>" for k in first)
    other = ", ".join(f"{_e(k)}={_e(_value(params[k]))}" for k in rest)
    return main + (f'<div class="muted small">{other}</div>' if other else "")


def _value(v):
    if isinstance(v, dict) and "__pairs__" in v:  # class_weight as stored in a model file
        v = {label: weight for label, weight in v["__pairs__"]}
    return repr(v) if isinstance(v, str) else str(v)


def _convergence(model):
    report = getattr(model, "convergence_", None)
    if report is None:
        n_iter = int(np.atleast_1d(getattr(model, "n_iter_", [0]))[0])
        objective = getattr(model, "objective_", None)
        obj = "" if objective is None else f", objective {objective:.10g}"
        return _e(f"{n_iter} iterations{obj} (the model file holds no further record of the fit)")
    status = "converged" if report.converged else "NOT converged"
    tol = "none" if report.tol is None else f"{report.tol:.3g}"
    gap = "n/a (no penalty)" if report.duality_gap is None else f"{report.duality_gap:.3g}"
    cls = "ok" if report.converged else "bad"
    return (
        f'<span class="{cls}">{_e(status)}</span>{_e(f" after {report.n_iter} iterations ({report.solver})")}'
        f"<br>max |gradient| {_e(f'{report.grad_max:.3g}')} (tol {_e(tol)}); "
        f"objective {_e(f'{report.objective:.10g}')}; duality gap {_e(gap)}"
        f'<div class="muted small">{_e(report.message)}</div>'
    )


def _cv_certificate(table):
    """What train --cv recorded about its fits' duality gaps, when the model came from it."""
    if table is None:
        return ""
    gaps = [
        f"{label} {table[key]:.3g}"
        for key, label in (("max_fold_duality_gap", "largest of a fold's fit"), ("refit_duality_gap", "refit"))
        if isinstance(table.get(key), (int, float))
    ]
    chosen = f"C = {table['chosen_C']:.4g} chosen by {table['n_folds']}-fold cross-validation"
    return f"<div>{_e(chosen)}{_e('; duality gaps: ' + ', '.join(gaps)) if gaps else ''}</div>"


def _coef_text(model):
    coef = np.asarray(model.coef_.toarray() if hasattr(model.coef_, "toarray") else model.coef_)
    nonzero = int(np.count_nonzero(coef))
    largest = float(np.abs(coef).max()) if coef.size else 0.0
    return f"{nonzero:,} of {coef.size:,} non-zero; largest |coef| {largest:.4g}" + (
        "" if math.isfinite(largest) else " (not finite)"
    )


def _png_size(png: bytes):
    """(width, height) from a PNG's IHDR chunk, so the page lays out before the images decode."""
    return struct.unpack(">II", png[16:24])


# ------------------------------------------------------------------ the page
_STYLE = """
:root { --ink: #1d2330; --muted: #5c6577; --line: #d9dee7; --band: #f4f6fa; --accent: #2b5cab; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #1f3b6e; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; word-break: break-all; }
header p { margin: 4px 0 0; color: #c9d5ee; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 32px 32px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.kv { width: 100%; }
table.kv th { text-align: left; vertical-align: top; width: 150px; color: var(--muted); font-weight: 500;
  padding: 5px 12px 5px 0; }
table.kv td { padding: 5px 0; word-break: break-word; }
table.kv tr + tr { border-top: 1px solid var(--band); }
table.grid { margin: 8px 24px 8px 0; }
table.grid caption { text-align: left; color: var(--muted); font-size: 13px; padding-bottom: 4px; }
table.grid th, table.grid td { padding: 3px 10px; border-bottom: 1px solid var(--line); }
table.grid td { text-align: right; }
table.grid th { text-align: left; font-weight: 600; background: var(--band); }
table.grid tr.eq th { background: #e6ecf7; }
table.grid th.corner { font-weight: 400; color: var(--muted); font-size: 13px; }
table.coef td { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13.5px; }
.pair { display: flex; flex-wrap: wrap; align-items: flex-start; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.tile { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 10px 18px;
  min-width: 150px; }
.tile .value { font-size: 22px; font-weight: 600; color: var(--accent); font-variant-numeric: tabular-nums; }
.tile .label, .stats .label, .muted { color: var(--muted); }
.small { font-size: 13px; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 2px 18px;
  margin-bottom: 8px; }
.note { color: var(--muted); font-size: 13.5px; margin: 6px 0; }
.skip { background: var(--band); border-left: 4px solid var(--line); padding: 8px 12px; }
.ok { color: #1d7a3a; font-weight: 600; }
.bad { color: #b3261e; font-weight: 600; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13.5px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px; background: #fff; }
figure.wide { grid-column: 1 / -1; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figure.missing { color: var(--muted); background: var(--band); }
figcaption { font-size: 13.5px; color: var(--muted); margin-top: 6px; }
figcaption b { color: var(--ink); }
footer { color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line); margin-top: 32px;
  padding-top: 8px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{heading}</h1><p>{sub}</p></header>
<main>
{body}
<footer>Written by torchlogit {version} (<code>torchlogit report</code>). One file: no network, no script.</footer>
</main>
</body>
</html>
"""
