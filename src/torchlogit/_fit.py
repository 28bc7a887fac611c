"""Glue between a loss, data tensors and a solver; shared by every estimator.

``fit_linear`` minimises (see :mod:`torchlogit._loss`)

    f(theta) = sum_i sw_i loss_i + 0.5 * l2 * ||W||^2

divided by S = sum_i sw_i, so that ``tol`` means the same for 10 rows or 10
million. The exact solvers (newton, lbfgs) run in standardised coordinates:

    x' = (x - mu) / sigma,    W = V / sigma,    b = c - W @ mu

a linear change of variables theta = A phi applied to the parameters (never to
X, which is not copied). The penalty stays on W, so the minimiser is the same;
only the conditioning changes, which is why unscaled data converges without
warnings. ``tol`` bounds max|grad_phi|, the gradient with respect to the
coefficients of standardised features (equal to the raw gradient on data that
is already standardised).
"""

from __future__ import annotations

import torch

from . import _kernels
from ._certificate import duality_gap
from .nn import LinearModel
from .solvers import SOLVERS, Result, make_batches

f64 = torch.float64


class Standardizer:
    """theta = A phi for one (mu, sigma) per feature; see the module docstring."""

    def __init__(self, mu, sigma, n_outputs, fit_intercept, constant=None):
        self.mu, self.sigma = mu, sigma  # (d,) float64 each
        self.k, self.d, self.fit_intercept = n_outputs, len(mu), fit_intercept
        self.constant = torch.zeros(len(mu), dtype=torch.bool, device=mu.device) if constant is None else constant

    @classmethod
    def from_moments(cls, mu, var, n_outputs, fit_intercept):
        """From column means and variances (float64); constant columns keep sigma = 1."""
        sigma = var.sqrt()
        constant = sigma <= 1e-7 * torch.maximum(mu.abs(), torch.ones_like(mu))
        sigma[constant] = 1.0  # constant columns: leave them as they are
        return cls(mu, sigma, n_outputs, fit_intercept, constant)

    @classmethod
    def from_data(cls, X, s, n_outputs, fit_intercept, block_bytes=4 << 20):
        """Weighted column means and variances (s sums to 1) in one pass over row blocks.

        Moments are taken about a shift c (the mean of <= 1000 evenly spaced
        rows, 0 without an intercept): with D = x - c,

            mu = c + sum_i s_i D_i,    var = sum_i s_i D_i^2 - (mu - c)^2.

        Block products run in X's dtype (fast: float32 GEMV) and are summed in
        float64. Because c is close to the mean, the subtraction loses little;
        if it lost more than a factor 1000 (c far from the mean: unusual row
        order) a second pass centres on mu itself. mu and sigma only choose the
        coordinates the solver works in, so their rounding cannot move the optimum.
        """
        n, d = X.shape
        block_rows = max(256, block_bytes // (d * X.element_size()))  # temporaries: two blocks of ~4 MB
        if fit_intercept:
            sample = torch.linspace(0, n - 1, min(n, 1000), device=X.device).round().long()
            c = X[sample].mean(dim=0, dtype=f64).to(X.dtype)
        else:
            c = torch.zeros(d, dtype=X.dtype, device=X.device)
        m1, m2 = cls._moments(X, s, c, block_rows)
        mu, var = c.to(f64) + m1, m2 - m1 * m1
        if fit_intercept and bool((var < 1e-3 * m2).any()):
            m1, m2 = cls._moments(X, s, mu.to(X.dtype), block_rows)
            var = m2 - m1 * m1
        if not fit_intercept:
            mu = torch.zeros_like(mu)  # no centring: the scale is the root mean square
        return cls.from_moments(mu, var.clamp_min(0.0) if fit_intercept else m2, n_outputs, fit_intercept)

    @staticmethod
    def _moments(X, s, c, block_rows):
        """(sum_i s_i D_i, sum_i s_i D_i^2) with D = x - c, float64 (d,) each."""
        if _kernels.applies(X):
            return _kernels.shifted_moments(X, s, c)
        m1 = torch.zeros(X.shape[1], dtype=f64, device=X.device)
        m2 = torch.zeros_like(m1)
        for start in range(0, X.shape[0], block_rows):
            D = X[start : start + block_rows] - c  # (b, d): one block only
            sb = s[start : start + block_rows]
            m1 += (sb @ D).to(f64)
            m2 += (sb @ (D * D)).to(f64)
        return m1, m2

    def correlation(self, X, s, max_rows, block_bytes=16 << 20):
        """R = sum_i s_i x'_i x'_i^T / sum_i s_i over at most ``max_rows`` evenly spaced rows.

        (d, d) float64. The rows are a deterministic sample: R only shapes a
        preconditioner, so its estimate needs no more rows than a few times d.
        """
        n, d = X.shape
        block_rows = max(256, block_bytes // (d * X.element_size()))
        rows = torch.linspace(0, n - 1, min(n, max_rows), device=X.device).round().long()
        R = torch.zeros(d, d, dtype=f64, device=X.device)
        mu, sigma = self.mu.to(X.dtype), self.sigma.to(X.dtype)
        for start in range(0, len(rows), block_rows):
            idx = rows[start : start + block_rows]
            Z = (X[idx] - mu) / sigma * s[idx].sqrt()[:, None]  # (b, d), one block only
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

    def matrix(self, n_params):
        """A as a dense (p, p) matrix, for transforming a Hessian: A^T H A.

        Rows/columns in the order [W.ravel(), b] / [V.ravel(), c]:
        dW_kj/dV_kj = 1 / sigma_j, db_k/dV_kj = -mu_j / sigma_j, db_k/dc_k = 1.
        """
        k, d = self.k, self.d
        A = torch.zeros(n_params, n_params, dtype=f64, device=self.mu.device)
        weights = torch.arange(k * d, device=self.mu.device)
        A[weights, weights] = (1.0 / self.sigma).repeat(k)
        if self.fit_intercept:
            for c in range(k):
                A[k * d + c, c * d : (c + 1) * d] = -self.mu / self.sigma
                A[k * d + c, k * d + c] = 1.0
        return A


PRECONDITION_MAX_FEATURES = 4096


def correlation_preconditioner(std, X, s, l2s, curvature=0.02, floor=1e-6):
    """M v for L-BFGS: the inverse of the Hessian's shape at a typical point, per class.

    In standardised coordinates the Hessian block of class k is about
    c R + l2s diag(1 / sigma^2), with R the feature correlation matrix and c a
    typical curvature of the loss near the optimum, where most rows are fitted
    well and p (1 - p) is small (c = 0.02 took MNIST from over 1000 L-BFGS
    iterations to 180; 0.25, the value at p = 1/2, to 320). Correlated
    features (neighbouring pixels) are what leave plain L-BFGS with hundreds
    of iterations; M = (R + l2s / (c sigma^2) + floor)^-1 removes them.
    Intercepts and constant columns keep M = 1. Costs one (m, d) x (d, m)
    product with m ~ 10 d rows and a (d, d) Cholesky factorisation, once.
    """
    k, d = std.k, std.d
    R = std.correlation(X, s, max_rows=max(10 * d, 10000))
    const = std.constant
    R[const, :] = 0.0
    R[:, const] = 0.0
    R.diagonal().add_(l2s / (curvature * std.sigma**2) + floor)
    R.diagonal()[const] = 1.0
    L, info = torch.linalg.cholesky_ex(R)
    if int(info):  # R + floor not positive definite in floating point: fall back to no preconditioner
        return None

    def apply(v):
        V = v[: k * d].view(k, d)
        return torch.cat([torch.cholesky_solve(V.T, L).T.reshape(-1), v[k * d :]])

    return apply


def fit_linear(loss, X, y, sw, l2, *, solver, w0, tol, max_iter, callback=None, sgd_options=None):
    """Minimise ``loss`` on (X, y, sw) from ``w0`` with the named solver.

    X (n, d) and y on one device; sw (n,) in X's dtype; l2 = 1/C or 0.
    w0: float64 flat theta. Returns a ``Result`` whose ``x`` is theta (float64)
    and whose ``fun`` is the objective divided by sum(sw).
    """
    S = float(sw.sum(dtype=f64))
    s = sw / S  # (n,) normalised weights: the objective becomes a weighted mean
    l2s = l2 / S

    if solver == "sgd":
        res = _fit_sgd(loss, X, y, s, l2s, w0, tol, max_iter, callback, sgd_options or {})
    else:
        res = _fit_exact(loss, X, y, s, l2s, solver, w0, tol, max_iter, callback)
    res.duality_gap = duality_gap(loss, res.x, res.fun, X, y, s, l2s)
    return res


def _fit_exact(loss, X, y, s, l2s, solver, w0, tol, max_iter, callback):
    """newton or lbfgs in standardised coordinates (see the module docstring)."""
    dtype = X.dtype

    std = Standardizer.from_data(X, s, loss.n_outputs, loss.fit_intercept)

    def fun_and_grad(phi):
        f, g = loss.loss_gradient(std.to_theta(phi).to(dtype), X, y, s, l2s)
        return float(f), std.grad_to_phi(g)

    # float32 logits make f accurate to about 10 eps32 relative (it is summed in float64)
    extra = {"f_rtol": 10 * torch.finfo(dtype).eps}
    if solver == "lbfgs" and X.shape[1] <= PRECONDITION_MAX_FEATURES:
        extra["precondition"] = correlation_preconditioner(std, X, s, l2s)
    if solver == "newton":
        A = std.matrix(loss.n_params)

        def hessian(phi):
            H = loss.hessian(std.to_theta(phi).to(dtype), X, y, s, l2s)
            return A.T @ H @ A

        extra["hessian"] = hessian
    res = SOLVERS[solver](fun_and_grad, std.to_phi(w0), tol=tol, max_iter=max_iter, callback=callback, **extra)
    res.x = std.to_theta(res.x)
    return res


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


def _fit_sgd(loss, X, y, s, l2s, w0, tol, max_iter, callback, options):
    """The lecture's loop over mini-batches; see :mod:`torchlogit.solvers.sgd`."""
    n = X.shape[0]
    model = LinearModel(loss.n_features, loss.n_outputs, bias=loss.fit_intercept).to(X.device, X.dtype)
    step = sgd_forward_backward(loss.pointwise, model.linear.weight, model.linear.bias, l2s)
    uniform = float(s[0]) if bool((s == s[0]).all()) else 0.0  # equal weights: skip one gather per batch

    def forward_backward(idx):
        scale = uniform * (n / len(idx)) if uniform else s[idx][:, None] * (n / len(idx))
        return step(X[idx], y[idx], scale)

    def fun_and_grad(theta):
        f, g = loss.loss_gradient(theta.to(X.dtype), X, y, s, l2s)
        return float(f), g

    batches = make_batches(n, min(int(options.get("batch_size", 32)), n),
                           random_state=options.get("random_state"), device=X.device)  # fmt: skip
    return SOLVERS["sgd"](
        fun_and_grad, w0, tol=tol, max_iter=max_iter, callback=callback, params=model.parameters(),
        forward_backward=forward_backward, batches=batches,
        optimizer=options.get("optimizer", "sgd"), learning_rate=options.get("learning_rate", 0.01),
    )  # fmt: skip


__all__ = ["fit_linear", "Standardizer", "Result"]
