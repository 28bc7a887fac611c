"""Cross-validation folds solved together: one pass over X serves every fold (L2; see :func:`applies`).

A fold is the whole X with weights s_f = mask_f sw / S_f, zero on its test
rows (:meth:`torchlogit.path.PathData.weights`). At one C the m folds'
objectives, in the solver's standardised coordinates phi_f = (V_f, c_f)
(:class:`torchlogit._fit.Standardizer`: W = V / sigma, b = c - W mu),

    f_f = sum_i s_if loss(z_if, y_i) + P_f(V_f),    Z = X W^T + b    (n, m),

and their gradients come from one blocked pass over X: per block of rows
Z_B = X_B W^T (m columns at once), R_B = S_B * (sigmoid(Z_B) - y_B) and
G += X_B^T R_B, so each block is read once for all folds (a sparse X: its
two products X W^T and R^T X, each for all folds), and
dF/dV = (G^T - (sum_i R_i) mu^T) / sigma. With K classes the same holds per
class, Z_B (B, m, K) with a softmax per fold (:meth:`FoldPasses.values` gives
both models' terms in one layout).

Each fold runs its own L-BFGS (its own memory, step and line search):
:func:`torchlogit.solvers.lbfgs.lbfgs_steps`, the solver as a generator that
yields the point it needs next and receives (f, g). :func:`lockstep` gathers the points every unfinished fold asks for,
evaluates them in one pass and hands each fold its values; a fold that has
converged asks for nothing, so the pass narrows as folds finish. From one C
to the next a fold keeps its point and its curvature pairs, and converges
only where a duality-gap estimate from the same pass is also small
(:class:`FoldsAtC`). The gaps themselves come from the same passes
(:func:`fold_gaps`: Newton steps on the intercepts, usually none or one
pass, as the last point's pass is remembered), and a fold whose gap is
above ``gap_tol`` is continued with a tighter tol, as
:func:`torchlogit.path.certify` does for one fit.

Sums are float64 (the logits of a block in X's dtype, then float64; the
block products X_B^T R_B in X's dtype over at most ``BLOCK_BYTES`` of rows,
added in float64 in a fixed order), as :mod:`torchlogit._loss` does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import _kernels, _measured, _threads
from ._costs import estimate
from ._fit import (
    correlation_affordable,
    correlation_preconditioner,
    diagonal_preconditioner,
    preconditioner_rows,
    representer_shape,
)
from ._problem import Problem
from ._sparse import is_sparse
from .path import REFINE_ROUNDS, ROUND_ITER
from .penalties import from_params
from .solvers import choose
from .solvers.lbfgs import lbfgs_steps

f64 = torch.float64
BLOCK_BYTES = 4 << 20  # rows of X per block: stays in cache between the two products
MEMO = 3  # points remembered per fold (its last accepted point, the certificate's intercept step, a trial)


def applies(data, l1_ratio, solver, masks):
    """Whether the folds can be solved together: a pure L2 penalty, L-BFGS the solver one fold's fit would
    use, and every fold's training rows holding every class (else an intercept has no finite optimum).

    K classes on a dense X in the CPU's memory are solved one fold after another: there each fold's pass is
    the fused softmax kernel (:mod:`torchlogit._kernels`), and five of them took 3.8 ms (20,000 x 100, 10
    classes) and 48 ms (60,000 x 784) where the folds' shared pass in torch products took 18 and 122 ms
    (2-core Zen 5). On a GPU, and for a sparse X (two products for all folds instead of two per fold), the
    folds are solved together."""
    if float(l1_ratio) != 0.0:
        return False
    if data.datafit.n_outputs > 1 and not is_sparse(data.X) and data.X.device.type == "cpu":
        return False
    datafit = data.datafit
    n, d = data.X.shape  # L2 (above): wide dense binary data goes to newton-dual fold by fold
    representer = datafit.n_outputs == 1 and representer_shape(n, d) and not is_sparse(data.X)
    name = choose(solver, datafit.n_params, lambda: estimate(datafit, data.X), "l2", representer)
    if name != "lbfgs":  # where one fit would take Newton steps (small d), so do the folds
        return False
    k = max(2, datafit.n_outputs)  # classes
    for mask in masks:
        w = torch.where(mask, data.sw, torch.zeros_like(data.sw)).to(f64)
        per_class = torch.zeros(k, dtype=f64, device=w.device).index_add_(0, data.y.long(), w)
        if not bool((per_class > 0).all()):
            return False
    return True


def lockstep(steps, evaluate):
    """Run generators like ``lbfgs_steps`` together: each round, ``evaluate(js, xs)`` -> [(f, g), ...] for the
    points xs that the unfinished generators js ask for. Returns their results (StopIteration values) in order."""
    results = [None] * len(steps)
    pending = {j: next(gen) for j, gen in enumerate(steps)}
    while pending:
        js = list(pending)
        for j, value in zip(js, evaluate(js, [pending[j] for j in js])):
            try:
                pending[j] = steps[j].send(value)
            except StopIteration as done:
                results[j] = done.value
                del pending[j]
    return results


# ------------------------------------------------------------ one pass for m folds
class FoldPasses:
    """The products of m folds' data terms over one X: weights S (n, m) float64, one column per fold."""

    def __init__(self, data, masks):
        self.k = data.datafit.n_outputs  # 1 (binary) or K classes
        self.X, self.y = data.X, (data.y.to(f64) if self.k == 1 else data.y)  # 0/1 float64, or class indices
        n, d = self.X.shape
        cols, self.totals = [], []
        for mask in masks:
            s, S = data.weights(mask)
            cols.append(s.to(f64))
            self.totals.append(S)
        self.S = torch.stack(cols, dim=1)  # (n, m)
        self.block = max(1024, BLOCK_BYTES // (d * self.X.element_size()))
        self.y32, self._St = data.y.contiguous(), None  # X's dtype, for the fused kernel
        self._memo = {}  # fold -> [(w, b, (L, G column, gb, hb)), ...], newest first

    def loss_gradient(self, W, b, folds):
        """:meth:`pass_` with its last few results per fold remembered: a point seen again (the next C's warm
        start, a continuation's start, the certificate at a solver's last point) costs no pass."""
        values = [self._seen(j, W[r], b[r]) for r, j in enumerate(folds)]
        fresh = [r for r, v in enumerate(values) if v is None]
        if fresh:
            got = self.pass_(W[fresh], b[fresh], [folds[r] for r in fresh])
            for c, r in enumerate(fresh):
                values[r] = tuple(v[..., c].clone() for v in got)
                kept = self._memo.setdefault(folds[r], [])
                kept.insert(0, (W[r].clone(), b[r].clone(), values[r]))
                del kept[MEMO:]
        return tuple(torch.stack([v[q] for v in values], dim=-1) for q in range(4))

    def values(self, W, b, folds):
        """The folds' terms in one layout for both models: W (m', k, d), b (m', k) -> L (m',), A (m', k, d)
        = dL/dW, g (m', k) = dL/db and H (m', k, k) = d2L/db2, through :meth:`loss_gradient`."""
        if self.k == 1:
            L, G, gb, hb = self.loss_gradient(W[:, 0], b[:, 0], folds)
            return L, G.T[:, None, :], gb[:, None], hb[:, None, None]
        L, G, gb, hb = self.loss_gradient(W, b, folds)
        return L, G.permute(2, 0, 1), gb.T, hb.permute(2, 0, 1)

    def _seen(self, j, w, b):
        for w0, b0, values in self._memo.get(j, ()):
            if torch.equal(w0, w) and torch.equal(b0, b):
                return values
        return None

    def pass_(self, W, b, folds):
        """(L (m',), G (d, m'), gb (m',), hb (m',)): the folds' data terms, dL/dW (as X^T R), dL/db and
        d2L/db2 = sum_i s_i p_i (1 - p_i), in one pass.

        On the CPU the fused kernel (:mod:`torchlogit._folds_kernels`) reads each tile of X once for all
        folds; elsewhere (a GPU) blocks of rows with m' columns per product. A sparse X is read twice, by
        its own products (Z = X W^T, then R^T X), each for all folds at once.
        """
        if self.k > 1:
            return self._softmax_pass(W, b, folds)
        if not is_sparse(self.X) and _kernels.applies(self.X) and _kernels._kernels():
            return self._fused(W, b, folds)
        L = torch.zeros(len(folds), dtype=f64, device=self.y.device)
        G = torch.zeros(self.X.shape[1], len(folds), dtype=f64, device=L.device)
        gb, hb = torch.zeros_like(L), torch.zeros_like(L)
        for rows in self._row_blocks():
            Z = self._logits(rows, W) + b  # (B, m')
            yb, Sb = self.y[rows, None], self.S[rows][:, folds]
            L += (Sb * F.binary_cross_entropy_with_logits(Z, yb.expand_as(Z), reduction="none")).sum(0)
            p = torch.sigmoid(Z)
            R = Sb * (p - yb)
            G += self._transposed_product(rows, R)
            gb += R.sum(0)
            hb += (Sb * p * (1 - p)).sum(0)
        return L, G, gb, hb

    def _row_blocks(self):
        """Slices of rows, ``BLOCK_BYTES`` of a dense X each (read once for both products); a sparse X's
        products take every row at once."""
        n = self.X.shape[0]
        step = n if is_sparse(self.X) else self.block
        return [slice(i, i + step) for i in range(0, n, step)]

    def _logits(self, rows, W):
        """X[rows] W^T, (B, c) float64; W (c, d) float64 (a dense X's product in its dtype)."""
        if is_sparse(self.X):
            return self.X.linear(W)
        return (self.X[rows] @ W.T.to(self.X.dtype)).to(f64)

    def _transposed_product(self, rows, R):
        """X[rows]^T R, (d, c) float64; R (B, c) float64 (a dense X's product in its dtype)."""
        if is_sparse(self.X):
            return self.X.rmatmul(R).T
        Xb = self.X[rows]
        return (Xb.T @ R.to(Xb.dtype)).to(f64)

    def _softmax_pass(self, W, b, folds):
        """:meth:`pass_` for K classes: W (m', K, d), b (m', K) -> L (m',), G (K, d, m') = R^T X, gb (K, m')
        and Hb (K, K, m') = sum_i s_i (diag p_i - p_i p_i^T), the intercepts' Hessian; per block of rows
        Z_B = X_B W^T with m' K columns (a sparse X: its two products, all rows at once)."""
        m, K, d = W.shape
        L = torch.zeros(m, dtype=f64, device=self.y.device)
        G = torch.zeros(d, m * K, dtype=f64, device=L.device)
        gb, Hb = torch.zeros(m, K, dtype=f64, device=L.device), torch.zeros(m, K, K, dtype=f64, device=L.device)
        for rows in self._row_blocks():
            Z = self._logits(rows, W.reshape(m * K, d)).view(-1, m, K) + b  # (B, m', K)
            y, S = self.y[rows], self.S[rows][:, folds]  # (B,), (B, m')
            logp = torch.log_softmax(Z, dim=2)
            L -= (S * logp.gather(2, y[:, None, None].expand(-1, m, 1))[..., 0]).sum(0)
            P = logp.exp()
            R = S[..., None] * (P - F.one_hot(y, K).to(f64)[:, None, :])  # (B, m', K)
            G += self._transposed_product(rows, R.reshape(-1, m * K))
            gb += R.sum(0)
            SP = S[..., None] * P
            Hb += torch.diag_embed(SP.sum(0)) - torch.einsum("bmk,bml->mkl", SP, P)
        return L, G.view(d, m, K).permute(2, 0, 1), gb.T, Hb.permute(1, 2, 0)

    def _fused(self, W, b, folds):
        from . import _folds_kernels

        _threads.numba_follows_torch()
        if self._St is None:
            self._St = self.S.T.to(self.X.dtype).contiguous()  # (m, n): a fold's weights contiguous
        St = self._St if list(folds) == list(range(self._St.shape[0])) else self._St[list(folds)]
        dt = self.X.dtype
        rows, chunks = _kernels._chunks(self.X.shape[0])
        Xn, y = self.X.numpy(), self.y32.numpy()
        args = (Xn, W.to(dt).contiguous().numpy(), b.to(dt).contiguous().numpy(), y, St.numpy(), rows, chunks)
        Fc, Gc, Hc = _folds_kernels.folds_loss_gradient(*args, *self._layout(args))
        G = torch.from_numpy(Gc.sum(axis=0))  # (m', d + 1): chunks added in order, as _kernels does
        return torch.from_numpy(Fc.sum(axis=0)), G[:, :-1].T, G[:, -1], torch.from_numpy(Hc.sum(axis=0))

    def _layout(self, args):
        """(five, touch) for the fold kernel (``folds_loss_gradient``'s docstring: no way is the fastest for
        every d, dtype and size): the fastest of the four ways on this pass's own arguments (12 passes, the
        first time; :func:`torchlogit._measured.fastest_flags`). Under the test suite's fixed choices: the logits
        one fold at a time (the same bits as one fold alone), no touch."""
        from . import _folds_kernels

        ways = {"five, touch": (True, True), "five": (True, False), "one, touch": (False, True), "one": (False, False)}
        if args[1].shape[0] < 5:  # five at a time needs five folds: time the touch alone
            ways = {name: way for name, way in ways.items() if not way[0]}
        return _measured.fastest_flags(_folds_kernels.folds_loss_gradient, args, ways, f"fold pass, {len(ways)} ways")


class SampledHessian:
    """The folds' Hessian at one C, in phi coordinates, estimated on a fixed sample of rows: their preconditioner.

    On r evenly spaced rows (:func:`torchlogit._fit.preconditioner_rows`), at the mean
    phibar of the folds' start points, z_i = (x'_i, 1) (no 1 without an intercept):

        H = (n / r) sum_{i in sample} sbar_i p_i (1 - p_i) z_i z_i^T + diag(l2bar, 0),   p = sigmoid(z . phibar),

    sbar_i the folds' mean weight of row i (each fold's weights sum to 1, so
    the sum estimates any fold's data Hessian) and l2bar their mean L2
    curvature (their penalties differ only through the folds' total weights,
    a few %): one inverse M = H^-1, a (d + 1)^2 matrix, serves every fold as M v.
    Unlike c R + l2 / sigma^2 (a single curvature c for every row, exact only
    at the null model, :func:`torchlogit._fit.correlation_preconditioner`) it
    follows the rows' spread of p (1 - p) along the path, and it couples the
    intercept with the features. Measured on 200,000 x 100 (cv=5, 10 C, Zen 5):
    43 passes -> 35; 3,000 rows instead of 10,000 gave 44, 30,000 gave 33;
    re-forming H at every iterate instead of every C, 34.

    H is formed again at every C where that costs at most one fold pass's
    multiply-adds (r (d + 1)^2 <= 2 n d m); elsewhere once, at the first C, and
    then rescaled by the folds' mean curvature c measured at each C's start.
    """

    def __init__(self, data, passes):
        X, std = data.X, data.std
        n, d = X.shape
        rows = torch.linspace(0, n - 1, preconditioner_rows(n, d), device=X.device).round().long()
        Z = std.standardize(X[rows])  # (r, d), X's dtype
        if std.fit_intercept:
            Z = torch.cat([Z, torch.ones(len(rows), 1, dtype=Z.dtype, device=Z.device)], dim=1)
        self.Zt = Z.T.contiguous()  # (p, r): H's data part is A A^T with A = Zt sqrt(w), one product
        self.s = passes.S[rows].mean(dim=1) * (n / len(rows))  # (r,) float64
        self.refresh = len(rows) * self.Zt.shape[0] ** 2 <= 2 * n * d * passes.S.shape[1]
        self.H, self.c = None, None  # the data part of H and the mean curvature it was formed at

    def inverse(self, phis, curvatures, l2):
        """M = H^-1 (p, p) float64 at the folds' start points ``phis`` (their measured curvatures
        ``curvatures``, the folds' mean L2 curvature ``l2`` (d,)), or None where H fails its Cholesky."""
        c = sum(curvatures) / len(curvatures)
        if self.H is None or self.refresh:
            phi = torch.stack(phis).mean(dim=0).to(self.Zt.dtype)
            p = torch.sigmoid(phi @ self.Zt)
            A = self.Zt * (self.s.to(p.dtype) * p * (1 - p)).sqrt()
            self.H, self.c = (A @ A.T).to(f64), c
        H = self.H * (c / self.c)
        H.diagonal()[: len(l2)] += l2
        H.diagonal().add_(1e-9 * float(H.diagonal().max()))  # a floor: rounding must not make H singular
        L, info = torch.linalg.cholesky_ex(H)
        return None if int(info) else torch.cholesky_inverse(L)


class FoldsAtC:
    """The m folds' objectives at one C, in the solvers' standardised coordinates phi, over shared passes.

    ``evaluate(js, phis)`` -> [(f, g), ...] for the folds js at their points
    (one pass for all); ``small_gap(j)`` the test that fold j's duality gap,
    estimated at an iterate from that pass's gradient, is within half of
    ``gap_tol``: L-BFGS converges only where it and max|g| <= tol both hold,
    so a point the gradient test alone would accept at a weak penalty is
    continued at once rather than certified, rejected and restarted.
    """

    def __init__(self, passes, std, problems, fit_intercept, gap_tol):
        self.passes, self.std, self.problems, self.gap_tol = passes, std, problems, gap_tol
        self.d, self.k, self.fit_intercept = std.d, passes.k, fit_intercept
        self.smooth = [p.penalty.rescaled(std.sigma).split()[0] for p in problems]
        ones = torch.ones(1, std.d, dtype=f64, device=std.sigma.device)
        self.l2 = [s.gradient(ones)[0] for s in self.smooth]  # (d,) each: the L2 curvature per coordinate
        # each fold's d2L/dc_k^2 (k,) at its last evaluated point
        self.curvature = [torch.full((self.k,), math.inf, dtype=f64)] * len(problems)

    def preconditioners(self, hessian, phis, R=None):
        """Each fold's L-BFGS preconditioner at this C, an estimate of its inverse Hessian with units
        (``scaled``), at the folds' start points ``phis`` (:meth:`evaluate` must have seen them): ``hessian``'s
        (:class:`SampledHessian`, two classes, one matrix for all folds); else with c the curvature
        sum_i s_i p_ik (1 - p_ik) measured at each fold's start (its mean over classes), c R + l2 / sigma^2
        per class where the feature correlation ``R`` is given (K classes), or the diagonal one."""
        curvatures = [float(c.clamp(1e-12, 0.25).mean()) for c in self.curvature]  # p (1 - p) <= 1/4
        if hessian is not None:
            M = hessian.inverse(phis, curvatures, torch.stack(self.l2).mean(0))
            apply = None if M is None else (lambda v: M @ v)
            return [apply] * len(self.problems)
        if R is not None:
            return [
                correlation_preconditioner(self.std, None, None, p.penalty.l2, c, R=R.clone(), scaled=True)
                for p, c in zip(self.problems, curvatures)
            ]
        return [
            diagonal_preconditioner(self.std, p.penalty.l2, c, scaled=True) for p, c in zip(self.problems, curvatures)
        ]

    def evaluate(self, js, phis):
        d, k, std = self.d, self.k, self.std
        kd = k * d
        # row by row as the results' x are (std.to_theta), so a point seen before is the same bits (FoldPasses)
        theta = torch.stack([std.to_theta(phi) for phi in phis])
        W = theta[:, :kd].view(len(js), k, d)
        b = theta[:, kd:] if self.fit_intercept else torch.zeros(len(js), k, dtype=f64, device=theta.device)
        L, A, gb, H = self.passes.values(W, b, js)
        out = []
        for r, j in enumerate(js):
            self.curvature[j] = H[r].diagonal().clone()
            smooth, V = self.smooth[j], phis[r][:kd].view(k, d)
            g = std.grad_to_phi(torch.cat([A[r].reshape(-1), gb[r]]) if self.fit_intercept else A[r].reshape(-1))
            g[:kd] += smooth.gradient(V).reshape(-1)
            out.append((float(L[r] + smooth.value(V)), g))
        return out

    def gap_estimate(self, j, g):
        """Fold j's duality gap at an iterate, were its intercepts optimal: sum_j g_j^2 / (2 l2_j), the L2
        Fenchel-Young gap at X^T R (in phi coordinates), plus sum_k g_ck^2 / (2 d2L/dc_k^2) for the intercepts."""
        kd = self.k * self.d
        estimate = float((g[:kd] ** 2 / (2 * self.l2[j].repeat(self.k))).sum())
        return estimate + (float((g[kd:] ** 2 / (2 * self.curvature[j])).sum()) if self.fit_intercept else 0.0)

    def small_gap(self, j):
        """The test for fold j's run (asked only where max|g| <= tol already holds); after ``ROUND_ITER``
        such calls it holds whatever the estimate: where float32 passes leave the gradient at a noise floor
        the estimate cannot get under (a weak penalty, 1 / l2 large), the run stops and is certified and
        continued as a single fit would be, instead of running on to max_iter."""
        if self.gap_tol is None:
            return None
        calls = [0]

        def done(f, g):
            calls[0] += 1
            return calls[0] > ROUND_ITER or self.gap_estimate(j, g) <= 0.5 * self.gap_tol * abs(f)

        return done


def solve_folds(data, Cs, masks, *, penalty="deprecated", tol=1e-6, max_iter=1000, gap_tol=1e-6):
    """Every fold's L2 path over ``Cs``, the folds in lockstep at each C (warm-started in increasing C).

    Each fold's L-BFGS starts from its point and its curvature pairs at the
    previous C (the pairs' penalty part swapped exactly, :func:`_repenalise`).
    Returns ``results[f][i]``: the solver Result of fold f at Cs[i] (theta in
    ``x``, ``duality_gap`` set, ``n_iter`` counting every continuation), and
    ``preconditioners[i]``: the folds' shared L-BFGS preconditioner at Cs[i]
    (:class:`SampledHessian`; None for wide data), which also serves a fit
    of all rows at that C (the refit).
    """
    std, fit_intercept = data.std, data.datafit.fit_intercept
    passes = FoldPasses(data, masks)
    m, d = len(masks), data.X.shape[1]
    phis = [std.to_phi(data.null_theta(passes.S[:, j].to(data.sw.dtype))) for j in range(m)]  # each fold's point
    results, preconditioners = [[None] * len(Cs) for _ in range(m)], [None] * len(Cs)
    pairs, previous = [None] * m, None  # each fold's L-BFGS curvature pairs, and the L2 curvatures they were taken at
    k = passes.k
    affordable = correlation_affordable(data.X, k * m)  # the same arithmetic as one fit's
    # two classes: the sampled Hessian (dense X); K classes: c R + l2 per class; else the diagonal preconditioner
    hessian = SampledHessian(data, passes) if k == 1 and affordable and not is_sparse(data.X) else None
    s0 = passes.S[:, 0].to(data.X.dtype)  # the first fold's weights: R only shapes a preconditioner
    R = std.correlation(data.X, s0, preconditioner_rows(*data.X.shape)) if k > 1 and affordable else None
    with _threads.for_work(float(data.X.shape[0]) * (d + 1) * m):
        for i in np.argsort(np.asarray(Cs, dtype=float), kind="stable"):  # the largest penalty first
            problems = [
                Problem(data.datafit, from_params(penalty, float(Cs[i]), 0.0, S), data.X, data.y, passes.S[:, j])
                for j, S in enumerate(passes.totals)
            ]
            at = FoldsAtC(passes, std, problems, fit_intercept, gap_tol)
            if previous is not None:
                pairs = [_repenalise(pairs[j], previous[j], at.l2[j], d, passes.k) for j in range(m)]
            previous = at.l2
            at.evaluate(list(range(m)), phis)  # the start points' curvatures (after the first C, remembered passes)
            precondition = at.preconditioners(hessian, phis, R)
            done = _certified(at, phis, pairs, precondition, tol, max_iter, gap_tol)
            preconditioners[i] = precondition[0] if hessian is not None else None
            for j in range(m):
                if not bool(torch.isfinite(done[j].x).all()):
                    raise ValueError(f"the fit at C={float(Cs[i]):.4g} produced non-finite coefficients; rescale X")
                results[j][i] = done[j]
    return results, preconditioners


def _certified(at, phis, pairs, precondition, tol, max_iter, gap_tol):
    """Every fold's L-BFGS at one C, in lockstep from ``phis`` (updated in place, as ``pairs`` is), then its
    duality gap (:func:`fold_gaps`); a fold above ``gap_tol`` is continued with a tighter tol, as
    :func:`torchlogit.path.certify` does for one fit. Returns each fold's Result (theta in ``x``)."""
    m, std, X = len(phis), at.std, at.passes.X
    f_rtol = 10 * torch.finfo(X.dtype).eps

    def budget(j):  # a continuation's iterations, as path.certify's: from the last round's, within max_iter
        return min(max_iter - done[j].n_iter, max(ROUND_ITER, 2 * last[j]))

    todo, tols, starts, done, last = list(range(m)), [tol] * m, list(phis), [None] * m, [0] * m
    for _ in range(1 + REFINE_ROUNDS):
        steps = [
            lbfgs_steps(
                starts[j],
                tol=tols[j],
                max_iter=max_iter if done[j] is None else budget(j),
                f_rtol=f_rtol,
                precondition=precondition[j],
                pairs=pairs[j],
                done=at.small_gap(j),
                scaled=precondition[j] is not None,  # None: R + floor failed its Cholesky, no units to trust
            )
            for j in todo
        ]
        runs = lockstep(steps, lambda js, xs, todo=todo: at.evaluate([todo[r] for r in js], xs))
        ends = {}
        for j, res in zip(todo, runs):
            ends[j], res.x, pairs[j] = res.x, std.to_theta(res.x), res.pairs
        gaps = fold_gaps(at.passes, [at.problems[j] for j in todo], runs, todo, at.fit_intercept)
        nxt = []
        for j, res, gap in zip(todo, runs, gaps):
            res.duality_gap, prev, last[j] = gap, done[j], res.n_iter
            if prev is not None:
                res.n_iter += prev.n_iter
                res.converged = res.converged or prev.converged
                if not res.duality_gap < prev.duality_gap:  # rounding level: keep the better one
                    prev.n_iter = res.n_iter
                    continue
            done[j], phis[j] = res, ends[j]
            rel = res.duality_gap / max(abs(res.fun), 1e-300)
            if gap_tol is not None and rel > gap_tol and res.n_iter < max_iter:
                tols[j] = min(tols[j], res.grad_max) * min(0.1, 0.5 * math.sqrt(gap_tol / rel))
                starts[j] = phis[j]
                nxt.append(j)
        if not nxt:
            break
        todo = nxt
    return done


def _repenalise(pairs, old, new, d, k=1):
    """L-BFGS pairs (s, y) of f + old's penalty as pairs of f + new's: y + (l2_new - l2_old) s on the k d
    coefficients, where ``old``/``new`` (d,) are the pure L2 penalties' curvatures per coordinate
    (:attr:`FoldsAtC.l2`, the same for every class; the gradient of each is l2 * V) and the intercepts,
    after entry k d, have none."""
    if pairs is None:
        return None
    s_hist, y_hist = pairs
    delta, kd = (new - old).repeat(k), k * d
    return s_hist, [torch.cat([y[:kd] + delta * s[:kd], y[kd:]]) for s, y in zip(s_hist, y_hist)]


def fold_gaps(passes, problems, runs, folds, fit_intercept, max_iter=50):
    """The duality gap of each run (see :mod:`torchlogit._certificate`), all folds together.

    The intercepts b' are re-optimised at fixed W by Newton's method, every
    fold at once, each step one pass over X (:meth:`FoldPasses.loss_gradient`
    gives dL/db and d2L/db2 with L and A = X^T R); at b' the gap is
    [f - L(W, b') - P(W)]^+ + P's Fenchel-Young gap at -A. At an L-BFGS
    point the first pass is the one remembered from its last evaluation, so
    the certificate costs no pass or one per Newton step (usually one).
    """
    k, d = passes.k, passes.X.shape[1]
    W = torch.stack([r.x[: k * d].view(k, d) for r in runs])  # (m', k, d)
    b = torch.stack([r.x[k * d :] for r in runs]) if fit_intercept else W.new_zeros(len(runs), k)
    L, A, g, H = passes.values(W, b, folds)
    last = torch.full_like(L, math.inf)
    for _ in range(max_iter if fit_intercept else 0):
        if k == 1:
            step = g / H[:, 0].clamp_min(1e-300)
        else:  # H is singular along 1 (softmax is unchanged by a shift of every b_k): add 1 1^T / k
            step = torch.linalg.solve(H + 1.0 / k, g)
        decrement = (g * step).sum(1)  # what a full step would gain, about twice over
        # done where the decrement is below 1e-12 of L (the gap moves by less), or where it stopped
        # falling: a float32 pass's dL/db carries rounding noise of ~1e-10 that Newton cannot remove
        if bool(((decrement <= 1e-12 * L.abs()) | (decrement > last / 4) | (g == 0).all(1)).all()):
            break
        last = decrement
        # where the decrement is large, halve the step until L does not increase; below 1e-10 the
        # quadratic model is exact to rounding and the full step is taken
        large, t = decrement >= 1e-10, torch.ones_like(L)
        for attempt in range(5):  # the last trial is taken as it is (b and its values stay together)
            trial_b = b - t[:, None] * step
            trial = passes.values(W, trial_b, folds)
            worse = large & (trial[0] > L)
            if not bool(worse.any()) or attempt == 4:
                break
            t = torch.where(worse, t / 2, t)
        b, (L, A, g, H) = trial_b, trial
    gaps = []  # A: dL/dW at b'
    for r, (run, problem) in enumerate(zip(runs, problems)):
        slack = max(0.0, float(run.fun) - float(L[r]) - float(problem.penalty.value(W[r])))
        gaps.append(slack + float(problem.penalty.fenchel_young_gap(W[r], -A[r])))
    return gaps
