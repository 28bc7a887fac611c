"""The systems of bench/sparse.py, each as a ladder of settings from its defaults to tighter tolerances.

A ladder is [(label, run), ...] where ``run(X, y, Cs, max_iter)`` is a
generator that fits the regularisation path Cs in order (a single case is a
path of one) and yields ``(coef, intercept, n_iter)`` after each C: the
harness times the work between yields, so per-lambda times come for free
and nothing the harness does (copies, objectives) is counted. ``max_iter``
None means the setting's own default; the harness passes a cap derived from
its time budget on later rungs.

Everyone is put on scikit-learn's objective

    sum_i loss_i + (1/C) [r ||w||_1 + (1 - r)/2 ||w||^2],  intercept unpenalised,

which is what each system's parameters are converted to here:
- skglm's Logistic datafit is the *mean* loss, so alpha = 1 / (C n) with the
  same l1_ratio; ProxNewton fits an unpenalised intercept itself.
- liblinear penalises the intercept: it appends a constant column of value
  intercept_scaling whose weight is penalised like the others, so the
  intercept costs |b| / (C s) (L1) or b^2 / (2 C s^2) (L2). Its default
  (s = 1) is the first rung; the later rungs use s = 100, which makes that
  cost, and so the objective's error, negligible (second order in 1/s).
- celer's LogisticRegression has scikit-learn's C but fits no intercept
  (fit_intercept=True raises NotImplementedError): it is measured on the
  intercept-free version of each L1 problem, against skglm on that same
  problem, never against rows with an intercept.
- scikit-learn 1.9 deprecates ``penalty``; l1_ratio (1 = L1, 0 = L2) says it.
"""

from __future__ import annotations

import numpy as np

# --- torchlogit's row (issue 13). The probe in sparse.py decides whether it runs;
# while LogisticRegression(penalty='l1') or CSR input raises NotImplementedError
# or TypeError, its cells read "n/a (not implemented yet)".
TORCHLOGIT_TOLS = (1e-4, 1e-6, 1e-8, 1e-10)


def torchlogit_fits(X, y, Cs, max_iter, tol, l1_ratio, fit_intercept):
    """One warm-started torchlogit estimator along Cs, on the CSR (or dense) input as given."""
    from torchlogit import LogisticRegression

    est = LogisticRegression(
        l1_ratio=l1_ratio,  # scikit-learn 1.8's way; penalty= is deprecated there and here
        solver="auto",
        tol=tol,
        max_iter=max_iter or 1000,
        fit_intercept=fit_intercept,
        warm_start=True,
    )
    for C in Cs:
        est.set_params(C=C)
        est.fit(X, y)
        yield est.coef_, est.intercept_, est.n_iter_


# --- the peers


def skglm_fits(X, y, Cs, max_iter, tol, l1_ratio, fit_intercept):
    """skglm's SparseLogisticRegression (ProxNewton with working sets), warm-started along Cs."""
    from skglm import SparseLogisticRegression

    est = SparseLogisticRegression(
        alpha=1.0, l1_ratio=l1_ratio, tol=tol, max_iter=max_iter or 20, fit_intercept=fit_intercept, warm_start=True
    )
    for C in Cs:
        est.alpha = 1.0 / (C * len(y))  # skglm: mean loss + alpha * penalty; scikit-learn: sum loss + penalty / C
        est.fit(X, y)
        yield est.coef_, np.atleast_1d(est.intercept_), est.n_iter_


def celer_fits(X, y, Cs, max_iter, tol, l1_ratio, fit_intercept):
    """celer's LogisticRegression (prox-Newton, working sets, dual extrapolation): L1 only, no intercept, cold."""
    from celer import LogisticRegression as CelerLogistic

    assert l1_ratio == 1 and not fit_intercept
    for C in Cs:
        est = CelerLogistic(C=C, tol=tol, max_iter=max_iter or 50)  # tol: duality gap <= tol * n * log 2
        est.fit(X, y)
        yield est.coef_, np.zeros(1), getattr(est, "n_iter_", 0)  # celer 0.7 records no iteration count


def sklearn_fits(X, y, Cs, max_iter, tol, l1_ratio, fit_intercept, solver, **extra):
    """scikit-learn's LogisticRegression; warm-started along Cs where the solver can (liblinear cannot)."""
    from sklearn.linear_model import LogisticRegression as SkLogistic

    est = SkLogistic(
        solver=solver,
        tol=tol,
        l1_ratio=l1_ratio,
        max_iter=max_iter or 100,
        fit_intercept=fit_intercept,
        warm_start=solver != "liblinear",
        **extra,
    )
    for C in Cs:
        est.set_params(C=C)
        est.fit(X, y)
        yield est.coef_, est.intercept_, est.n_iter_


def _tol(t):
    return f"tol={t:.0e}".replace("e-0", "e-")  # tol=1e-4, as the issue writes it


def _rung(fits, **settings):
    return lambda X, y, Cs, max_iter: fits(X, y, Cs, max_iter, **settings)


def ladders(l1_ratio, fit_intercept, path=False):
    """{system: [(setting label, run), ...]} for one case (see the module docstring for run)."""
    common = {"l1_ratio": l1_ratio, "fit_intercept": fit_intercept}
    out = {"torchlogit": [(_tol(t), _rung(torchlogit_fits, tol=t, **common)) for t in TORCHLOGIT_TOLS]}
    if not fit_intercept:  # the intercept-free problems exist for celer; skglm is its yardstick there
        out["skglm ProxNewton"] = [(_tol(t), _rung(skglm_fits, tol=t, **common)) for t in (1e-4, 1e-6, 1e-8, 1e-10)]
        out["celer"] = [(_tol(t), _rung(celer_fits, tol=t, **common)) for t in (1e-4, 1e-6, 1e-8, 1e-10)]
        return out
    liblinear = [("tol=1e-4 (default)", _rung(sklearn_fits, tol=1e-4, solver="liblinear", **common))]
    liblinear += [
        (
            f"{_tol(t)}, intercept_scaling=100",
            _rung(sklearn_fits, tol=t, solver="liblinear", intercept_scaling=100.0, **common),
        )
        for t in (1e-4, 1e-6, 1e-8, 1e-10)
    ]
    if l1_ratio > 0:
        out["skglm ProxNewton"] = [(_tol(t), _rung(skglm_fits, tol=t, **common)) for t in (1e-4, 1e-6, 1e-8, 1e-10)]
        out["sklearn liblinear" + (" (cold)" if path else "")] = liblinear
        out["sklearn saga"] = [
            (_tol(t), _rung(sklearn_fits, tol=t, solver="saga", **common)) for t in (1e-4, 1e-6, 1e-8)
        ]
    else:  # L2: the quasi-Newton and Newton solvers; newton-cholesky would form a d x d Hessian (20 GB here)
        for solver in ("lbfgs", "newton-cg"):
            out[f"sklearn {solver}"] = [
                (_tol(t), _rung(sklearn_fits, tol=t, solver=solver, **common)) for t in (1e-4, 1e-6, 1e-8, 1e-10)
            ]
        out["sklearn liblinear"] = liblinear
    return out
