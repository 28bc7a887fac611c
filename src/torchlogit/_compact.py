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
The duality-gap certificate of such a fit is formed from the design too
(``_certificate.design_duality_gap``), and Newton's evaluations can take
f, g and H from one kernel (:meth:`Design.fuse_hessian`).

H (and L-BFGS's correlation preconditioner, A^T diag(s) A) is the one
product here whose arithmetic, n p^2, outgrows the calls: a float64 GEMM
of this skinny shape runs far below its peak on some CPUs, so a numba
kernel forms it where it measured faster on the machine (``_gram_kernel``).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _kernels, _measured
from ._loss import BinaryCrossEntropy
from ._sparse import is_sparse
from .solvers._result import Result, RoundingStall

f64 = torch.float64

# Bytes of the float64 copy [X' 1]: 2^20 entries (e.g. 50,000 x 20). A size, not a timing: the copy
# stays within a few MiB, and beyond ~1e6 entries the arithmetic dominates the calls anyway.
COMPACT_BYTES = 8 << 20

# Whether the design is prepared, solved (``compiled_solve``) and certified by the compiled kernels of
# :mod:`torchlogit._design_kernels` where they serve; the tests switch it off to compare with torch's steps,
# which remain the path wherever the kernels cannot serve (no numba, or a cold cache still compiling).
COMPILED = True

# Multiply-adds n p^2 of a Hessian from which the numba kernel is considered (``_gram_kernel``): below
# ~1M a Hessian costs ~0.05 ms either way, less than loading numba (~0.4 s once per process) would repay.
GRAM_KERNEL_FROM = 1 << 20
# Columns up to which it is: its two (p, 64) float64 tiles stay within a core's L2 cache (256 KiB).
GRAM_KERNEL_MAX_COLUMNS = 256


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

    Built in three steps, each in place in one (n, p) buffer (a fresh
    temporary of that size is a page-faulted allocation each time: on
    10,000 x 21 float64, ~400 faults, ~0.8 ms, measured on a VM): the copy
    of X, then :meth:`moments` (when the fit has no standardisation yet),
    then :meth:`standardize`.
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
        self._gram_kernel = None  # A^T diag(h) A by numba (True) or torch, decided at the first product
        self._buffer = None  # torch's diag(h) A (n, p), allocated at its first use and reused
        self._last = None  # (phi, A phi) of the last loss_gradient
        self.fused = False  # loss_gradient forms H too (``fuse_hessian``)
        self._hessian = None  # (phi, H) from the last fused loss_gradient, until hessian(phi) takes it

    def _scratch(self):
        # one (n, p) buffer for the fit, for the reason the class docstring gives
        if self._buffer is None:
            self._buffer = torch.empty_like(self.A)
        return self._buffer

    def moments(self):
        """(mu, sigma) float64 (d,): weighted column means (0 without an intercept) and spreads, two-pass.

        The copy is left centred. None when a column's squares overflow or
        underflow (|x| beyond ~1e150): the general path's scaled moments handle those.
        """
        kernels = _compiled()
        if kernels is not None:  # two compiled sweeps (torch's strided products below: ~0.25 ms on 10,000 x 21)
            mu, m2 = kernels.centre_and_moments(
                self.A.numpy(), self.features.shape[1], self._ys()[1], self.fit_intercept
            )
            self.shift, m2 = torch.from_numpy(mu), torch.from_numpy(m2)
        else:
            if self.fit_intercept:
                self.shift = self.s @ self.features
                self.features -= self.shift
            F, s = self.features.numpy(), self.s.numpy()
            m2 = torch.from_numpy(np.einsum("ij,ij,i->j", F, F, s))  # sum_i s_i x_ij^2 without an (n, d) temporary
        tiny = 1e8 * torch.finfo(f64).tiny  # as the general path: squares near underflow lose digits
        if not bool(torch.isfinite(m2).all()):
            return None
        if bool((m2 < tiny).any()):  # constant columns (m2 = 0) are fine; tiny spreads that vary are not
            varies = self.features.amax(0) > self.features.amin(0)
            if bool(((m2 < tiny) & varies).any()):
                return None
        return self.shift.clone(), m2.sqrt()

    def standardize(self, std):
        """Turn the copy into X' = (X - mu) / sigma for the fit's standardisation ``std``."""
        mu = std.mu if self.fit_intercept else torch.zeros_like(self.shift)
        kernels = _compiled()
        if kernels is not None:  # one compiled sweep
            d = self.features.shape[1]
            kernels.scale_columns(self.A.numpy(), d, (mu - self.shift).numpy(), (1.0 / std.sigma).numpy())
            self.shift = mu
        else:
            if not torch.equal(mu, self.shift):
                self.features -= mu - self.shift
                self.shift = mu
            self.features /= std.sigma
        self._last = None
        self._hessian = None

    def correlation(self):
        """R = sum_i s_i x'_i x'_i^T / sum_i s_i (d, d) float64, over every row of the standardised copy."""
        d = self.features.shape[1]
        return self.gram(self.A, self.s)[:d, :d] / float(self.s.sum())

    def fuse_hessian(self) -> bool:
        """For Newton's method: let every :meth:`loss_gradient` form the Hessian too, where the numba kernel serves.

        Newton asks for H at nearly every point it evaluates (each line search
        ends at its first, full step), and ``_kernels.design_newton_terms``
        forms f, g and H from one read of A: 10,000 x 21, 0.17 ms against
        0.26 ms for torch's f and g plus the gram kernel's H (2 threads of an
        AMD EPYC with AVX-512; a small fit runs on one, where it is 0.30 ms,
        and the whole 10,000 x 20 fit gained ~5%). Where the gram kernel does not serve (``gram_kernel``:
        small designs, or torch measured faster), nothing changes. Returns whether it is on.
        """
        self.fused = self.gram_kernel
        return self.fused

    def loss_gradient(self, phi):
        """(f, g): float64 scalar tensor and (p,), the data term and its gradient in phi."""
        if self.fused:
            f, g, H = _kernels.design_newton_terms(self.A, phi, self.y, self.s)
            self._hessian = (phi.clone(), H)
            return torch.tensor(f, dtype=f64), g
        z = (self.A @ phi)[:, None]  # (n, 1) logits
        self._last = (phi.clone(), z[:, 0])  # Newton asks for the Hessian where its line search ended
        rows, g_z = BinaryCrossEntropy.loss_and_gradient(z, self.y)
        return self.s @ rows, (self.s * g_z[:, 0]) @ self.A

    def _logits(self, phi):
        """z = A phi (n,), from the last :meth:`loss_gradient` when it was at this phi."""
        if self._last is not None and torch.equal(self._last[0], phi):
            return self._last[1]
        return self.A @ phi

    def hessian(self, phi, idx=None):
        """(p, p) float64 data Hessian in phi; ``idx``: only those coordinates (a working set), (m, m)."""
        if idx is None and self._hessian is not None and torch.equal(self._hessian[0], phi):
            H, self._hessian = self._hessian[1], None  # the caller may add to it in place: handed out once
            return H
        p = torch.sigmoid(self._logits(phi))
        h = self.s * p * (1.0 - p)  # (n,)
        if idx is None or len(idx) == self.A.shape[1]:  # (an elastic net's working set is often everything)
            return self.gram(self.A, h)
        return self.gram(self.A.index_select(1, idx), h)  # (n, m) the working set's columns

    def gap_terms(self, phi, max_iter):
        """The duality gap's data terms at phi, compiled (``_design_kernels.gap_terms``): (b' (1,) or (0,), the
        data term at b', its gradient (p,) there); None where the kernels do not serve (then torch's steps)."""
        kernels = _compiled()
        if kernels is None:
            return None
        x = phi.to(f64).contiguous().numpy()
        b, data, G = kernels.gap_terms(self.A.numpy(), x, *self._ys(), self.fit_intercept, max_iter)
        b = torch.tensor([b] if self.fit_intercept else [], dtype=f64)
        return b, data, torch.from_numpy(G)

    def _ys(self):
        """(y, s) as contiguous numpy float64 arrays for the compiled kernels."""
        return np.ascontiguousarray(self.y.numpy()), np.ascontiguousarray(self.s.numpy())

    @property
    def gram_kernel(self) -> bool:
        """Whether :meth:`gram` runs the numba kernel (``_gram_kernel``), decided once, at the first product."""
        if self._gram_kernel is None:
            self._gram_kernel = _gram_kernel(*self.A.shape)
        return self._gram_kernel

    def gram(self, A, h):
        """A^T diag(h) A (m, m) float64 for A (n, m), this design or some of its columns."""
        if self.gram_kernel:
            return _kernels.weighted_gram(A, h)
        if A is self.A:
            return torch.mul(A, h[:, None], out=self._scratch()).T @ A
        return (A * h[:, None]).T @ A


def _compiled():
    """:mod:`torchlogit._design_kernels` where it serves (``COMPILED``, and the kernels ready), else None."""
    return _kernels.design_solvers() if COMPILED else None


def _gram_kernel(n, p) -> bool:
    """Whether the Hessians of an (n, p) design are formed by ``_kernels.weighted_gram`` rather than a torch GEMM.

    Where numba is loaded and the product is large enough (``GRAM_KERNEL_FROM``),
    by which of the two measured faster on this machine for p columns (once,
    kept by :mod:`torchlogit._measured`): a skinny float64 GEMM's speed
    depends on the BLAS's dispatch for the CPU (10,000 x 21 on a 2-core AMD
    EPYC: MKL 0.5 ms, the kernel 0.1 ms).
    """
    if n * p * p < GRAM_KERNEL_FROM or p > GRAM_KERNEL_MAX_COLUMNS or not _kernels.ready():
        return False
    if _measured.fixed_choices():
        return True  # the test suite's machine-independent setting: the kernel wherever it applies
    return _measured.fastest(f"weighted gram, {p} columns", lambda: _time_grams(p)) == "kernel"


def _time_grams(p):
    """{'kernel': s, 'torch': s}: A^T diag(h) A each way on random float64 data, ~4M multiply-adds."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(max(1024, (4 << 20) // (p * p)), p, generator=g, dtype=f64)
    h = torch.rand(A.shape[0], generator=g, dtype=f64)
    cpu = torch.device("cpu")
    return {
        "kernel": _measured.seconds(lambda: _kernels.weighted_gram(A, h), cpu),
        "torch": _measured.seconds(lambda: (A * h[:, None]).T @ A, cpu),
    }


_MESSAGES = {  # the torch solvers' words for each status of _design_kernels
    1: None,  # max_iter: formatted below
    2: "line search found no decrease (objective at rounding level)",
    3: RoundingStall.MESSAGE,
    4: "no descent direction: converged at rounding level",
}


def compiled_solve(design, solver, smooth, rough, x0, *, tol, max_iter, f_rtol):
    """``solver`` ('newton' or 'prox-newton') on ``design`` in one compiled call, or None where it does not serve.

    The torch solver of that name, step for step, without its ~5 us per torch
    call (:mod:`torchlogit._design_kernels`): on 1,000 x 10 those calls were
    most of a Newton fit. Serves a design of at most
    ``GRAM_KERNEL_MAX_COLUMNS`` columns (its Hessian's tiles stay in a core's
    L2 cache) when the kernels are ready. ``smooth``, ``rough``: the
    penalty's L2 and L1 parts in the design's coordinates (``Penalty.split``
    of the rescaled penalty); x0 (p,) float64. Returns a
    :class:`~torchlogit.solvers.Result` in the design's coordinates.
    """
    n, p = design.A.shape
    kernels = _compiled() if solver in ("newton", "prox-newton") and p <= GRAM_KERNEL_MAX_COLUMNS else None
    if kernels is None:
        return None
    d = design.features.shape[1]
    c2, lam = np.zeros(p), np.zeros(p)  # per coordinate; 0 on the intercept
    ones = torch.ones(d, dtype=f64)  # (the penalties' weights are a (d,) tensor, or 1 where they have none)
    c2[:d] = (smooth.l2 * smooth._w(ones) ** 2 * ones).numpy()  # the L2 part's curvature l2 w_j^2
    lam[:d] = (rough.l1 * rough._w(ones) * ones).numpy()  # the L1 part's weights l1 w_j
    A, (y, s) = design.A.numpy(), design._ys()
    x0 = x0.to(f64).contiguous().numpy()
    if solver == "newton":
        if lam.any():
            return None
        x, fun, measure, it, status, history = kernels.newton(A, y, s, c2, x0, tol, max_iter, f_rtol)
        met = f"max|gradient| {measure:.3g} <= tol {tol:.3g}"
    else:
        args = (A, y, s, c2, lam, d, x0, tol, max_iter, f_rtol, 10)
        x, fun, measure, it, status, history = kernels.prox_newton(*args)
        met = f"max KKT violation {measure:.3g} <= tol {tol:.3g}"
    message = met if status == 0 else _MESSAGES[status] or f"max_iter={max_iter} reached"
    converged = status in (0, 3, 4)
    return Result(torch.from_numpy(x), float(fun), float(measure), int(it), converged, message, history[:it].tolist())
