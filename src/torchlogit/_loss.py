"""The math: pointwise losses and the loss of a linear model, in logits.

Conventions, fixed once here for the whole package
-------------------------------------------------
Data:   X (n, d) in the compute dtype (float32 or float64), sample weights s (n,).
Model:  k outputs; k = 1 for binary logistic and linear regression, k = K >= 3
        for the multinomial (softmax) model. Parameters W (k, d), b (k,).
        The flat parameter vector is ``theta = cat([W.ravel(), b])`` of length
        k*d (+ k with an intercept): exactly the order of
        ``torch.nn.utils.parameters_to_vector(nn.Linear(d, k))``, so the
        closed-form functions and the lecture's ``nn.Module`` share one layout.
Logits: z = X @ W.T + b, shape (n, k).

The data term (what this module computes; a penalty on W is added by the
problem, see :mod:`torchlogit._problem` and :mod:`torchlogit.penalties`)::

    L(theta) = sum_i s_i * loss(z_i, y_i)

The estimators divide the sample weights by S = sum_i sample_weight_i before
calling the solvers (s_i = sw_i / S, and the penalty's strength by S too),
which keeps scikit-learn's minimiser and makes ``tol`` independent of n.

Pointwise losses, all in logits so that no probability is ever rounded to 0:

    binary       loss = log(1 + exp(z)) - y z                 (y in {0, 1})
    multinomial  loss = logsumexp(z) - z_y                     (y in 0..K-1)
    squared      loss = 0.5 (z - y)^2                          (identity link)

Derivatives with respect to z (per sample):

    binary       g = sigmoid(z) - y          h = p (1 - p)
    multinomial  g = softmax(z) - onehot(y)  H = diag(p) - p p^T
    squared      g = z - y                   h = 1

Objective values are accumulated in float64 even for float32 data: near the
optimum float32 sums are too coarse for a line search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import _kernels, _measured
from ._link import IdentityLink, SigmoidLink, SoftmaxLink
from ._sparse import is_sparse, linear
from ._sparse import rows as row_block

f64 = torch.float64


# --------------------------------------------------------------------------
# Pointwise losses: functions of the logits z (n, k) and the targets y (n,).
# --------------------------------------------------------------------------
class BinaryCrossEntropy:
    """-(y log p + (1 - y) log(1 - p)) with p = sigmoid(z); y float in {0, 1}."""

    link = SigmoidLink()
    multiclass = False

    @staticmethod
    def loss(z, y):
        return F.binary_cross_entropy_with_logits(z[:, 0], y, reduction="none")

    @staticmethod
    def gradient_state(z, y):
        """Returns dloss/dz (n, 1) and the Hessian diagonal h = p(1-p) (n, 1)."""
        p = torch.sigmoid(z)
        return p - y[:, None], p * (1.0 - p)

    @staticmethod
    def loss_and_gradient(z, y):
        """(loss (n,), dloss/dz (n, 1)) in one go: the fast path of a gradient pass."""
        return BinaryCrossEntropy.loss(z, y), torch.sigmoid(z) - y[:, None]

    @staticmethod
    def hess_matvec(h, dz):
        return h * dz

    @staticmethod
    def conjugate(u, y):
        """L*(u) per row for u = dloss/dz (n, 1): q log q + (1 - q) log(1 - q), q = u + y in [0, 1]."""
        q = (u[:, 0] + y).clamp(0.0, 1.0)
        return torch.special.xlogy(q, q) + torch.special.xlogy(1.0 - q, 1.0 - q)


class MultinomialCrossEntropy:
    """logsumexp(z) - z_y with y int64 class indices; a true softmax over K logits."""

    link = SoftmaxLink()
    multiclass = True

    @staticmethod
    def loss(z, y):
        return torch.logsumexp(z, dim=1) - z.gather(1, y[:, None])[:, 0]

    @staticmethod
    def gradient_state(z, y):
        """Returns dloss/dz = p - onehot(y) (n, K) and the state p (n, K)."""
        p = torch.softmax(z, dim=1)
        g = p.clone()
        g[torch.arange(len(y), device=y.device), y] -= 1.0
        return g, p

    @staticmethod
    def loss_and_gradient(z, y):
        """One logsumexp serves both: loss = lse - z_y, dloss/dz = exp(z - lse) - onehot(y)."""
        lse = torch.logsumexp(z, dim=1)  # (n,)
        g = torch.exp(z - lse[:, None])
        rows = torch.arange(len(y), device=y.device)
        loss = lse - z[rows, y]
        g[rows, y] -= 1.0
        return loss, g

    @staticmethod
    def hess_matvec(p, dz):
        # (diag(p) - p p^T) dz, row by row: p * (dz - <p, dz>)
        return p * (dz - (p * dz).sum(dim=1, keepdim=True))

    @staticmethod
    def conjugate(u, y):
        """L*(u) per row for u = dloss/dz (n, K): sum_k q_k log q_k, q = u + onehot(y) in the simplex."""
        q = u.clone()
        q[torch.arange(len(y), device=y.device), y] += 1.0
        q = q.clamp(0.0, 1.0)
        return torch.special.xlogy(q, q).sum(dim=1)


class HalfSquaredError:
    """0.5 (z - y)^2: linear regression, the lecture's contrast."""

    link = IdentityLink()
    multiclass = False

    @staticmethod
    def loss(z, y):
        return 0.5 * (z[:, 0] - y) ** 2

    @staticmethod
    def gradient_state(z, y):
        return z - y[:, None], torch.ones_like(z)

    @staticmethod
    def loss_and_gradient(z, y):
        r = z - y[:, None]
        return 0.5 * r[:, 0] ** 2, r

    @staticmethod
    def hess_matvec(h, dz):
        return dz

    @staticmethod
    def conjugate(u, y):
        """L*(u) per row for u (n, 1): u^2 / 2 + u y."""
        return 0.5 * u[:, 0] ** 2 + u[:, 0] * y


POINTWISE = {
    "binary": BinaryCrossEntropy,
    "multinomial": MultinomialCrossEntropy,
    "squared": HalfSquaredError,
}


# --------------------------------------------------------------------------
# The loss of the linear model.
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearModelLoss:
    """Objective, gradient, Hessian-vector product and Hessian of a linear model.

    ``pointwise`` is one of the classes above; see the module docstring for the
    parameter layout and the objective. All methods take the flat ``theta`` in
    the data's dtype and return float64 objective values and gradients.
    """

    pointwise: type
    n_features: int
    n_outputs: int
    fit_intercept: bool = True

    @property
    def n_params(self) -> int:
        return self.n_outputs * (self.n_features + int(self.fit_intercept))

    def unpack(self, theta):
        """theta (p,) -> W (k, d), b (k,) or None. Views, no copies."""
        k, d = self.n_outputs, self.n_features
        W = theta[: k * d].view(k, d)
        b = theta[k * d :] if self.fit_intercept else None
        return W, b

    def logits(self, theta, X):
        """z = X @ W.T + b, shape (n, k): the forward pass of ``nn.Linear``."""
        W, b = self.unpack(theta)
        return linear(X, W, b)

    def objective(self, theta, X, y, sw):
        """L(theta) as a float64 scalar; differentiable, so autograd can check us."""
        z = self.logits(theta, X)
        return (self.pointwise.loss(z, y).to(f64) * sw.to(f64)).sum()

    def reads_once(self, X) -> bool:
        """Whether ``loss_gradient`` on X is one read of X (a fused kernel), not two."""
        if self.pointwise is MultinomialCrossEntropy:
            return not is_sparse(X) and self._multinomial_kernel(X)
        if self.pointwise is not BinaryCrossEntropy:
            return False
        if is_sparse(X):  # the kernel runs at every size; a pass counts as cheap from the same size as dense
            return X.fuses_binary() and X.nnz >= _kernels.MIN_ELEMENTS
        return _kernels.applies(X)

    def loss_gradient(self, theta, X, y, sw, block_bytes=16 << 20):
        """(f, grad): f a float64 scalar tensor, grad float64 of shape (p,).

        One pass over X in row blocks of about ``block_bytes``: each block's
        logits, loss and residual r = s * dloss/dz are computed while the
        block is still in cache, and X_b^T r is accumulated in float64. On
        MNIST (60,000 x 784, 10 classes, 2 cores) this takes 30 ms against 48
        ms for the whole-matrix version; on a GPU one block is the whole X.
        Large binary problems on the CPU go to a numba kernel that reads X
        only once (:mod:`torchlogit._kernels`).
        """
        d = X.shape[1]
        W, b = self.unpack(theta)
        if is_sparse(X) and self.pointwise is BinaryCrossEntropy and X.fuses_binary():
            f_value, g_w, g_b = X.binary_loss_gradient(W[0], 0.0 if b is None else float(b[0]), y, sw)
            f, gW, gb = torch.tensor(f_value, dtype=f64), g_w.view(1, d), torch.tensor([g_b], dtype=f64)
        elif self.pointwise is BinaryCrossEntropy and self.reads_once(X) and y.dtype == sw.dtype == X.dtype:
            f_value, g = _kernels.binary_loss_gradient(X, W[0], 0.0 if b is None else float(b[0]), y, sw)
            f, gW, gb = torch.tensor(f_value, dtype=f64), g[:d].view(1, d), g[d:]
        elif self.pointwise is MultinomialCrossEntropy and sw.dtype == X.dtype and self.reads_once(X):
            bias = torch.zeros(self.n_outputs, dtype=X.dtype) if b is None else b
            f_value, gW, gb = _kernels.multinomial_loss_gradient(X, W, bias, y, sw)
            f = torch.tensor(f_value, dtype=f64)
        elif is_sparse(X):  # the whole X W^T at once: (n, k) logits, then one X^T r
            loss, g_z = self.pointwise.loss_and_gradient(X.linear(W, b), y)
            r = sw.to(f64)[:, None] * g_z.to(f64)
            f, gW, gb = (loss.to(f64) * sw.to(f64)).sum(), X.rmatmul(r), r.sum(dim=0)
        else:
            f, gW, gb = self._loss_gradient_blocks(W, b, X, y, sw, block_bytes)
        grad = torch.cat([gW.reshape(-1), gb]) if self.fit_intercept else gW.reshape(-1)
        return f, grad

    def _multinomial_kernel(self, X) -> bool:
        """Whether the fused softmax kernel serves X's passes: it applies (``_kernels.applies``) and it was
        measured faster than torch's pass on this machine for this shape (once, kept by ``_measured``).

        The kernel is compute-bound (K d multiply-adds a row twice, in numba's loops) where torch's pass
        reads X twice through BLAS GEMMs whose speed depends on the CPU's dispatch: measured on MNIST
        (60,000 x 784, K = 10, float32, 2-core AMD EPYC) 18 ms against torch's 34 ms a pass.
        """
        if not _kernels.applies(X):
            return False
        k, d = self.n_outputs, X.shape[1]
        if _measured.fixed_choices():
            return True  # the test suite's machine-independent setting: the kernel wherever it applies
        return (
            _measured.fastest(f"multinomial pass {d} x {k}, {X.dtype}", lambda: self._time_passes(d, k, X.dtype))
            == "kernel"
        )

    def _time_passes(self, d, k, dtype):
        """{'kernel': s, 'torch': s}: one pass each over random (n, d) data with n = 2^21 / d + 1 rows."""
        g = torch.Generator().manual_seed(0)
        n = _kernels.MIN_ELEMENTS // d + 1
        X = torch.randn(n, d, generator=g, dtype=dtype)
        y = torch.randint(0, k, (n,), generator=g)
        s = torch.full((n,), 1.0 / n, dtype=dtype)
        W, b = 0.01 * torch.randn(k, d, generator=g, dtype=dtype), torch.zeros(k, dtype=dtype)
        return {
            "kernel": _measured.seconds(lambda: _kernels.multinomial_loss_gradient(X, W, b, y, s, False), X.device),
            "torch": _measured.seconds(lambda: self._loss_gradient_blocks(W, b, X, y, s, 16 << 20), X.device),
        }

    def _loss_gradient_blocks(self, W, b, X, y, sw, block_bytes):
        """(sum_i s_i loss_i, X^T r, sum_i r_i) in float64 over row blocks, with torch."""
        n, d = X.shape
        rows = n if X.device.type != "cpu" else max(1024, block_bytes // max(1, d * X.element_size()))
        Wt = W.T.contiguous()  # (d, k)
        # X W^T + b by the layout measured fastest on this machine for this block shape (_measured.LOGITS)
        product = _measured.LOGITS[_measured.logits_layout(min(rows, n), d, self.n_outputs, X.dtype, str(X.device))]
        f = torch.zeros((), dtype=f64, device=X.device)
        gW = torch.zeros(W.shape, dtype=f64, device=X.device)
        gb = torch.zeros(self.n_outputs, dtype=f64, device=X.device)
        for start in range(0, n, rows):
            Xb, yb, sb = X[start : start + rows], y[start : start + rows], sw[start : start + rows]
            z = product(Xb, W, Wt, b)  # (m, k)
            loss, g_z = self.pointwise.loss_and_gradient(z, yb)
            f += (loss * sb).sum(dtype=f64)
            r = sb[:, None] * g_z  # (m, k)
            gW += (r.T @ Xb).to(f64)
            gb += r.sum(dim=0, dtype=f64)
        return f, gW, gb

    def gradient_hessp(self, theta, X, y, sw):
        """(grad, hessp) where hessp(v) = H @ v, both float64 of shape (p,).

        For a direction v = (V, c): dz = X V^T + c (n, k), then
        H v = X^T [s * h(dz)], with h the pointwise Hessian applied to dz.
        """
        z = self.logits(theta, X)
        g_z, state = self.pointwise.gradient_state(z, y)
        grad = self._backproject(X, sw[:, None] * g_z)

        def hessp(v):
            dz = self.logits(v.to(X.dtype), X)
            return self._backproject(X, sw[:, None] * self.pointwise.hess_matvec(state, dz))

        return grad, hessp

    def hessian(self, theta, X, y, sw, block_bytes=4 << 20, std=None, columns=None, exact=False):
        """The full (p, p) Hessian in float64, built over row blocks of X.

        Only for problems where p^2 fits in memory (the newton solver). Each
        block's product X1^T diag(w) X1 runs in X's dtype (a float32 GEMM for
        float32 data, the costly part) and is summed in float64: the Hessian
        only shapes Newton's direction, and a relative error of ~1e-6 in it
        costs no accuracy of the optimum (the gradient is exact in float64).

        ``std`` (a :class:`torchlogit._fit.Standardizer`): the Hessian with
        respect to phi, the parameters of the standardised features
        x' = (x - mu) / sigma (theta = A phi), i.e. A^T H A, built from
        standardised blocks: [X' 1]^T diag(w) [X' 1]. Unlike H itself it
        neither overflows for |x| ~ 1e20 in float32 (1e160 in float64) nor
        underflows for |x| ~ 1e-30.

        ``columns`` (m,) int64: the Hessian for those features only (and the
        intercepts), in the layout [W[:, columns].ravel(), b]; this loss then
        has m features, ``theta`` holds only those columns' coefficients (all
        others must be 0, so the logits are exact) and ``std`` standardises
        those columns. Only the block's columns are gathered: a working set
        of a prox-Newton step costs no copy of X.

        Softmax: H is singular along the directions that add one vector to
        every class (see :func:`fill_softmax_null_space`); the problem adds the
        penalty's curvature and then fills what is still singular.

        ``exact``: every product in float64 (each block converted on its own):
        the information matrix of Wald inference, where the Hessian is the
        answer rather than a step direction.
        """
        k = self.n_outputs
        d = self.n_features if columns is None else len(columns)
        d1 = d + int(self.fit_intercept)
        H = torch.zeros(k * d1, k * d1, dtype=f64, device=X.device)
        dt = f64 if exact else X.dtype
        # row blocks of ~4 MB of (m, k d1) temporaries: few enough that small problems are one block
        block_rows = max(16, block_bytes // (k * d1 * X.element_size()))
        if is_sparse(X) and not self.pointwise.multiclass:
            return self._sparse_binary_hessian(theta, X, y, sw, std, columns)
        for start in range(0, X.shape[0], block_rows):
            Xb = row_block(X, start, start + block_rows, columns).to(dt)  # (m, d): the block (and working set)
            zb = self.logits(theta, Xb).to(f64)
            if std is not None:
                Xb = std.standardize(Xb)  # (m, d) in the solver's coordinates
            yb, sb = y[start : start + block_rows], sw[start : start + block_rows].to(f64)
            _, state = self.pointwise.gradient_state(zb, yb)
            if not self.pointwise.multiclass:  # k = 1: [X 1]^T diag(s h) [X 1], without building [X 1]
                w = sb * state[:, 0]  # (m,) float64
                H[:d, :d] += (Xb.T @ (Xb * w.to(dt)[:, None])).to(f64)
                if self.fit_intercept:
                    xw = (w.to(dt) @ Xb).to(f64)  # (d,)
                    H[d, :d] += xw
                    H[:d, d] += xw
                    H[d, d] += w.sum()
                continue
            if self.fit_intercept:
                Xb = torch.cat([Xb, torch.ones(len(Xb), 1, dtype=dt, device=X.device)], 1)
            # Block (k, l) = X1^T diag(s (p_k delta_kl - p_k p_l)) X1.
            p = state  # (m, K)
            for c in range(k):
                H[c * d1 : (c + 1) * d1, c * d1 : (c + 1) * d1] += (Xb.T @ (Xb * (sb * p[:, c]).to(dt)[:, None])).to(
                    f64
                )
            Z = (p.to(dt)[:, :, None] * Xb[:, None, :]).reshape(len(Xb), k * d1)  # (m, K*d1)
            H -= (Z.T @ (Z * sb.to(dt)[:, None])).to(f64)
        if k > 1:  # class-block order (class, feature-or-intercept) -> theta order [W.ravel(), b]
            idx = torch.arange(k * d1, device=X.device).view(k, d1)
            order = idx[:, :d].reshape(-1)
            if self.fit_intercept:
                order = torch.cat([order, idx[:, d]])
            H = H[order][:, order]
        return H

    def _sparse_binary_hessian(self, theta, X, y, sw, std, columns):
        """[Z 1]^T diag(w) [Z 1] for a sparse X without densifying it, w = s h (h = p (1 - p), or 1 for squares).

        With Z = (X - 1 mu^T) / sigma (``std``; mu = 0 without an intercept):
        Z^T D Z = S^-1 (G - a mu^T - mu a^T + c mu mu^T) S^-1 with G = X^T D X
        (a sparse sandwich, nnz-bound), a = X^T D 1, c = 1^T D 1; Z^T D 1 =
        S^-1 (a - c mu). Only the working set's ``columns`` are taken.
        """
        W, b = self.unpack(theta)
        b0 = 0.0 if b is None else float(b[0])
        if X.fuses_binary() and self.pointwise in (BinaryCrossEntropy, HalfSquaredError):  # one read of X
            cols = torch.arange(X.shape[1]) if columns is None else columns
            G, a, c = X.working_set_gram(cols, W[0], b0, y, sw, logistic=self.pointwise is BinaryCrossEntropy)
        else:  # scipy: the working set's columns copied, then a sparse sandwich
            Xs = X.matrix if columns is None else X.columns_matrix(columns)
            z = (Xs @ W[0].detach().to("cpu", f64).numpy()) + b0
            _, h = self.pointwise.gradient_state(torch.from_numpy(z)[:, None], y.detach().cpu().to(f64))
            w = sw.detach().to("cpu", f64).numpy() * h[:, 0].numpy()  # (n,) s_i times the loss's curvature at z_i
            G = np.asarray((Xs.T @ Xs.multiply(w[:, None]).tocsc()).todense())  # (m, m)
            a = np.asarray(Xs.T @ w).ravel()  # (m,)
            c = float(w.sum())
        if std is not None and self.fit_intercept:
            mu, inv = std.mu.cpu().numpy(), 1.0 / std.sigma.cpu().numpy()
            G = (G - np.outer(a, mu) - np.outer(mu, a) + c * np.outer(mu, mu)) * np.outer(inv, inv)
            a = (a - c * mu) * inv
        elif std is not None:
            inv = 1.0 / std.sigma.cpu().numpy()
            G, a = G * np.outer(inv, inv), a * inv
        m = G.shape[0]
        H = torch.zeros(m + int(self.fit_intercept), m + int(self.fit_intercept), dtype=f64)
        H[:m, :m] = torch.from_numpy(G)
        if self.fit_intercept:
            H[m, :m] = H[:m, m] = torch.from_numpy(a)
            H[m, m] = c
        return H.to(X.device)

    def fill_softmax_null_space(self, H, penalized):
        """Make a softmax Hessian positive definite without changing its Newton steps; H is changed in place.

        Adding one vector to every class's parameters leaves the probabilities
        unchanged, so H is singular along 1_K (x) e for every coordinate e
        (a feature, or the intercept) that the penalty does not touch
        (``penalized``: a (p,) bool mask in theta's layout). The gradient has
        no component there (its sum over classes vanishes for those
        coordinates), so adding c (1 1^T / K) (x) e e^T keeps the Newton step
        H^+ g and makes H invertible; c is the free coordinates' mean curvature.
        """
        k, d = self.n_outputs, self.n_features
        free = ~penalized
        if not self.pointwise.multiclass or not bool(free.any()):
            return H
        c = H.diagonal()[free].mean().clamp_min(1e-12)
        # coordinates (class c, feature j) of the same j form one null direction
        feature_of = torch.cat([torch.arange(d).repeat(k), d + torch.zeros(k, dtype=torch.long)])
        feature_of = feature_of[: self.n_params].to(H.device)
        same = (feature_of[:, None] == feature_of[None, :]) & free[:, None] & free[None, :]
        H += same.to(f64) * (c / k)
        return H

    # ----------------------------------------------------------------------
    def _backproject(self, X, r):
        """X^T r for the weights and r summed for the intercept, float64 (p,); r (n, k) = s * dloss/dz."""
        parts = [(X.rmatmul(r) if is_sparse(X) else (r.T @ X).to(f64)).reshape(-1)]
        if self.fit_intercept:
            parts.append(r.sum(dim=0, dtype=f64))
        return torch.cat(parts)
