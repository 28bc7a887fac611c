"""The peers, each as a ladder of settings from its defaults to tighter tolerances.

"Time to optimum" runs a system's settings in order and reports the first
whose objective is within 1e-6 relative of f*: scikit-learn's defaults stop
early, so comparing default wall times alone would flatter the sloppy.
Every estimator here exposes ``coef_`` (k, d) or (d,) and ``intercept_``.
"""

from __future__ import annotations

import numpy as np

from torchlogit import LogisticRegression


def objective(coef, intercept, X, y, C, block=65536):
    """sum_i loss_i / n + ||W||^2 / (2 C n) in float64, over row blocks (no float64 copy of X)."""
    W = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    b = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    n, total = len(y), 0.0
    for start in range(0, n, block):
        Z = X[start : start + block].astype(np.float64) @ W.T + b  # (m, k)
        yb = y[start : start + block]
        if W.shape[0] == 1:
            z = Z[:, 0]
            total += float(np.sum(np.logaddexp(0.0, z) - yb * z))
        else:
            top = Z.max(1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(Z - top).sum(1))
            total += float(np.sum(lse - Z[np.arange(len(yb)), yb]))
    return total / n + 0.5 * float(np.sum(W * W)) / (C * n)


class StatsmodelsL2:
    """statsmodels GLM(Binomial).fit_regularized with a pure L2 penalty, intercept unpenalised."""

    def __init__(self, C, tol):
        self.C, self.tol = C, tol

    def fit(self, X, y):
        import statsmodels.api as sm

        exog = np.hstack([np.ones((len(X), 1)), np.asarray(X, dtype=np.float64)])
        alpha = np.full(exog.shape[1], 1.0 / (self.C * len(y)))
        alpha[0] = 0.0
        model = sm.GLM(y, exog, family=sm.families.Binomial())
        res = model.fit_regularized(alpha=alpha, L1_wt=0.0, cnvrg_tol=self.tol, maxiter=1000)
        self.intercept_, self.coef_ = res.params[:1], res.params[1:]
        self.n_iter_ = np.array([0])
        return self


def ladders(C, binary, with_statsmodels=False):
    """{system: [(setting label, make(max_iter) -> estimator), ...]} for one case; max_iter None = the setting's own."""
    from glum import GeneralizedLinearRegressor
    from sklearn.linear_model import LogisticRegression as SkLogistic

    def ours(tol):
        return lambda m: LogisticRegression(C=C, tol=tol, max_iter=m or 1000)

    def sk(tol, solver="lbfgs"):  # the default max_iter (100) first; later rungs get the budget's
        return lambda m: SkLogistic(C=C, tol=tol, solver=solver, max_iter=m or 100)

    def glum(tol):
        return lambda m: _Glum(GeneralizedLinearRegressor, C, tol, m or 100)

    def sk64(tol):  # float32 objectives stop ~1e-6 above f*: the way to the optimum is a float64 copy
        return lambda m: _Float64(SkLogistic(C=C, tol=tol, max_iter=m or 100))

    systems = {
        "torchlogit": [(f"tol={t:g}", ours(t)) for t in (1e-4, 1e-5, 1e-6, 1e-8)],
        "sklearn lbfgs": [("tol=1e-4 (default)", sk(1e-4))]
        + [(f"tol={t:g}, float64 copy", sk64(t)) for t in (1e-6, 1e-8, 1e-10)],
    }
    if binary:
        systems["sklearn newton-cholesky"] = [(f"tol={t:g}", sk(t, "newton-cholesky")) for t in (1e-4, 1e-6, 1e-8)]
        systems["glum"] = [(f"gradient_tol={t:g}", glum(t)) for t in (1e-4, 1e-6, 1e-8)]
    if binary and with_statsmodels:
        systems["statsmodels"] = [
            (f"cnvrg_tol={t:g}", (lambda m, t=t: StatsmodelsL2(C, t))) for t in (1e-6, 1e-8, 1e-10)
        ]
    return systems


class _Float64:
    """Fit on a float64 copy of X (the copy's time counts)."""

    def __init__(self, est):
        self.est = est

    def fit(self, X, y):
        self.est.fit(np.asarray(X, dtype=np.float64), y)
        self.coef_, self.intercept_, self.n_iter_ = self.est.coef_, self.est.intercept_, self.est.n_iter_
        return self


class _Glum:
    """glum's binomial GLM with alpha = 1 / (C n): the same objective as C in scikit-learn."""

    def __init__(self, cls, C, tol, max_iter):
        self.cls, self.C, self.tol, self.max_iter = cls, C, tol, max_iter

    def fit(self, X, y):
        model = self.cls(
            family="binomial",
            alpha=1.0 / (self.C * len(y)),
            l1_ratio=0.0,
            gradient_tol=self.tol,
            max_iter=self.max_iter,
        )
        model.fit(X, y)
        self.coef_, self.intercept_, self.n_iter_ = model.coef_, np.atleast_1d(model.intercept_), model.n_iter_
        return self
