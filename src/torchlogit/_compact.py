"""Small dense binary problems: the standardised design held once, and f, g, H from it in a few torch calls.

The general path (:class:`torchlogit._problem.Problem` through
:class:`torchlogit._loss.LinearModelLoss`) never copies X: every evaluation
standardises its row blocks on the fly and converts between theta and the
solver's coordinates phi (see :mod:`torchlogit._fit`). On a large X that is
right; on a small one the arithmetic is a few microseconds and what costs is
the number of torch calls (on 1,000 x 10, ~1,500 per fit, ~2 ms, against
~0.5 ms of arithmetic and scikit-learn's whole fit of 1.1 ms).

So when [X' 1] in float64 takes at most ``COMPACT_BYTES``, it is built once,

    A = [(X - mu) / sigma, 1]    (n, d + 1) float64,   z = A phi,

and the solvers' functions are a handful of calls each:

    f = sum_i s_i loss(z_i, y_i),   g = A^T r (r = s (p - y)),   H = A^T diag(s p (1 - p)) A.

The same objective in the same coordinates as the general path (only more
digits for float32 data, whose products the general path forms in float32),
so the solvers, their stopping rules and the certificate are unchanged.
Binary only: a multinomial Hessian's K^2 blocks are the general path's.
"""

from __future__ import annotations

import torch

from ._loss import BinaryCrossEntropy
from ._sparse import is_sparse

f64 = torch.float64

# Bytes of the float64 copy [X' 1]: 2^20 entries (e.g. 50,000 x 20). A size, not a timing: the copy
# stays within a few MiB, and beyond ~1e6 entries the arithmetic dominates the calls anyway.
COMPACT_BYTES = 8 << 20


def applies(problem) -> bool:
    """Whether ``problem`` gets a :class:`Design`: binary, dense, in memory on the CPU, and small."""
    X = problem.X if getattr(problem, "in_memory", False) else None
    if X is None or is_sparse(X) or X.device.type != "cpu":
        return False
    if problem.datafit.pointwise is not BinaryCrossEntropy:
        return False
    return X.shape[0] * (X.shape[1] + 1) * 8 <= COMPACT_BYTES


class Design:
    """[X' 1] (or X' without an intercept) in float64, and the data term's f, g, H in phi coordinates.

    Built in three steps, each in place in one (n, p) buffer (temporaries
    of that size would cost a page-faulted allocation each, ~0.1 ms on
    10,000 x 20): the copy of X, then :meth:`moments` (when the fit has no
    standardisation yet), then :meth:`standardize`.
    """

    def __init__(self, problem):
        n, d = problem.X.shape
        self.fit_intercept = problem.datafit.fit_intercept
        self.A = torch.empty(n, d + int(self.fit_intercept), dtype=f64)  # (n, p): at most COMPACT_BYTES
        self.features = self.A[:, :d]  # (n, d) view: X, then X - shift, then X'
        self.features.copy_(problem.X)
        if self.fit_intercept:
            self.A[:, d] = 1.0
        self.shift = torch.zeros(d, dtype=f64)  # what has been subtracted from X so far
        self.y = problem.y.to(f64)  # (n,) 0/1
        self.s = problem.s.to(f64)  # (n,) summing to 1
        self._scaled = torch.empty_like(self.A)  # the Hessian's diag(h) A, reused

    def moments(self):
        """(mu, sigma) float64 (d,): weighted column means (0 without an intercept) and spreads, two-pass.

        The copy is left centred. None when a column's squares overflow or
        underflow (|x| beyond ~1e150): the general path's scaled moments handle those.
        """
        if self.fit_intercept:
            self.shift = self.s @ self.features
            self.features -= self.shift
        m2 = self.s @ self.features.square()
        tiny = 1e8 * torch.finfo(f64).tiny  # as the general path: squares near underflow lose digits
        varies = self.features.amax(0) > self.features.amin(0)  # (d,) a column that is not constant
        if not bool(torch.isfinite(m2).all()) or bool(((m2 < tiny) & varies).any()):
            return None
        return self.shift.clone(), m2.sqrt()

    def standardize(self, std):
        """Turn the copy into X' = (X - mu) / sigma for the fit's standardisation ``std``."""
        mu = std.mu if self.fit_intercept else torch.zeros_like(self.shift)
        if not torch.equal(mu, self.shift):
            self.features -= mu - self.shift
            self.shift = mu
        self.features /= std.sigma

    def loss_gradient(self, phi):
        """(f, g): float64 scalar tensor and (p,), the data term and its gradient in phi."""
        z = (self.A @ phi)[:, None]  # (n, 1) logits
        rows, g_z = BinaryCrossEntropy.loss_and_gradient(z, self.y)
        return self.s @ rows, (self.s * g_z[:, 0]) @ self.A

    def hessian(self, phi, idx=None):
        """(p, p) float64 data Hessian in phi; ``idx``: only those coordinates (a working set), (m, m)."""
        p = torch.sigmoid(self.A @ phi)
        h = self.s * p * (1.0 - p)  # (n,)
        if idx is None or len(idx) == self.A.shape[1]:  # (an elastic net's working set is often everything)
            return torch.mul(self.A, h[:, None], out=self._scaled).T @ self.A
        A = self.A.index_select(1, idx)  # (n, m) the working set's columns
        return (A * h[:, None]).T @ A
