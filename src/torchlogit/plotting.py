"""Pictures of a fitted model. Each function returns a matplotlib Figure;
``save_figure`` writes it atomically. No display is needed (Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics  # noqa: E402

from ._atomic import atomic_write_bytes  # noqa: E402
from ._inference import InferenceError  # noqa: E402
from .path import regularization_path  # noqa: E402

KINDS = ("probability", "roc", "calibration", "confusion", "loss", "weights", "samples", "path", "cv")


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (and closed): what ``save_figure`` writes and a report inlines."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path) -> None:
    atomic_write_bytes(path, png_bytes(fig))


def probability_curve(predict_proba, x=None, y=None, x_max=10.0, title=None, xlabel="Hours", band=None):
    """The lecture's picture: P(class 1) against the one feature, with the 0.5 line.

    ``band(grid) -> (lower, upper)``, when given, shades a confidence band.
    """
    grid = np.linspace(0.0, x_max, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    if band is not None:
        lower, upper = band(grid)
        ax.fill_between(grid, lower, upper, alpha=0.25, label="95% confidence band")
    ax.plot(grid, predict_proba(grid), label="P(pass)")
    if x is not None:
        ax.scatter(np.ravel(x), y, color="black", zorder=3, label="data")
    ax.axhline(0.5, color="red", label="0.5")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Probability of Pass")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(True)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def roc(model, X, y):
    proba = model.predict_proba(X)
    fig, ax = plt.subplots(figsize=(5, 5))
    classes = model.classes_
    targets = [(classes[1], proba[:, 1])] if len(classes) == 2 else list(zip(classes, proba.T))
    for cls, score in targets:
        fpr, tpr, _ = metrics.roc_curve(np.asarray(y) == cls, score)
        ax.plot(fpr, tpr, label=f"class {cls} (AUC = {metrics.auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.grid(True)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def calibration(model, X, y, n_bins=10):
    """Reliability diagram: observed frequency against predicted probability (pooled over classes)."""
    proba = model.predict_proba(X)
    onehot = (np.asarray(y)[:, None] == model.classes_[None, :]).astype(float)
    p, o = proba.ravel(), onehot.ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    fig, ax = plt.subplots(figsize=(5, 5))
    mean_p = [p[bins == b].mean() for b in range(n_bins) if (bins == b).any()]
    freq = [o[bins == b].mean() for b in range(n_bins) if (bins == b).any()]
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfectly calibrated")
    ax.plot(mean_p, freq, "o-", label="model")
    ax.set_xlabel("Predicted probability")
    ax.set_ylabel("Observed frequency")
    ax.grid(True)
    ax.legend(loc="upper left")
    return fig


def confusion(model, X, y, class_names=None):
    cm = metrics.confusion_matrix(y, model.predict(X), labels=model.classes_)
    names = [str(c) for c in (model.classes_ if class_names is None else class_names)]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.6 * len(cm)), max(3.5, 1.0 + 0.5 * len(cm))))
    im = ax.imshow(cm, cmap="Blues")
    ticks = range(len(cm))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    for i in ticks:
        for j in ticks:
            ax.text(j, i, cm[i, j], ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    fig.colorbar(im, ax=ax)
    return fig


def loss_curve(model):
    curve = getattr(model, "loss_curve_", None)
    if not curve:
        raise ValueError("the model has no training loss curve (it was fitted with max_iter=0 or saved without one)")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(curve) + 1), curve)
    ax.set_xlabel("epoch" if getattr(model, "solver_", "") == "sgd" else "iteration")
    ax.set_ylabel("objective / sum(sample_weight)")
    ax.set_yscale("log")
    ax.grid(True)
    return fig


def _grid(n, columns):
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def _picture(row, image_shape):
    """One stored row as something imshow draws: (H, W) grey or (H, W, 3) colour."""
    image = np.asarray(row, dtype=float).reshape(image_shape)
    return image.transpose(1, 2, 0) if len(image_shape) == 3 else image


def weights(coef, image_shape, class_names, columns=5):
    """Each class's weight template drawn as an image: where ink raises (red) or lowers (blue) its logit.

    Grey images share one symmetric colour scale, so templates compare; it ends
    at the 99th percentile of ``|w|``, since a few rarely inked border pixels carry
    weights many times the rest and would wash out the picture. Colour
    templates are each stretched to [0, 1] (a colour image has no diverging map).
    """
    coef = np.asarray(coef, dtype=float)
    fig, cells = _grid(len(coef), columns)
    limit = np.percentile(np.abs(coef), 99) or 1.0
    for ax, w, name in zip(cells, coef, class_names):
        picture = _picture(w, image_shape)
        if picture.ndim == 3:
            ax.imshow((picture - picture.min()) / (np.ptp(picture) or 1.0))
        else:
            ax.imshow(picture, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(name), fontsize=9)
    fig.suptitle("Weight templates (coef_ of each class)")
    return fig


def samples(X, y_true, y_pred, image_shape, class_names, n=32, columns=8):
    """The first ``n`` images with 'predicted (true)' labels; wrong ones in red with a red frame."""
    n = min(n, len(X))
    fig, cells = _grid(n, columns)
    for ax, row, t, p in zip(cells, X[:n], y_true[:n], y_pred[:n]):
        picture = _picture(row, image_shape)
        ax.imshow(picture, cmap="gray_r" if picture.ndim == 2 else None, vmin=0, vmax=picture.max() or 1)
        wrong = t != p
        ax.set_title(
            f"{class_names[p]}" + (f" ({class_names[t]})" if wrong else ""),
            fontsize=8,
            color="red" if wrong else "black",
        )
        if wrong:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("red")
                spine.set_linewidth(2)
    errors = int(np.sum(np.asarray(y_true[:n]) != np.asarray(y_pred[:n])))
    fig.suptitle(f"Predicted label (true label when wrong): {errors} of {n} wrong")
    return fig


def coefficient_path(Cs, coef, chosen_C=None, feature_names=None, label_top=8, scale=None):
    """Each coefficient against C (log scale) along a regularisation path, the chosen C marked.

    Cs (n_cs,); coef (n_cs, d) or (n_cs, K, d) without intercepts (a
    multinomial path draws every class's lines). ``scale`` (d,), e.g. the
    features' standard deviations: coefficients drawn times it, so features
    in different units compare. The ``label_top`` largest at the chosen C
    (else the weakest penalty) are coloured and named; the rest are grey.
    """
    Cs = np.asarray(Cs, dtype=float)
    order = np.argsort(Cs)
    coef = np.asarray(coef, dtype=float)[order]
    if scale is not None:
        coef = coef * np.asarray(scale, dtype=float)
    coef = coef.reshape(len(Cs), -1)  # (n_cs, K d)
    names = [str(n) for n in feature_names] if feature_names is not None else [f"x{j}" for j in range(coef.shape[1])]
    if len(names) != coef.shape[1]:  # K classes: name each line class:feature
        names = [f"{k}:{n}" for k in range(coef.shape[1] // len(names)) for n in names]
    at = -1 if chosen_C is None else int(np.argmin(np.abs(np.log(Cs[order]) - np.log(chosen_C))))
    top = np.argsort(-np.abs(coef[at]))[:label_top].tolist()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j in range(coef.shape[1]):
        if j not in top:
            ax.plot(Cs[order], coef[:, j], color="0.75", lw=0.7)
    colours = plt.get_cmap("tab10")
    for rank, j in enumerate(top):
        ax.plot(Cs[order], coef[:, j], color=colours(rank % 10), lw=1.4, label=names[j])
    if chosen_C is not None:
        ax.axvline(chosen_C, color="black", ls="--", lw=1, label=f"chosen C = {chosen_C:.3g}")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse penalty strength)")
    ax.set_ylabel("coefficient" if scale is None else "coefficient x feature's standard deviation")
    ax.set_title("Regularisation path")
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize="x-small", loc="upper left", ncol=2)
    return fig


def cv_scores(
    Cs, mean, sem, chosen_C=None, min_C=None, one_se_C=None, score_name="score", title=None, greater_is_better=True
):
    """Mean cross-validation score ± one standard error against C (log scale), the choices marked.

    ``min_C``: the best mean; ``one_se_C``: the smallest C within one
    standard error of it (the one-standard-error rule); ``chosen_C``: the
    model's (one of the two). ``greater_is_better=False`` for a loss: the
    rule's threshold is then the best mean plus one standard error.
    """
    Cs, mean, sem = (np.asarray(v, dtype=float) for v in (Cs, mean, sem))
    order = np.argsort(Cs)
    Cs, mean, sem = Cs[order], mean[order], sem[order]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.fill_between(Cs, mean - sem, mean + sem, alpha=0.25, label="± one standard error")
    ax.plot(Cs, mean, "o-", ms=3, label=f"mean {score_name}")
    if min_C is not None:
        i = np.argmin(np.abs(Cs - min_C))
        ax.axvline(min_C, color="tab:green", ls=":", lw=1.2, label=f"best mean: C = {min_C:.3g}")
        threshold = mean[i] - sem[i] if greater_is_better else mean[i] + sem[i]
        ax.axhline(
            threshold,
            color="grey",
            ls=":",
            lw=0.8,
            label="threshold: best mean + its standard error"
            if not greater_is_better
            else "threshold: best mean - its standard error",
        )
    if one_se_C is not None:
        ax.axvline(one_se_C, color="tab:red", ls="-.", lw=1.2, label=f"one-standard-error rule: C = {one_se_C:.3g}")
    if chosen_C is not None:
        ax.plot([chosen_C], [mean[np.argmin(np.abs(Cs - chosen_C))]], "k*", ms=12, label=f"chosen C = {chosen_C:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse penalty strength)")
    ax.set_ylabel(f"cross-validated {score_name}")
    ax.set_title(title or "Choosing C by cross-validation")
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize="x-small", loc="best")
    return fig


# ---------------------------------------------------------------- a fitted model on data (`plot` and `report`)
def model_probability_curve(model, X, y):
    """The lecture's curve for a binary one-feature ``model`` on (X, y), shaded with its 95 % band.

    The band comes from ``model.summary(X, y)``. Returns ``(figure, note)``:
    ``note`` says why there is no band (e.g. separated data without a
    penalty), None when there is one.
    """
    import pandas as pd

    name = str(getattr(model, "feature_names_in_", ["x"])[0])
    x = X.toarray().ravel() if hasattr(X, "toarray") else np.asarray(X, dtype=float).ravel()  # one column

    def as_input(grid):  # a one-column input, named when the model knows its feature name
        column = np.asarray(grid, dtype=float)[:, None]
        return pd.DataFrame(column, columns=[name]) if hasattr(model, "feature_names_in_") else column

    band, note = None, None
    try:
        result = model.summary(X, y)
    except InferenceError as exc:  # draw the curve alone
        note = f"no confidence band: {exc}"
    else:

        def band(grid):
            lower, upper = result.predict_proba_ci(as_input(grid))
            return lower[:, 1], upper[:, 1]

    fig = probability_curve(
        lambda grid: model.predict_proba(as_input(grid))[:, 1],
        x,
        (np.asarray(y) == model.classes_[1]).astype(int),
        x_max=max(10.0, float(x.max()) * 1.1),
        xlabel=name.capitalize(),
        band=band,
    )
    return fig, note


def cv_table_scores(table):
    """``cv_scores`` of the table ``train --cv`` writes next to the model (MODEL.cv.json, log-loss)."""
    return cv_scores(
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


def model_coefficient_path(model, X, y, table=None):
    """The regularisation path fitted on (X, y) over the C of a CV ``table`` (else 20 from 1e-4 to 1e4),
    coefficients times each feature's standard deviation, the model's C marked."""
    Cs = table["C"] if table is not None else np.logspace(-4, 4, 20)
    ratio = float(model.l1_ratio or 0.0) if table is None else table["l1_ratio"]
    path = regularization_path(X, y, Cs=Cs, l1_ratio=ratio, gap_tol=None)
    chosen = table["chosen_C"] if table is not None else model.C
    names = getattr(model, "feature_names_in_", None)
    scale = None if hasattr(X, "nnz") else np.asarray(X, dtype=float).std(axis=0)  # features in their units
    return coefficient_path(path.Cs, path.coef, chosen_C=chosen, feature_names=names, scale=scale)
