"""``LogisticRegression.summary``: statsmodels-style Wald inference for a fitted model.

The math is in :mod:`torchlogit._inference`; this module gathers the pieces
(log-likelihoods, information criteria, z and p values) and prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from ._inference import (
    InferenceError,
    contrast_matrix,
    equation_major,
    penalty_diagonal,
    score_outer_products,
    symmetric_inverse,
)
from ._labels import label_indices
from ._loss import POINTWISE, LinearModelLoss
from ._separation import separation_if_diverging
from ._sparse import linear, rows

COV_TYPES = ("nonrobust", "HC0", "HC1")


@dataclass
class SummaryResult:
    """Estimates with standard errors; arrays have the intercept first.

    Binary: ``params`` (d1,). Multinomial: (n_equations, d1), one row per
    equation: each class against ``baseline`` (statsmodels MNLogit), or all K
    classes with coefficients summing to zero when ``baseline`` is None.
    """

    params: np.ndarray
    bse: np.ndarray
    cov_params: np.ndarray  # (q, q), q = params.size, in params.ravel() order
    names: list  # d1 column names, "const" first when there is an intercept
    equations: list  # class label of each row ([classes_[1]] for binary)
    baseline: object  # the reference class, or None
    llf: float
    llnull: float
    nobs: int
    k_params: int  # free parameters: d1 (binary) or (K - 1) d1
    cov_type: str = "nonrobust"
    penalized: bool = False
    C: float = math.inf
    notes: list = field(default_factory=list)
    _model: object = field(default=None, repr=False)
    _cov_symmetric: object = field(default=None, repr=False)  # (k d1, k d1) tensor, all classes

    @property
    def zvalues(self):
        return self.params / self.bse

    @property
    def pvalues(self):
        return 2.0 * stats.norm.sf(np.abs(self.zvalues))

    @property
    def prsquared(self):
        """McFadden's pseudo R^2 = 1 - llf / llnull."""
        return 1.0 - self.llf / self.llnull

    @property
    def aic(self):
        return -2.0 * self.llf + 2.0 * self.k_params

    @property
    def bic(self):
        return -2.0 * self.llf + math.log(self.nobs) * self.k_params

    @property
    def df_resid(self):
        return self.nobs - self.k_params

    def conf_int(self, alpha=0.05):
        """(..., 2) array of [lower, upper] Wald intervals at level 1 - alpha."""
        q = stats.norm.ppf(1.0 - alpha / 2.0)
        return np.stack([self.params - q * self.bse, self.params + q * self.bse], axis=-1)

    def to_frame(self, alpha=0.05):
        """A pandas DataFrame, one row per (equation, column)."""
        import pandas as pd

        ci = self.conf_int(alpha).reshape(-1, 2)
        index = pd.MultiIndex.from_product([[str(e) for e in self.equations], self.names], names=["class", "term"])
        if self.params.ndim == 1:
            index = pd.Index(self.names, name="term")
        return pd.DataFrame(
            {
                "coef": self.params.ravel(),
                "std err": self.bse.ravel(),
                "z": self.zvalues.ravel(),
                "P>|z|": self.pvalues.ravel(),
                f"[{alpha / 2:g}": ci[:, 0],
                f"{1 - alpha / 2:g}]": ci[:, 1],
            },
            index=index,
        )

    def predict_proba_ci(self, X, alpha=0.05, block_rows=1024):
        """(lower, upper), each (n, n_classes): pointwise confidence bands for predict_proba(X).

        Binary: the Wald interval of the logit x1 . beta, mapped through the
        sigmoid (so it stays inside [0, 1]). Multinomial: the delta method,
        Var p_k = g_k^T Cov g_k with g_k = dp_k/dtheta = p_k (e_k - p) (x) x1,
        clipped to [0, 1]. Uses this summary's covariance (robust if asked).
        """
        model, cov = self._model, self._cov_symmetric
        Xt, _ = model._validate_X(X, reset=False)
        W, b = model._fitted_theta(Xt.dtype, Xt.device)
        q = stats.norm.ppf(1.0 - alpha / 2.0)
        K = len(model.classes_)
        k = 1 if K == 2 else K
        d1 = cov.shape[0] // k
        lower, upper = [], []
        for start in range(0, Xt.shape[0], block_rows):
            Xb = rows(Xt, start, start + block_rows)  # dense (m, d), also for a sparse X
            z = torch.nn.functional.linear(Xb, W, b).to(torch.float64)  # (m, k)
            X1 = Xb.to(torch.float64)
            if model.fit_intercept:
                X1 = torch.cat([torch.ones(len(X1), 1, dtype=torch.float64, device=X1.device), X1], 1)
            if K == 2:
                se = ((X1 @ cov) * X1).sum(1).clamp_min(0).sqrt()
                lo, hi = torch.sigmoid(z[:, 0] - q * se), torch.sigmoid(z[:, 0] + q * se)
                lower.append(torch.stack([1 - hi, lo], 1))
                upper.append(torch.stack([1 - lo, hi], 1))
                continue
            p = torch.softmax(z, 1)  # (m, K)
            J = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # dp_k / dz_l
            Q = torch.einsum("ij,ljmn,in->ilm", X1, cov.view(k, d1, k, d1), X1)  # x1^T Cov_lm x1
            se = torch.einsum("ikl,ilm,ikm->ik", J, Q, J).clamp_min(0).sqrt()
            lower.append((p - q * se).clamp(0, 1))
            upper.append((p + q * se).clamp(0, 1))
        return torch.cat(lower).cpu().numpy(), torch.cat(upper).cpu().numpy()

    def __str__(self):
        return format_summary(self)

    def _repr_html_(self):
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def format_summary(r: SummaryResult, alpha=0.05) -> str:
    """A text table in the layout of statsmodels' ``summary()``."""
    binary = r.params.ndim == 1
    width = 78
    model = "Logit" if binary else "MNLogit"
    left = [
        ("Model:", model),
        ("No. Observations:", str(r.nobs)),
        ("Df Residuals:", str(r.df_resid)),
        ("Df Model:", str(r.k_params - len(r.equations) if not binary else r.k_params - 1)),
        ("Covariance Type:", r.cov_type),
    ]
    right = [
        ("Pseudo R-squ.:", f"{r.prsquared:.4f}"),
        ("Log-Likelihood:", f"{r.llf:#.5g}"),
        ("LL-Null:", f"{r.llnull:#.5g}"),
        ("AIC:", f"{r.aic:#.5g}"),
        ("BIC:", f"{r.bic:#.5g}"),
    ]
    lines = [f"{model} Regression Results (torchlogit)".center(width), "=" * width]
    for (a, b), (c, d) in zip(left, right):
        lines.append(f"{a:<20}{b:>18}   {c:<20}{d:>17}")
    lines.append("=" * width)
    lo, hi = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
    header = f"{'':<22}{'coef':>10}{'std err':>11}{'z':>10}{'P>|z|':>10}{lo:>8}{hi:>8}"
    ci = r.conf_int(alpha)
    params, bse, z, p = (np.atleast_2d(a) for a in (r.params, r.bse, r.zvalues, r.pvalues))
    ci = ci.reshape(params.shape + (2,))
    for e, label in enumerate(r.equations):
        name = "y" if binary else f"y={label}"
        lines.append(f"{name:<22}" + header[22:])
        lines.append("-" * width)
        for j, term in enumerate(r.names):
            lines.append(
                f"{str(term)[:21]:<22}{params[e, j]:>10.4f}{bse[e, j]:>11.3f}{z[e, j]:>10.3f}"
                f"{p[e, j]:>10.3f}{ci[e, j, 0]:>8.3f}{ci[e, j, 1]:>8.3f}"
            )
    lines.append("=" * width)
    if not binary and r.baseline is not None:
        base = r.baseline.item() if isinstance(r.baseline, np.generic) else r.baseline
        lines.append(f"Equations compare each class with the baseline class {base!r}.")
    lines.extend(r.notes)
    return "\n".join(lines)


def summarize(model, X, y, *, cov_type="nonrobust", baseline="first", block_rows=4096) -> SummaryResult:
    """Inference for a fitted ``LogisticRegression`` on data (X, y); see ``SummaryResult``."""
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    if getattr(model, "class_weight", None) is not None:
        raise InferenceError("summary() needs an unweighted fit: the model was fitted with class_weight")
    classes = model.classes_
    Xt, _ = model._validate_X(X, reset=False)  # (n, d) tensor on the model's device, not copied
    W, b = model._fitted_theta(Xt.dtype, Xt.device)
    Z = linear(Xt, W, b)  # (n, k) logits
    y = np.asarray(y)
    if y.shape != (Xt.shape[0],):
        raise ValueError(f"y has shape {y.shape}; expected ({Xt.shape[0]},) labels")
    idx, unknown = label_indices(classes, y)
    if unknown is not None:
        raise ValueError(f"label {unknown!r} in y was not seen in training (classes: {classes.tolist()})")
    K, n = len(classes), Xt.shape[0]
    binary = K == 2
    k = 1 if binary else K
    target = torch.as_tensor(idx, device=Xt.device)
    fit_intercept = model.fit_intercept
    d1 = Xt.shape[1] + int(fit_intercept)
    names = (["const"] if fit_intercept else []) + [str(c) for c in _feature_names(model)]
    penalty = model._make_penalty(1.0)  # on the summed log-likelihood: alpha = 1 / C
    if penalty.l1:
        raise InferenceError(
            "standard errors of an L1 or elastic-net fit are not defined by Wald inference "
            "(the estimate sits on the penalty's kinks); refit with penalty=None for p-values"
        )
    l2 = penalty.l2

    pointwise = POINTWISE["binary" if binary else "multinomial"]
    row_loss = pointwise.loss(Z.to(torch.float64), target.to(torch.float64) if binary else target)  # (n,)
    if not l2:  # Wald inference on separable data is meaningless: say why, by name
        found = separation_if_diverging(
            row_loss, Xt, idx, classes, fit_intercept=model.fit_intercept, feature_names=_feature_names(model)
        )
        if found is not None:
            raise InferenceError(found.message())
    # the information: the data term's Hessian on the summed log-likelihood (unit weights), in float64
    datafit = LinearModelLoss(pointwise, Xt.shape[1], k, fit_intercept)
    theta = torch.cat([W.reshape(-1), b.reshape(-1)] if fit_intercept else [W.reshape(-1)]).to(torch.float64)
    units = torch.ones(n, dtype=Xt.dtype, device=Xt.device)
    y_loss = target.to(torch.float64) if binary else target
    I = equation_major(datafit.hessian(theta, Xt, y_loss, units, exact=True), k, Xt.shape[1], fit_intercept)
    M = None
    if cov_type != "nonrobust":
        M = score_outer_products(
            Z, Xt, target, multiclass=not binary, fit_intercept=fit_intercept, block_rows=block_rows
        )
    if l2:
        I = I + torch.diag(penalty_diagonal(k, d1, l2, fit_intercept, I.device))
    bread = symmetric_inverse(I, k, d1, fit_intercept, penalized=bool(l2), names=names)
    k_params = d1 * (K - 1)
    cov = bread if M is None else bread @ M @ bread
    if cov_type == "HC1":  # MacKinnon and White's small-sample factor (statsmodels' Logit/MNLogit
        cov = cov * (n / (n - k_params))  # return HC0 under the name HC1)

    ref = None if binary or baseline is None else _baseline_index(classes, baseline)
    A = contrast_matrix(k, d1, ref, I.device)
    theta = torch.as_tensor(_equation_major(model), dtype=torch.float64, device=I.device)
    params = (A @ theta).cpu().numpy()
    cov_symmetric = cov
    cov = (A @ cov @ A.T).cpu().numpy()
    bse = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    equations = [classes[1]] if binary else [c for e, c in enumerate(classes) if e != ref]
    shape = (d1,) if binary else (len(equations), d1)

    llf = -float(row_loss.sum())
    llnull = _null_loglik(idx, K, n, fit_intercept)
    notes = []
    if l2:
        notes.append(
            f"Penalized fit (L2, C={model.C:g}): these standard errors describe the penalized estimate, which is "
            "biased toward zero; they are not classical Wald inference. Refit with penalty=None for p-values."
        )
    if cov_type != "nonrobust":
        notes.append(f"Standard errors are heteroscedasticity-robust ({cov_type}, sandwich).")
    return SummaryResult(
        params.reshape(shape),
        bse.reshape(shape),
        cov,
        names,
        equations,
        None if ref is None else classes[ref],
        llf,
        llnull,
        n,
        k_params,
        cov_type,
        bool(l2),
        getattr(model, "C", math.inf),
        notes,
        model,
        cov_symmetric,
    )


def _feature_names(model):
    names = getattr(model, "feature_names_in_", None)
    return list(names) if names is not None else [f"x{j}" for j in range(model.n_features_in_)]


def _baseline_index(classes, baseline):
    if isinstance(baseline, str) and baseline == "first" and "first" not in list(classes):
        return 0
    hits = np.flatnonzero(classes == baseline)
    if not len(hits):
        raise ValueError(f"baseline {baseline!r} is not a class (classes: {classes.tolist()}); use 'first' or None")
    return int(hits[0])


def _equation_major(model):
    """Flat parameters, equation-major, intercept first: [b_0, W_0, b_1, W_1, ...]."""
    W = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    b = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    return np.concatenate([b[:, None], W], axis=1).ravel() if model.fit_intercept else W.ravel()


def _null_loglik(idx, K, n, fit_intercept):
    """Log-likelihood of the intercept-only model (all logits 0 without an intercept)."""
    if not fit_intercept:
        return -n * math.log(K)
    counts = np.bincount(idx, minlength=K).astype(np.float64)
    counts = counts[counts > 0]
    return float(np.sum(counts * np.log(counts / n)))
