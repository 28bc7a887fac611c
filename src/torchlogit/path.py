"""Regularisation paths: one data set fitted at a sequence of C, from the largest penalty down.

    regularization_path(X, y, Cs=10)  ->  RegularizationPath(Cs, coefs, n_iter, duality_gaps, ...)

Each point minimises scikit-learn's objective (see :mod:`torchlogit.penalties`)

    f_C(W, b) = sum_i s_i loss_i + alpha [r ||W||_1 + (1 - r)/2 ||W||^2],   alpha = 1 / (C sum(sw))

and starts from the previous point's optimum (warm start), so the points are
solved in increasing C whatever the order asked for. What does not change
along the path is computed once and shared: the label encoding, the
weights, the standardisation (``_fit.Standardizer``: it only chooses the
coordinates the solver works in, so one (mu, sigma) serves every point and
every cross-validation fold) and the feature correlation behind L-BFGS's
preconditioner (:class:`SharedStandardizer`). Every point is certified: its
duality gap bounds f_C - min f_C.

The grid for ``Cs=int`` comes from the data, as glmnet's: alpha_max is the
smallest alpha at which W = 0 is optimal (intercepts optimal),

    alpha_max = max_j |dL/dW_j (0, b0)| / max(r, 1e-3),

and the grid runs from alpha_max down to ``eps * alpha_max`` in equal ratios
(``eps`` 1e-4 when n > d, else 1e-2: glmnet's ``lambda.min.ratio``). For pure
L2 (r = 0) no alpha makes W exactly 0; as glmnet does for ridge, r is
floored at 1e-3, so the path starts where the ridge coefficients are at most
about 1e-3 of the L1 entry point's scale: the model is the intercept-only
model to three digits. ``LogisticRegressionCV`` keeps scikit-learn's
``np.logspace(-4, 4, Cs)`` unless asked for this grid (``grid='data'``).

Layout of the coefficients (scikit-learn's ``_logistic_regression_path``):
(n_cs, d + fit_intercept) for two classes, (n_cs, K, d + fit_intercept) for
K > 2, the intercept last.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight

from . import _threads
from ._costs import estimate
from ._fit import Standardizer, fit_problem, representer_applies
from ._labels import encode_labels
from ._logistic import LogisticRegression, coefficients
from ._loss import POINTWISE, LinearModelLoss
from ._problem import Problem
from .penalties import Penalty, from_params
from .solvers import choose

f64 = torch.float64
L2_RATIO_FLOOR = 1e-3  # glmnet's alpha floor for the ridge path's lambda_max
GAP_TOL = 1e-6  # every path point within this relative duality gap of its optimum (the certificate)
REFINE_ROUNDS = 4  # at most this many continuations per point
ROUND_ITER = 20  # a continuation's iterations: at most max(this, twice the first fit's)


class SharedStandardizer(Standardizer):
    """A Standardizer whose feature correlation (L-BFGS's preconditioner) is computed once.

    ``correlation`` is asked for at every fit; along a path the data are the
    same (cross-validation folds differ in their weights only, and R only
    shapes a preconditioner, so the full data's R serves them all). The
    preconditioner adds the penalty's diagonal to a copy, so each C still gets its own.
    """

    _R = None

    @classmethod
    def of(cls, std):
        return cls(std.mu, std.sigma, std.k, std.fit_intercept, std.constant)

    def correlation(self, X, s, max_rows, block_bytes=16 << 20):
        if self._R is None:
            self._R = super().correlation(X, s, max_rows, block_bytes)
        return self._R.clone()  # (d, d) float64; the caller edits its diagonal


@dataclass(frozen=True)
class PathData:
    """What a path shares across its points (and cross-validation across folds): frozen once built.

    X (n, d) tensor or SparseX; y (n,) targets (float 0/1 binary, int64
    classes multinomial); sw (n,) sample weights times class weights, X's
    dtype; classes the sorted labels; y_idx (n,) numpy class indices.
    """

    datafit: LinearModelLoss
    X: object
    y: torch.Tensor
    sw: torch.Tensor
    classes: np.ndarray
    y_idx: np.ndarray
    std: SharedStandardizer

    @classmethod
    def build(cls, X, y_idx, classes, sw, fit_intercept):
        """From validated X (tensor or SparseX), class indices and weights (sw already times class weights)."""
        binary = len(classes) == 2
        k = 1 if binary else len(classes)
        datafit = LinearModelLoss(POINTWISE["binary" if binary else "multinomial"], X.shape[1], k, fit_intercept)
        target = torch.as_tensor(y_idx, dtype=X.dtype if binary else torch.long, device=X.device)
        std = Standardizer.from_data(X, sw / sw.sum(dtype=f64).to(sw.dtype), k, fit_intercept)
        return cls(datafit, X, target, sw, classes, np.asarray(y_idx), SharedStandardizer.of(std))

    def weights(self, mask=None):
        """(s, S): the weights of the rows in ``mask`` (a (n,) bool tensor; None: all) normalised to sum 1, and
        their total. A cross-validation fold is the whole X with zero weight on its test rows: no copy of X."""
        sw = self.sw if mask is None else torch.where(mask, self.sw, torch.zeros_like(self.sw))
        S = float(sw.sum(dtype=f64))
        if S <= 0:
            raise ValueError("The sample weights sum to zero: there is nothing to fit.")
        return sw / S, S

    def null_theta(self, s):
        """theta with W = 0 and the optimal intercepts for weights s (float64): the path's first iterate.

        Binary: b = logit(sum_i s_i y_i); multinomial: b_k = log p_k - mean (a
        class absent from the rows gets a large negative b, not -inf).
        """
        k, d = self.datafit.n_outputs, self.datafit.n_features
        theta = torch.zeros(self.datafit.n_params, dtype=f64, device=self.y.device)
        if not self.datafit.fit_intercept:
            return theta
        s64 = s.to(f64)
        if k == 1:
            p = float((s64 * self.y.to(f64)).sum())
            p = min(max(p, 1e-12), 1 - 1e-12)
            theta[k * d :] = math.log(p / (1 - p))
        else:
            p = torch.zeros(k, dtype=f64, device=s.device).index_add_(0, self.y, s64).clamp_min(1e-12)
            b = p.log()
            theta[k * d :] = b - b.mean()
        return theta

    def alpha_max(self, l1_ratio, s):
        """The largest useful alpha for weights s: max_j |G0_j| / max(r, 1e-3), G0 = dL/dW at (0, b0)."""
        theta0 = self.null_theta(s)
        _, g = self.datafit.loss_gradient(theta0.to(self.X.dtype), self.X, self.y, s)
        G0 = g[: self.datafit.n_outputs * self.datafit.n_features].to(f64)
        return Penalty(1.0, max(float(l1_ratio), L2_RATIO_FLOOR)).alpha_max(G0)


def data_grid(alpha_max, n_cs, total_weight, eps):
    """(n_cs,) C values, ascending: alpha from alpha_max down to eps alpha_max in equal ratios, C = 1 / (alpha S)."""
    alphas = alpha_max * np.logspace(0.0, np.log10(eps), int(n_cs))
    return 1.0 / (alphas * total_weight)


def default_eps(n, d):
    """glmnet's lambda.min.ratio: 1e-4 when there are more rows than features, else 1e-2."""
    return 1e-4 if n > d else 1e-2


def fit_path(
    data,
    Cs,
    l1_ratio,
    *,
    penalty="deprecated",
    mask=None,
    solver="auto",
    tol=1e-6,
    max_iter=1000,
    w0=None,
    gap_tol=GAP_TOL,
    precondition=None,
):
    """Fit ``data`` (restricted to the rows in ``mask``) at every C of ``Cs``, warm-started in increasing C.

    Returns a list of solver ``Result`` in the order of ``Cs`` (theta in
    ``x``, ``duality_gap`` set), and the solver names used. ``penalty``:
    scikit-learn's penalty name, 'deprecated' when ``l1_ratio`` decides.
    ``w0``: the first point's start (float64 theta); None: W = 0, intercepts optimal.
    ``gap_tol``: every point is driven below this relative duality gap (gap /
    |f|) by :func:`certify` (None: the solver's ``tol`` alone decides).
    ``precondition``: L-BFGS's inverse-Hessian estimate for every fit (see
    :func:`torchlogit._fit.fit_problem`), None to form the usual one.
    One fold, one l1_ratio; :mod:`torchlogit._folds` solves a
    cross-validation's folds together where it applies (L2; :func:`torchlogit._folds.applies`).
    """
    datafit, X = data.datafit, data.X
    s, S = data.weights(mask)
    theta = data.null_theta(s) if w0 is None else w0.to(f64)
    results, solvers = [None] * len(Cs), [None] * len(Cs)
    with _threads.for_work(float(X.shape[0]) * datafit.n_params):
        for i in np.argsort(np.asarray(Cs, dtype=float), kind="stable"):  # the largest penalty first
            problem = Problem(datafit, from_params(penalty, float(Cs[i]), l1_ratio, S), X, data.y, s)
            name = choose(
                solver,
                datafit.n_params,
                lambda: estimate(datafit, X),
                penalty_kind=problem.penalty.name,
                representer=representer_applies(problem),
            )
            solve = functools.partial(fit_problem, problem, solver=name, std=data.std, precondition=precondition)
            res = certify(solve, solve(w0=theta, tol=tol, max_iter=max_iter), tol, max_iter, gap_tol)
            if not bool(torch.isfinite(res.x).all()):
                raise ValueError(f"the fit at C={float(Cs[i]):.4g} produced non-finite coefficients; rescale X")
            results[i], solvers[i] = res, name
            theta = res.x
    return results, solvers


def relative_gap(res):
    """gap / max(|f|, 1e-300): how far a point may be from its optimum, relative; NaN without a gap (no penalty)."""
    if res.duality_gap is None:
        return float("nan")
    return res.duality_gap / max(abs(res.fun), 1e-300)


def certify(solve, res, tol, max_iter, gap_tol, max_rounds=REFINE_ROUNDS):
    """``res`` continued until its relative duality gap is at most ``gap_tol`` (a gap-certified point).

    ``solve(w0=, tol=, max_iter=)``: the fit that gave ``res``, from another start with other limits.

    The gradient test ``max|g| <= tol`` does not bound f - f*: at a weak L2
    penalty the gap is about ||g||^2 / (2 alpha), so the default tol leaves
    points 1e-5 (relative) short. A point whose gap is too large is continued
    from its own solution with a tol at least ten times smaller (by the
    square root of the gap's excess, from the L2 form), up to ``max_rounds`` times, within
    the iterations left of ``max_iter`` and ``max(ROUND_ITER, 2 n_iter)``
    each (below the rounding level of float32 logits a tol is never met, and
    L-BFGS would spend all of max_iter); a round that does not lower the gap
    ends the refinement. The result
    keeps the iterations of every round and the last gap, certified or not.
    """
    n_iter = res.n_iter
    for _ in range(max_rounds):
        if gap_tol is None or not relative_gap(res) > gap_tol or n_iter >= max_iter:
            break
        # gap ~ ||g||^2 / (2 alpha) for the L2 part: a gradient sqrt(gap_tol / gap) times smaller (halved for
        # margin) should certify; at least ten times smaller, so every round makes progress
        tol = min(tol, res.grad_max) * min(0.1, 0.5 * math.sqrt(gap_tol / relative_gap(res)))
        budget = min(max_iter - n_iter, max(ROUND_ITER, 2 * res.n_iter))
        more = solve(w0=res.x, tol=tol, max_iter=budget)
        n_iter += more.n_iter
        more.converged = more.converged or res.converged  # the user's tol was met; the gap is reported as it is
        if not more.duality_gap < res.duality_gap:  # rounding level: no round will do better
            break
        res = more
    res.n_iter = n_iter
    return res


def path_coefs(data, results, penalty_l1):
    """(n_cs, d + fit_intercept) binary or (n_cs, K, d + fit_intercept): scikit-learn's path layout, float64."""
    rows = []
    for res in results:
        coef, intercept = coefficients(data.datafit, res.x, np.float64, center_weights=not penalty_l1)
        w = np.hstack([coef, intercept[:, None]]) if data.datafit.fit_intercept else coef
        rows.append(w[0] if data.datafit.n_outputs == 1 else w)
    return np.stack(rows)


@dataclass(frozen=True)
class RegularizationPath:
    """The fits of :func:`regularization_path`, in the order of ``Cs``.

    Cs (n_cs,); coefs (n_cs, d + fit_intercept) for two classes or (n_cs, K,
    d + fit_intercept), intercept last (scikit-learn's layout); n_iter
    (n_cs,) int32; duality_gaps (n_cs,) bounds on f_C - min f_C (NaN without
    a penalty, C = inf); objectives (n_cs,) f_C divided by sum(sw);
    converged (n_cs,) bool; alpha_max: where W = 0 becomes optimal (see the
    module docstring); solvers: the solver used at each point.
    """

    Cs: np.ndarray
    coefs: np.ndarray
    n_iter: np.ndarray
    duality_gaps: np.ndarray
    objectives: np.ndarray
    converged: np.ndarray
    classes: np.ndarray
    l1_ratio: float
    alpha_max: float
    solvers: tuple

    fit_intercept: bool

    @property
    def coef(self):
        """(n_cs, K, d) weights without the intercepts (K = 1 for two classes)."""
        c = self.coefs if self.coefs.ndim == 3 else self.coefs[:, None, :]
        return c[..., : c.shape[-1] - int(self.fit_intercept)]

    @property
    def intercept(self):
        """(n_cs, K) intercepts (zeros without an intercept)."""
        c = self.coefs if self.coefs.ndim == 3 else self.coefs[:, None, :]
        return c[..., -1] if self.fit_intercept else np.zeros(c.shape[:2])


def prepare(estimator, X, y, sample_weight, class_weight):
    """Validate (X, y, weights) with ``estimator``'s rules and build the shared :class:`PathData`.

    Class weights as scikit-learn's LogisticRegressionCV: 'balanced' is
    computed once on the whole data (with the sample weights), a dict must
    name known classes.
    """
    X, y = estimator._validate_X(X, reset=True, y=y)
    classes, y_idx = encode_labels(y)
    if len(classes) < 2:
        raise ValueError(
            "This solver needs samples of at least 2 classes in the data, but the data "
            f"contains only one class: {classes[:1].tolist()[0]!r}"
        )
    sw = estimator._sample_weight(sample_weight, X, X.shape[0])
    if isinstance(class_weight, dict) and not set(class_weight) <= set(classes):
        raise ValueError(
            "The given class_weight dict must have the class labels as keys; "
            f"classes={classes} but key={class_weight.keys()}"
        )
    if class_weight is not None:
        sw_np = None if sample_weight is None else sw.cpu().numpy()
        cw = compute_class_weight(class_weight, classes=classes, y=y, sample_weight=sw_np)
        sw = sw * torch.as_tensor(cw[y_idx], dtype=sw.dtype, device=sw.device)
    if float(sw.sum(dtype=f64)) <= 0:
        raise ValueError("The sample weights sum to zero: there is nothing to fit.")
    return PathData.build(X, y_idx, classes, sw, estimator.fit_intercept), y


def warn_unconverged(results, Cs, solvers, where=""):
    """One ConvergenceWarning for all the points of a path that stopped short (scikit-learn warns per point)."""
    bad = [float(C) for res, C in zip(results, Cs) if not res.converged and not res.stopped]
    if bad:
        name = next(name for res, name in zip(results, solvers) if not res.converged)
        warnings.warn(
            f"{name} failed to converge: {len(bad)} of {len(results)} fits of the path{where} stopped at max_iter "
            f"(C = {', '.join(f'{C:.3g}' for C in bad[:5])}{', ...' if len(bad) > 5 else ''}). "
            "Increase the number of iterations (max_iter) to improve the convergence.",
            ConvergenceWarning,
            stacklevel=3,
        )


def regularization_path(
    X,
    y,
    *,
    Cs=10,
    l1_ratio=0.0,
    eps=None,
    fit_intercept=True,
    sample_weight=None,
    class_weight=None,
    tol=1e-6,
    max_iter=1000,
    solver="auto",
    device="auto",
    dtype=None,
    gap_tol=GAP_TOL,
):
    """Logistic regression fitted at every C of ``Cs``, warm-started from the largest penalty down.

    ``Cs``: an int (that many values on the data-derived grid, see the
    module docstring; ``eps`` its ratio, None for glmnet's default) or a
    list of C. ``l1_ratio`` in [0, 1]: 0 is L2, 1 is L1. ``tol``, ``max_iter``,
    ``solver``, ``device``, ``dtype``: as for :class:`LogisticRegression`.
    ``gap_tol``: each point is continued with a tighter tol until its
    duality gap is at most ``gap_tol * |f|`` (None: no such refinement).
    Returns a :class:`RegularizationPath`; every point carries its duality gap.
    """
    if not 0.0 <= float(l1_ratio) <= 1.0:
        raise ValueError(f"l1_ratio must be in [0, 1]; got {l1_ratio!r}")
    validator = LogisticRegression(fit_intercept=fit_intercept, device=device, dtype=dtype)
    data, _ = prepare(validator, X, y, sample_weight, class_weight)
    s, S = data.weights()
    alpha_max = data.alpha_max(l1_ratio, s)
    if isinstance(Cs, (int, np.integer)):
        if Cs < 1:
            raise ValueError(f"Cs must be a positive int or a list of C; got {Cs!r}")
        Cs = data_grid(alpha_max, Cs, S, default_eps(*data.X.shape) if eps is None else eps)
    Cs = np.asarray(Cs, dtype=float).reshape(-1)
    if not (Cs > 0).all():
        raise ValueError("every C must be > 0")
    results, solvers = fit_path(data, Cs, float(l1_ratio), solver=solver, tol=tol, max_iter=max_iter, gap_tol=gap_tol)
    warn_unconverged(results, Cs, solvers)
    return RegularizationPath(
        Cs=Cs,
        coefs=path_coefs(data, results, penalty_l1=float(l1_ratio) > 0),
        n_iter=np.array([r.n_iter for r in results], dtype=np.int32),
        duality_gaps=np.array([np.nan if r.duality_gap is None else r.duality_gap for r in results]),
        objectives=np.array([r.fun for r in results]),
        converged=np.array([bool(r.converged) for r in results]),
        classes=data.classes,
        l1_ratio=float(l1_ratio),
        alpha_max=alpha_max,
        solvers=tuple(solvers),
        fit_intercept=bool(fit_intercept),
    )


__all__ = ["regularization_path", "RegularizationPath", "PathData", "fit_path", "data_grid"]
