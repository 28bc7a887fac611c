"""Glue between a problem and a solver; shared by every estimator.

``fit_problem`` minimises a :class:`torchlogit._problem.Problem`

    f(theta) = sum_i s_i loss_i + P(W),    s = sw / sum(sw)

(the objective divided by sum(sw), so that ``tol`` means the same for 10 rows
or 10 million). The exact solvers run in standardised coordinates:

    x' = (x - mu) / sigma,    W = V / sigma,    b = c - W @ mu

a linear change of variables theta = A phi applied to the parameters (never to
X, which is not copied; only a small binary problem's design, at most 8 MiB,
is held standardised once: :mod:`torchlogit._compact`). The penalty stays on
W, so the minimiser is the same; only the conditioning changes, which is why unscaled data converges without
warnings. ``tol`` bounds max|grad_phi|, the gradient with respect to the
coefficients of standardised features (equal to the raw gradient on data that
is already standardised).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _compact, _kernels
from ._certificate import design_duality_gap, duality_gap
from ._loss import BinaryCrossEntropy, LinearModelLoss
from ._sparse import is_sparse, take_rows
from .nn import LinearModel
from .solvers import SOLVERS, Result, make_batches
from .solvers.sgd import row_batches

f64 = torch.float64


class Standardizer:
    """theta = A phi for one (mu, sigma) per feature; see the module docstring."""

    def __init__(self, mu, sigma, n_outputs, fit_intercept, constant=None):
        self.mu, self.sigma = mu, sigma  # (d,) float64 each
        self.k, self.d, self.fit_intercept = n_outputs, len(mu), fit_intercept
        self.constant = torch.zeros(len(mu), dtype=torch.bool, device=mu.device) if constant is None else constant

    @classmethod
    def from_moments(cls, mu, var, n_outputs, fit_intercept):
        """From column means and variances (float64)."""
        return cls.from_scale(mu, var.sqrt(), n_outputs, fit_intercept)

    @classmethod
    def from_scale(cls, mu, sigma, n_outputs, fit_intercept):
        """From column means and standard deviations (float64); constant columns keep sigma = 1.

        A column is constant when its spread is at the rounding level of its
        values, sigma <= 1e-7 |mu| (sigma = 0 included): a rule without an
        absolute floor, so a column measured in units of 1e-30 is data, not a constant.
        """
        sigma = sigma.clone()
        constant = ~(sigma > 1e-7 * mu.abs())
        sigma[constant] = 1.0  # constant columns: leave them as they are
        return cls(mu, sigma, n_outputs, fit_intercept, constant)

    @classmethod
    def from_data(cls, X, s, n_outputs, fit_intercept, block_bytes=4 << 20):
        """Weighted column means and standard deviations (s sums to 1) in one pass over X.

        Moments are taken about a shift c (the mean of <= 1000 evenly spaced
        rows, 0 without an intercept): with D = (x - c) / scale,

            mu = c + scale m1,   sigma = scale sqrt(m2 - m1^2),
            m1 = sum_i s_i D_i,  m2 = sum_i s_i D_i^2.

        scale is 1 unless the squares overflow (|x| >~ 1.8e19 in the float32
        kernel, 1e154 in float64) or fall near the underflow threshold (|x| ~
        1e-15 in float32, 1e-150 in float64): then a per-column power of two
        >= max|x - c|.
        The subtraction m2 - m1^2 loses a factor 1 / (1 - r) of precision,
        r = m1^2 / m2; r is a ratio of two sums that rounding barely changes
        (m2 has no cancellation), unlike m2 - m1^2 itself, so the decision to
        take a second pass about mu (when r > 1/2: c was more than one
        standard deviation from the mean, an unusual row order) cannot be
        fooled by the rounding it guards against, on any CPU or BLAS. mu and
        sigma only choose the coordinates the solver works in, so their
        rounding cannot move the optimum.
        """
        n, d = X.shape
        if is_sparse(X):  # no shift and no second pass: x - c would not be sparse
            m1, m2 = X.column_moments(s)
            if not fit_intercept:
                return cls.from_scale(torch.zeros_like(m1), m2.sqrt(), n_outputs, fit_intercept)
            return cls.from_scale(m1, (m2 - m1 * m1).clamp_min(0.0).sqrt(), n_outputs, fit_intercept)
        if fit_intercept:
            sample = torch.linspace(0, n - 1, min(n, 1000), device=X.device).round().long()
            c = X[sample].mean(dim=0, dtype=f64)
        else:
            c = torch.zeros(d, dtype=f64, device=X.device)
        scale = None
        m1, m2 = cls._moments(X, s, c, scale, block_bytes)
        if _squares_out_of_range(m1, m2, X.dtype):  # recompute in units of max|x - c|
            scale = _column_scale(X, c, block_bytes)
            m1, m2 = cls._moments(X, s, c, scale, block_bytes)
        if fit_intercept and bool((m1 * m1 > 0.5 * m2).any()):
            c = c + m1 * (1.0 if scale is None else scale)
            m1, m2 = cls._moments(X, s, c, scale, block_bytes)
        unit = torch.ones_like(c) if scale is None else scale
        if not fit_intercept:  # no centring: the scale is the root mean square
            return cls.from_scale(torch.zeros_like(c), m2.sqrt() * unit, n_outputs, fit_intercept)
        return cls.from_scale(c + m1 * unit, (m2 - m1 * m1).clamp_min(0.0).sqrt() * unit, n_outputs, fit_intercept)

    @staticmethod
    def _moments(X, s, c, scale, block_bytes):
        """(sum_i s_i D_i, sum_i s_i D_i^2) with D = (x - c) / scale, float64 (d,) each.

        c (d,) float64; scale (d,) float64 or None (1). The fused kernel sums
        in X's dtype over 1,024 rows; the torch path converts one block at a
        time to float64, so its sums do not depend on the BLAS's reduction order.
        """
        if scale is None and _kernels.applies(X):
            return _kernels.shifted_moments(X, s, c.to(X.dtype))
        block_rows = max(256, block_bytes // (8 * X.shape[1]))  # temporaries: ~3 float64 blocks of 4 MB
        m1 = torch.zeros(X.shape[1], dtype=f64, device=X.device)
        m2 = torch.zeros_like(m1)
        inv = None if scale is None else 1.0 / scale
        for start in range(0, X.shape[0], block_rows):
            D = X[start : start + block_rows].to(f64) - c  # (b, d) float64: one block only
            if inv is not None:
                D *= inv
            sb = s[start : start + block_rows].to(f64)
            m1 += sb @ D
            m2 += sb @ (D * D)
        return m1, m2

    def standardize(self, X):
        """The features the solver sees, in X's dtype: (x - mu) / sigma, or x / sigma without an intercept."""
        sigma = self.sigma.to(X.dtype)
        return (X - self.mu.to(X.dtype)) / sigma if self.fit_intercept else X / sigma

    def subset(self, columns):
        """The standardisation of the features ``columns`` only (a prox-Newton working set)."""
        return Standardizer(self.mu[columns], self.sigma[columns], self.k, self.fit_intercept, self.constant[columns])

    def correlation(self, X, s, max_rows, block_bytes=16 << 20):
        """R = sum_i s_i x'_i x'_i^T / sum_i s_i over at most ``max_rows`` evenly spaced rows.

        (d, d) float64. The rows are a deterministic sample: R only shapes a
        preconditioner, so its estimate needs no more rows than a few times d.
        """
        n, d = X.shape
        block_rows = max(256, block_bytes // (d * X.element_size()))
        rows = torch.linspace(0, n - 1, min(n, max_rows), device=X.device).round().long()
        R = torch.zeros(d, d, dtype=f64, device=X.device)
        for start in range(0, len(rows), block_rows):
            idx = rows[start : start + block_rows]
            Z = self.standardize(take_rows(X, idx)) * s[idx].sqrt()[:, None]  # (b, d), one block only
            R += (Z.T @ Z).to(f64)
        return R / float(s[rows].sum(dtype=f64))

    def to_theta(self, phi):
        V = phi[: self.k * self.d].view(self.k, self.d)
        W = V / self.sigma
        if not self.fit_intercept:
            return W.reshape(-1)
        return torch.cat([W.reshape(-1), phi[self.k * self.d :] - W @ self.mu])

    def to_phi(self, theta):
        W = theta[: self.k * self.d].view(self.k, self.d)
        if not self.fit_intercept:
            return (W * self.sigma).reshape(-1)
        return torch.cat([(W * self.sigma).reshape(-1), theta[self.k * self.d :] + W @ self.mu])

    def grad_to_phi(self, g):
        """A^T g: dF/dV = (dF/dW - dF/db mu^T) / sigma, dF/dc = dF/db."""
        gW = g[: self.k * self.d].view(self.k, self.d)
        if not self.fit_intercept:
            return (gW / self.sigma).reshape(-1)
        gb = g[self.k * self.d :]
        return torch.cat([((gW - gb[:, None] * self.mu) / self.sigma).reshape(-1), gb])


def _squares_out_of_range(m1, m2, dtype):
    """Whether a column's sum of squares overflowed, or lies where squares lose precision to underflow.

    The floor, 1e8 times the dtype's smallest normal number, leaves typical
    squares eight decades above it; m2 = 0 with m1 != 0 means all of them underflowed.
    """
    floor = 1e8 * torch.finfo(dtype).tiny
    return bool((~torch.isfinite(m2) | ((m2 < floor) & ((m2 > 0) | (m1 != 0)))).any())


def _column_scale(X, c, block_bytes):
    """(d,) float64 powers of two, each >= max_i |x_ij - c_j| (1 for a column equal to c)."""
    block_rows = max(256, block_bytes // (8 * X.shape[1]))
    top = torch.zeros(X.shape[1], dtype=f64, device=X.device)
    for start in range(0, X.shape[0], block_rows):
        top = torch.maximum(top, (X[start : start + block_rows].to(f64) - c).abs().amax(0))
    _, exponent = torch.frexp(top)  # top = m 2^e with 0.5 <= m < 1
    return torch.where(top > 0, torch.ldexp(torch.ones_like(top), exponent), torch.ones_like(top))


PRECONDITION_MAX_FEATURES = 4096
PRECONDITION_ROWS = 10_000  # rows a preconditioner is estimated from: at least this many, and 10 d


def preconditioner_rows(n, d):
    """How many evenly spaced rows a preconditioner's matrix is estimated from: min(n, max(10 d, 10,000)).
    It only shapes a preconditioner, so its estimate needs no more rows than a few times d."""
    return min(n, max(10 * d, PRECONDITION_ROWS))


PRECONDITION_MAX_PASSES = 20  # what a sparse X's correlation preconditioner may cost, in passes' multiply-adds


def correlation_affordable(X, k):
    """Whether the correlation preconditioner of an in-memory X with k outputs is formed.

    Dense X: where d <= ``PRECONDITION_MAX_FEATURES``. Its r d^2 multiply-adds
    (on r = :func:`preconditioner_rows` rows) are repaid many times over on
    correlated columns: measured on the 2-core Zen 5, 5,000 x 2,000 and
    20,000 x 1,000 random-walk columns took 16 L-BFGS iterations with it and
    over 3,800 without (0.2-0.5 s against 5-17 s); MNIST 180 against 1,000.
    Sparse X: its sampled rows are densified, so the same r d^2 is measured
    against a pass over its non-zeros, 2 k nnz, and the preconditioner is
    formed only where it costs at most ``PRECONDITION_MAX_PASSES`` passes: a
    20,000 x 3,000 X at 1% would pay ~170,000 (4.5 s against 0.18 s for the whole
    fit with the diagonal preconditioner, 24 iterations instead of 12).
    A count of multiply-adds, not a timing.
    """
    n, d = X.shape
    if d > PRECONDITION_MAX_FEATURES:
        return False
    if not is_sparse(X):
        return True
    r = preconditioner_rows(n, d)
    return r * d * d + d**3 <= PRECONDITION_MAX_PASSES * 2 * k * X.nnz


def correlation_preconditioner(std, X, s, l2s, curvature=0.02, floor=1e-6, R=None, scaled=False):
    """M v for L-BFGS: the inverse of the Hessian's shape at a typical point, per class.

    In standardised coordinates the Hessian block of class k is about
    c R + l2s diag(1 / sigma^2), with R the feature correlation matrix and c a
    typical curvature of the loss near the optimum, where most rows are fitted
    well and p (1 - p) is small (c = 0.02 took MNIST from over 1000 L-BFGS
    iterations to 180; 0.25, the value at p = 1/2, to 320). Correlated
    features (neighbouring pixels) are what leave plain L-BFGS with hundreds
    of iterations; M = (R + l2s / (c sigma^2) + floor)^-1 removes them.
    Intercepts and constant columns keep M = 1. Costs one (m, d) x (d, m)
    product with m ~ 10 d rows and a (d, d) Cholesky factorisation and inverse, once.
    ``R``: the correlation matrix where the caller has it (a :class:`torchlogit._compact.Design`
    forms it from every row in one product); it is modified in place.
    ``scaled``: return M / c, the inverse Hessian itself (intercepts 1 / c) where every row's curvature is
    c, so that the first L-BFGS step, before any curvature pair, is Newton's under that model (a caller
    that has measured c at its start point: :class:`torchlogit._folds.FoldsAtC`).
    """
    k, d = std.k, std.d
    if R is None:
        R = std.correlation(X, s, max_rows=preconditioner_rows(*X.shape))
    const = std.constant
    R[const, :] = 0.0
    R[:, const] = 0.0
    R.diagonal().add_(l2s / (curvature * std.sigma**2) + floor)
    R.diagonal()[const] = 1.0
    L, info = torch.linalg.cholesky_ex(R)
    if int(info):  # R + floor not positive definite in floating point: fall back to no preconditioner
        return None
    # M itself, (d, d) symmetric, so that each use is one product: cholesky_solve's two triangular solves
    # took 0.7 ms per use on MNIST (d = 784, 10 classes; V M 0.2 ms) and 39 ms at d = 4,096 (V M 5 ms).
    # Forming M costs about 20 uses at those sizes (8 ms, 0.9 s); L-BFGS uses it twice per iteration.
    M = torch.cholesky_inverse(L)

    unit = 1.0 / curvature  # scaled: M / c

    def apply(v):
        V = v[: k * d].view(k, d)
        Mv = torch.cat([(V @ M).reshape(-1), v[k * d :]])
        return Mv * unit if scaled else Mv

    return apply


def diagonal_preconditioner(std, l2s, curvature=0.02, scaled=False):
    """M v for L-BFGS on wide data: the diagonal of the correlation preconditioner (R_jj = 1).

    In standardised coordinates the penalty's curvature l2s / sigma_j^2 varies
    as widely as the columns' spreads (a rare word's sigma is tiny), which is
    what leaves L-BFGS many iterations on text; M = 1 / (c + l2s / sigma^2)
    takes it out at no cost. Intercepts and constant columns keep M = 1.
    ``scaled``: 1 / (c + l2s / sigma^2), and 1 / c on intercepts and constant columns, the inverse of the
    Hessian's diagonal where every row's curvature is c (as :func:`correlation_preconditioner`'s).
    """
    k, d = std.k, std.d
    m = 1.0 / (curvature + l2s / std.sigma**2)
    # scaled: the Hessian's units (intercepts and constant columns 1 / c); else M = 1 where the data term dominates
    icept = curvature if scaled else 1.0
    m = torch.where(std.constant, torch.full_like(m, 1.0 / icept), m if scaled else m / curvature)

    def apply(v):
        return torch.cat([(v[: k * d].view(k, d) * m).reshape(-1), v[k * d :] / icept])

    return apply


def fit_problem(problem, *, solver, w0, tol, max_iter, callback=None, sgd_options=None, std=None, precondition=None):
    """Minimise ``problem`` from ``w0`` (float64 flat theta) with the named solver.

    ``problem``: a :class:`~torchlogit._problem.Problem` (data in memory) or a
    :class:`~torchlogit._problem.StreamProblem` (blocks read at every pass).
    Returns a ``Result`` whose ``x`` is theta (float64), whose ``fun`` is the
    objective f and whose ``duality_gap`` bounds f - f* (None without a
    penalty, and for a stream, where it would take two more passes).
    ``std``: a precomputed :class:`Standardizer` for the exact solvers (a
    regularisation path shares one across its fits; a stream's comes from its
    first pass); None computes it from the problem's data. Any (mu, sigma)
    gives the same optimum: they only choose the coordinates the solver works in.
    ``precondition``: for ``lbfgs``, M v ~ H^-1 v in the coordinates of ``std``
    with the Hessian's units, used instead of the correlation preconditioner
    (a cross-validation's refit: its folds' sampled Hessian at that C).
    """
    if solver == "sgd":
        res = _fit_sgd(problem, w0, tol, max_iter, callback, sgd_options or {})
    elif solver == "newton-dual":
        res = _fit_representer(problem, w0, tol, max_iter, callback, std)
    else:
        res = _fit_exact(problem, solver, w0, tol, max_iter, callback, std, precondition)
    if res.duality_gap is None and problem.in_memory:  # (a fit on a Design has set it from there)
        res.duality_gap = duality_gap(problem, res.x, res.fun)
    return res


def _fit_exact(problem, solver, w0, tol, max_iter, callback, std=None, precondition=None):
    """lbfgs, newton or prox-newton in standardised coordinates (see the module docstring)."""
    datafit, dtype = problem.datafit, problem.dtype
    k_d = datafit.n_outputs * datafit.n_features

    design = _compact.Design(problem) if _compact.applies(problem) else None  # small: [X' 1] held once
    if std is None and design is not None:
        moments = design.moments()
        if moments is None:
            design = None  # squares out of float64's range: the general path scales them
        else:
            std = Standardizer.from_scale(*moments, datafit.n_outputs, datafit.fit_intercept)
    if std is None:
        std = Standardizer.from_data(problem.X, problem.s, datafit.n_outputs, datafit.fit_intercept)
    if design is not None:
        design.standardize(std)
    # P(W) = penalty(V) with V = W sigma; its L2 part joins the smooth function, its L1 part a prox
    smooth, rough = problem.penalty.rescaled(std.sigma).split()

    def data_term(phi):  # (L, grad_phi L)
        if design is not None:
            return design.loss_gradient(phi)
        f, g = problem.data_loss_gradient(std.to_theta(phi))
        return f, std.grad_to_phi(g)

    def fun_and_grad(phi):
        f, g = data_term(phi)
        if smooth.alpha:
            V = phi[:k_d].view(datafit.n_outputs, datafit.n_features)
            f = f + smooth.value(V)
            g[:k_d] += smooth.gradient(V).reshape(-1)
        return float(f), g

    # float32 logits make f accurate to about 10 eps32 relative (it is summed in float64)
    extra = {"f_rtol": 10 * torch.finfo(f64 if design is not None else dtype).eps}
    res = None
    if design is not None and callback is None:  # Newton and prox-Newton compiled whole, where they serve
        phi0 = std.to_phi(w0)
        res = _compact.compiled_solve(design, solver, smooth, rough, phi0, tol=tol, max_iter=max_iter, **extra)
    if res is None:
        if precondition is not None and solver == "lbfgs":
            extra.update(precondition=precondition, scaled=True)
        res = _run_solver(problem, solver, std, design, smooth, rough, fun_and_grad, w0, tol, max_iter, callback, extra)
    if design is not None and problem.penalty.alpha:  # the certificate from the design: no pass over X
        penalty = problem.penalty.rescaled(std.sigma)
        res.duality_gap = design_duality_gap(design, datafit.pointwise, penalty, res.x, res.fun)
    res.x = std.to_theta(res.x)
    return res


def _run_solver(problem, solver, std, design, smooth, rough, fun_and_grad, w0, tol, max_iter, callback, extra):
    """The torch solver ``solver`` on fun_and_grad in phi coordinates, with what it needs besides (``extra``)."""
    datafit = problem.datafit
    k_d = datafit.n_outputs * datafit.n_features
    if solver == "lbfgs" and "precondition" not in extra:
        rows = problem.preconditioner_rows()
        in_memory = design is None and problem.in_memory  # a design's R is one product over its rows
        affordable = correlation_affordable(problem.X, datafit.n_outputs) if in_memory else True
        if datafit.n_features <= PRECONDITION_MAX_FEATURES and rows is not None and affordable:
            R = None if design is None else design.correlation()
            extra["precondition"] = correlation_preconditioner(std, *rows, problem.penalty.l2, R=R)
        else:
            extra["precondition"] = diagonal_preconditioner(std, problem.penalty.l2)
    if solver == "newton":
        if design is None:
            extra["hessian"] = lambda phi: problem.hessian(std.to_theta(phi), std=std)
        else:
            design.fuse_hessian()
            extra["hessian"] = lambda phi: smooth.add_curvature(design.hessian(phi), phi[:k_d].view(1, -1))
    if solver == "prox-newton":
        extra.update(_working_set_parts(problem, std, smooth, rough, design))

    def report(info):  # the solver iterates in phi; callers see theta
        info.x = std.to_theta(info.x)
        return callback(info)

    return SOLVERS[solver](
        fun_and_grad, std.to_phi(w0), tol=tol, max_iter=max_iter, callback=None if callback is None else report, **extra
    )


def representer_applies(problem) -> bool:
    """Whether ``newton-dual`` solves ``problem``: binary, a pure L2 penalty, dense X in memory, n^2 <= 3 d.

    Then w = X^T beta (:mod:`torchlogit.solvers.representer`) and each Newton
    solve, (n + 1)^3 / 3 multiply-adds, costs less than one pass over X (n d);
    K = X X^T costs n^2 d once, in one GEMM. Arithmetic, not a timing: 3 x
    100,000 and 100 x 100,000 qualify, 1,000 x 100,000 goes to L-BFGS.
    """
    if not problem.in_memory or is_sparse(problem.X) or problem.datafit.pointwise is not BinaryCrossEntropy:
        return False
    penalty = problem.penalty
    n, d = problem.X.shape
    uniform = penalty.weights is None  # the theorem needs ||w||^2 itself as the penalty
    return uniform and penalty.alpha > 0 and penalty.l2 > 0 and not penalty.l1 and representer_shape(n, d)


def representer_shape(n, d) -> bool:
    """n^2 <= 3 d: a Newton solve in n dimensions costs less than a pass over an (n, d) X."""
    return n * n <= 3 * d


def _column_blocks(X, block_bytes=16 << 20):
    """X's column blocks as float64 (n, m) tensors, ~``block_bytes`` each: never X whole in float64."""
    step = max(1, block_bytes // (8 * X.shape[0]))
    for start in range(0, X.shape[1], step):
        yield start, X[:, start : start + step].to(f64)


def _fit_representer(problem, w0, tol, max_iter, callback, std=None):
    """newton-dual on ``problem`` (see ``representer_applies``): K = X X^T in float64, then n-dimensional Newton.

    Convergence is measured as for the other exact solvers: max|grad_phi|,
    the gradient with respect to the standardised coefficients, here
    A^T [X^T r, sum g] with r = g + l2 beta (the gradient in w of the data
    term plus l2 w, since w = X^T beta), summed in float64 from X's dtype
    as the other solvers' passes are.
    """
    datafit, X, y, s = problem.datafit, problem.X, problem.y, problem.s
    if std is None:
        std = Standardizer.from_data(X, s, 1, datafit.fit_intercept)
    l2, sw = problem.penalty.l2, s.to(f64)
    K = torch.zeros(X.shape[0], X.shape[0], dtype=f64, device=X.device)
    for _, block in _column_blocks(X):
        K += block @ block.T
    y64 = y.to(f64)

    def rows(z):  # sum_i s_i loss_i, s_i loss_i', s_i loss_i'' at logits z (n,)
        zc = z[:, None]
        g_z, state = datafit.pointwise.gradient_state(zc, y64)
        h = datafit.pointwise.hess_matvec(state, torch.ones_like(zc))[:, 0]
        return float((sw * datafit.pointwise.loss(zc, y64).reshape(-1)).sum()), sw * g_z[:, 0], sw * h

    def theta_of(beta, b):  # w = X^T beta: one product in X's dtype, as every pass of the other solvers
        w = (X.T @ beta.to(X.dtype)).to(f64)
        return torch.cat([w, b.reshape(1)]) if datafit.fit_intercept else w

    def grad_max(beta, b):
        z = K @ beta + b
        _, g, _ = rows(z)
        grad = theta_of(g + l2 * beta, g.sum())  # [X^T r, sum g]
        return float(std.grad_to_phi(grad).abs().max())

    def report(info):  # (beta, b) -> theta for the caller
        beta, b = _split(info.x, datafit.fit_intercept)
        info.x = theta_of(beta, b)
        return callback(info)

    b0 = float(w0[-1]) if datafit.fit_intercept else 0.0
    res = SOLVERS["newton-dual"](
        K,
        rows,
        l2=l2,
        fit_intercept=datafit.fit_intercept,
        b0=b0,
        grad_max=grad_max,
        tol=tol,
        max_iter=max_iter,
        callback=None if callback is None else report,
    )
    res.x = theta_of(*_split(res.x, datafit.fit_intercept))
    return res


def _split(x, fit_intercept):
    """(beta, b) from the representer solver's point."""
    return (x[:-1], x[-1]) if fit_intercept else (x, torch.zeros((), dtype=x.dtype, device=x.device))


COLUMN_MODEL_MIN_FEATURES = 256  # below, the dense working-set Hessian is cheap and CD on it fastest
COLUMN_CD_SWEEPS = 50  # an inexact inner solve (skglm caps its CD too): outer steps are cheaper than sweeps


class ColumnModel:
    """A binary working set's quadratic model on a sparse X's columns, minimised without forming its Hessian.

    The dense Hessian of a working set of m features costs m^2 memory and a
    sum of squared row counts to build, and each CD sweep on it m^2; on text
    with thousands of features in the support that is gigabytes. Here a sweep
    costs the working set's non-zeros (``_sparse_kernels.working_set_cd``):
    the columns are copied once per outer iteration (CSC, at most X's own
    non-zeros), the curvature weights w_i = s_i p_i (1 - p_i) come from one
    pass of logits.
    """

    def __init__(self, X, features, z, y, s, std, c2, fit_intercept):
        cols = features.cpu().numpy()
        self.csc = X.matrix[:, cols].tocsc()  # (n, m): the working set's columns only
        _, h = BinaryCrossEntropy.gradient_state(z, y.detach().cpu().to(f64))
        self.w = (s.detach().cpu().to(f64) * h[:, 0]).numpy()  # (n,)
        self.mu = (std.mu[features] if fit_intercept else torch.zeros(len(cols), dtype=f64)).cpu().numpy()
        self.inv_sigma = (1.0 / std.sigma[features]).cpu().numpy()
        self.c2, self.fit_intercept = c2.cpu().numpy(), fit_intercept

    def solve(self, g, x, lam, kkt):
        """The step d for [the working set's coordinates, then the intercept] from gradient g at x."""
        from . import _sparse_kernels as kern

        m = len(self.mu)
        gn, xn, lamn = (t.detach().cpu().numpy() for t in (g, x, lam))
        d, d_b, _ = kern.working_set_cd(
            self.csc.indptr,
            self.csc.indices,
            self.csc.data,
            self.mu,
            self.inv_sigma,
            self.w,
            gn[:m],
            xn[:m],
            lamn[:m],
            self.c2,
            float(gn[m]) if self.fit_intercept else 0.0,
            self.fit_intercept,
            1e-2 * kkt,
            COLUMN_CD_SWEEPS,
        )
        step = torch.from_numpy(np.append(d, d_b) if self.fit_intercept else d)
        return step.to(g.device)


def _working_set_parts(problem, std, smooth, rough, design=None):
    """prox-newton's lam, groups and hessian_ws for ``problem`` in phi coordinates.

    The data term's Hessian on a working set of features F is taken in
    standardised coordinates, restricted to F's columns (gathered one row block
    at a time, summed over the source's blocks); a small binary problem takes
    it from its :class:`torchlogit._compact.Design`; a large sparse binary
    working set in memory gets a :class:`ColumnModel` instead (no m x m matrix).
    """
    datafit = problem.datafit
    k, d = datafit.n_outputs, datafit.n_features
    X = problem.X if problem.in_memory else None
    column_model = X is not None and is_sparse(X) and datafit.pointwise is BinaryCrossEntropy and X._numba()
    sub_loss = {}

    def data_hessian(phi, features):
        if design is not None:  # binary: the working set's coordinates are its features and the intercept
            idx = torch.cat([features, torch.tensor([d])]) if datafit.fit_intercept else features
            return design.hessian(phi, idx)
        m = len(features)
        if m not in sub_loss:
            sub_loss[m] = LinearModelLoss(datafit.pointwise, m, k, datafit.fit_intercept)
        W, b = datafit.unpack(std.to_theta(phi))  # every weight outside the working set is 0
        theta = W[:, features].reshape(-1) if b is None else torch.cat([W[:, features].reshape(-1), b])
        return problem.data_hessian(theta, std=std.subset(features), loss=sub_loss[m], columns=features)

    def model(phi, features, c2):  # None: use the Hessian
        if not (column_model and len(features) >= COLUMN_MODEL_MIN_FEATURES):
            return None
        z = datafit.logits(std.to_theta(phi).to(X.dtype), X)
        return ColumnModel(X, features, z, problem.y, problem.s, std, c2, datafit.fit_intercept)

    return working_set_parts(datafit, std, smooth, rough, problem.device, data_hessian, model)


def working_set_parts(datafit, std, smooth, rough, device, data_hessian, model=None):
    """prox-newton's lam, groups and hessian_ws in phi coordinates, for any data source.

    Coordinates: phi = [V.ravel() (class-major, k d), c (k)]. The group of
    V[c, j] is its feature j (a feature's K coefficients enter the working
    set together); intercepts have no group (always in). lam = the L1 part's
    l1 w_j (w = 1 / sigma) on the weights, 0 on the intercepts.
    ``data_hessian(phi, features)``: the data term's Hessian in phi
    coordinates on the working set's coordinates (its features' weights,
    class-major, then the intercepts); the L2 part's curvature is added here.
    ``model(phi, features, c2)``: an optional replacement for the Hessian
    (see :class:`ColumnModel`), or None.
    """
    k, d = datafit.n_outputs, datafit.n_features
    lam = torch.zeros(datafit.n_params, dtype=f64, device=device)
    weights = rough._w(torch.zeros(d, dtype=f64, device=device)) * torch.ones(d, dtype=f64, device=device)
    lam[: k * d] = (rough.l1 * weights).repeat(k)
    groups = torch.full((datafit.n_params,), -1, dtype=torch.long, device=device)
    groups[: k * d] = torch.arange(d, device=device).repeat(k)
    w = smooth._w(torch.zeros(d, dtype=f64, device=device)) * torch.ones(d, dtype=f64, device=device)

    def hessian_ws(phi, features):
        m = len(features)
        c2 = smooth.l2 * w[features] ** 2  # (m,) the L2 part's curvature l2 w_j^2 on the working set's weights
        found = None if model is None else model(phi, features, c2)
        if found is not None:
            idx = features if not datafit.fit_intercept else torch.cat([features, torch.tensor([d], device=device)])
            return idx, found
        H = data_hessian(phi, features)
        H.diagonal()[: k * m] += c2.repeat(k)
        idx = (torch.arange(k, device=device)[:, None] * d + features[None, :]).reshape(-1)
        if datafit.fit_intercept:
            idx = torch.cat([idx, k * d + torch.arange(k, device=device)])
        return idx, H

    return {"lam": lam, "groups": groups, "hessian_ws": hessian_ws}


def sgd_forward_backward(pointwise, W, b, l2s):
    """step(xb, yb, scale) -> batch loss, after writing W.grad and b.grad in closed form.

    The batch loss is sum_batch scale_i loss_i + (l2s / 2) ||W||^2 (scale: a
    number or a (B, 1) column), an unbiased estimate of the objective when
    scale = (n / B) s_i. Its gradient, what loss.backward() would give:
    with r = scale * dloss/dz, dW = r^T X_b + l2s W and db = sum r.
    """

    def step(xb, yb, scale):
        with torch.no_grad():
            z = xb @ W.T if b is None else torch.addmm(b, xb, W.T)  # forward: (B, k) logits
            rows, g_z = pointwise.loss_and_gradient(z, yb)
            r = scale * g_z
            W.grad = r.T @ xb  # backward
            value = (rows[:, None] * scale).sum()
            if l2s:
                W.grad += l2s * W
                value = value + 0.5 * l2s * (W * W).sum()
            if b is not None:
                b.grad = r.sum(0)
        return value

    return step


def _fit_sgd(problem, w0, tol, max_iter, callback, options):
    """The lecture's loop over mini-batches, L1 by a proximal step; see :mod:`torchlogit.solvers.sgd`."""
    loss, X, y, s = problem.datafit, problem.X, problem.y, problem.s
    n = X.shape[0]
    model = LinearModel(loss.n_features, loss.n_outputs, bias=loss.fit_intercept).to(X.device, X.dtype)
    smooth, rough = problem.penalty.split()
    step = sgd_forward_backward(loss.pointwise, model.linear.weight, model.linear.bias, smooth.l2)
    # equal weights: scale 1 / B and no gather per batch; else weights relative to their mean, s n
    weights = None if bool((s == s[0]).all()) else s * n

    def fun_and_grad(theta):  # the report: f with the whole penalty; for an L1 part the KKT violation
        f, g = problem.smooth_part().loss_gradient(theta)
        if rough.alpha:
            W = problem.weights(theta.to(f64))
            f = f + rough.value(W)
            g = g.clone()
            g[: W.numel()] = rough.subdiff_distance(W, g[: W.numel()].view_as(W)).reshape(-1)
        return float(f), g

    return SOLVERS["sgd"](
        fun_and_grad,
        w0,
        tol=tol,
        max_iter=max_iter,
        callback=callback,
        params=model.parameters(),
        forward_backward=row_batches(step, X, y, weights),
        batches=make_batches(
            n, min(int(options.get("batch_size", 32)), n), random_state=options.get("random_state"), device=X.device
        ),
        optimizer=options.get("optimizer", "sgd"),
        learning_rate=options.get("learning_rate", 0.01),
        penalty=problem.penalty,
    )


__all__ = ["fit_problem", "Standardizer", "Result"]
