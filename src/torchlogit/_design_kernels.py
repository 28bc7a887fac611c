"""Newton and proximal Newton compiled whole, for a small binary design held in memory.

A small fit's time in the torch solvers (:mod:`torchlogit.solvers.newton`,
:mod:`torchlogit.solvers.prox_newton`) is calls, not arithmetic: a 1,000 x 10
Newton fit makes ~150 torch calls of ~5 us each around ~0.1 ms of arithmetic,
and a breast-cancer L1 fit spends ~3 ms in prox-Newton's Python loop. Here the
same two methods, step for step (the same directions, line searches, working
sets and stopping rules), run in one compiled call on the standardised design
A = [X' 1] of :class:`torchlogit._compact.Design` (float64, (n, p)):

    F(x) = sum_i s_i loss(a_i . x, y_i) + 1/2 sum_j c2_j x_j^2 + sum_j lam_j |x_j|

c2 the L2 part's curvature and lam the L1 part's weights per coordinate (both
0 on the intercept). The per-row formulas are :mod:`torchlogit._numba_kernels`'
(``tile_loss_64``), and every sum runs over the rows in order on one thread,
so a fit does not depend on the thread count (small fits run on one thread
anyway: :mod:`torchlogit._threads`). Imported only when such a fit runs.

Each solver returns (x, F, the stopping measure, iterations, status, history),
with ``history[:iterations]`` the objective after each iteration; the status
codes are below, their messages in :func:`torchlogit._compact.compiled_solve`.
"""

import numpy as np
from numba import njit

from ._numba_kernels import FLAGS, TILE, tile_gram, tile_logits, tile_loss_64, tile_newton_terms, tile_scatter
from .solvers._cd import _cholesky_solve, weighted_lasso_cd

TOL_MET, MAX_ITER, NO_DECREASE, STALLED, NO_DESCENT = 0, 1, 2, 3, 4
EPS = np.finfo(np.float64).eps


@njit(fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def evaluate(A, x, y, s, c2, g, h):
    """F's smooth part at x: returns f; writes g (p,) its gradient and h (n,) = s p (1 - p), the rows' curvature.

    One read of A in tiles of 64 rows: logits, loss, residuals and curvature
    (``tile_newton_terms``), then A^T r from the tile while it is in cache.
    """
    n, p = A.shape
    z = np.empty(TILE)
    two_f = np.empty(TILE)
    bits = np.empty(TILE, dtype=np.int64)
    r = np.empty(TILE)
    loss = np.empty(TILE)
    g[:] = 0.0
    f = 0.0
    for t0 in range(0, n, TILE):
        m = min(TILE, n - t0)
        f = tile_newton_terms(A, t0, m, x, y, s, z, two_f, bits, loss, r, h[t0:], f)
        tile_scatter(A, t0, m, r, g)
    for j in range(p):
        f += 0.5 * c2[j] * x[j] * x[j]
        g[j] += c2[j] * x[j]
    return f


@njit(fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def hessian(A, h, c2):
    """A^T diag(h) A + diag(c2), (p, p): ``tile_gram``'s upper blocks, mirrored."""
    n, p = A.shape
    q = (p + 3) // 4 * 4
    H = np.zeros((q, q))
    At = np.zeros((q, TILE))
    Bt = np.zeros((q, TILE))
    for t0 in range(0, n, TILE):
        tile_gram(A, t0, min(TILE, n - t0), h[t0:], At, Bt, H)
    out = np.empty((p, p))
    for j in range(p):
        for k in range(j, p):
            out[j, k] = H[j, k]
            out[k, j] = H[j, k]
        out[j, j] += c2[j]
    return out


@njit(nogil=True, cache=True)
def newton_direction(H, g):
    """-H^-1 g by Cholesky; where H is singular (collinear columns, no penalty), the minimum-norm step."""
    d, ok = _cholesky_solve(H, -g)
    if ok:
        return d
    evals, evecs = np.linalg.eigh(H)
    cutoff = len(g) * EPS * np.abs(evals).max()
    c = evecs.T @ g
    for j in range(len(g)):
        c[j] = c[j] / evals[j] if evals[j] > cutoff else 0.0
    return -(evecs @ c)


@njit(nogil=True, cache=True)
def stalled(count, f_old, f, f_rtol):
    """RoundingStall's count after one more decrease (solvers._result): 3 below rounding in a row stop."""
    return count + 1 if f_old - f <= f_rtol * max(abs(f), 1e-300) else 0


@njit(nogil=True, cache=True)
def record(history, it, value):
    """``history`` with history[it] = value, twice as long when full (max_iter may be huge; fits take tens)."""
    if it >= len(history):
        grown = np.zeros(2 * len(history))
        grown[: len(history)] = history
        history = grown
    history[it] = value
    return history


@njit(nogil=True, cache=True)
def newton(A, y, s, c2, x0, tol, max_iter, f_rtol):
    """:func:`torchlogit.solvers.newton.newton` on F without an L1 part: (x, f, max|g|, iterations, status)."""
    n, p = A.shape
    x = x0.copy()
    g, h = np.empty(p), np.empty(n)
    g_t, h_t = np.empty(p), np.empty(n)
    f = evaluate(A, x, y, s, c2, g, h)
    gmax = np.abs(g).max() if p else 0.0
    it, count, status = 0, 0, MAX_ITER
    history = np.zeros(16)
    while True:
        if gmax <= tol:
            status = TOL_MET
            break
        if it >= max_iter:
            break
        d = newton_direction(hessian(A, h, c2), g)
        # backtracking from the full step; near the optimum, no rise beyond rounding and a smaller gradient
        gd, f_noise = g @ d, f_rtol * abs(f)
        t, found = 1.0, False
        for _ in range(30):
            x_t = x + t * d
            f_t = evaluate(A, x_t, y, s, c2, g_t, h_t)
            if f_t <= f + 1e-4 * t * gd or (f_t <= f + f_noise and np.abs(g_t).max() < gmax):
                found = True
                break
            t *= 0.5
        if not found:
            status = NO_DECREASE
            break
        f_old = f
        x, f = x_t, f_t
        g, g_t, h, h_t = g_t, g, h_t, h
        history = record(history, it, f)
        it += 1
        gmax = np.abs(g).max()
        count = stalled(count, f_old, f, f_rtol)
        if count >= 3:
            status = STALLED
            break
    return x, f, gmax, it, status, history


@njit(nogil=True, cache=True)
def kkt_violation(x, g, lam):
    """Per coordinate: dist(-g, lam d|x|) (solvers.prox_newton.kkt_violation)."""
    out = np.empty(len(x))
    for j in range(len(x)):
        if x[j] == 0.0:
            out[j] = max(abs(g[j]) - lam[j], 0.0)
        else:
            out[j] = abs(g[j] + lam[j] * np.sign(x[j]))
    return out


@njit(nogil=True, cache=True)
def working_set(x, score, n_features, size):
    """(features chosen, sorted; how many could be): solvers.prox_newton.working_set for one coordinate per
    feature: the support, then the best scoring others, at least 2 |support| and ``size`` in all."""
    best = score[:n_features].copy()
    active = 0
    violating = 0
    for j in range(n_features):
        if x[j] != 0.0:
            best[j] = np.inf  # the support always stays in
            active += 1
        if x[j] != 0.0 or score[j] > 0.0:
            violating += 1
    size = min(n_features, max(size, 2 * active))
    order = np.argsort(-best, kind="mergesort")[:size]
    keep = order[best[order] > 0.0]
    return np.sort(keep), violating


@njit(nogil=True, cache=True)
def abs_change(x, d):
    """|x + d| - |x| per coordinate, sign(x) d where the sign stays (solvers.prox_newton._abs_change)."""
    out = np.empty(len(x))
    for j in range(len(x)):
        v = x[j] + d[j]
        if x[j] != 0.0 and np.sign(v) == np.sign(x[j]):
            out[j] = np.sign(x[j]) * d[j]
        else:
            out[j] = abs(v) - abs(x[j])
    return out


@njit(nogil=True, cache=True)
def prox_newton(A, y, s, c2, lam, n_features, x0, tol, max_iter, f_rtol, ws_start):
    """:func:`torchlogit.solvers.prox_newton.prox_newton` on F: (x, F, max KKT violation, iterations, status).

    Coordinates j < ``n_features`` are the features (one group each); the
    rest (the intercept) are always in the working set. The working set's
    Hessian is formed from its columns, copied into one contiguous (n, m) block.
    """
    n, p = A.shape
    x = x0.copy()
    g, h = np.empty(p), np.empty(n)
    g_t, h_t = np.empty(p), np.empty(n)
    f = evaluate(A, x, y, s, c2, g, h)
    F = f + np.sum(lam * np.abs(x))
    kkt = kkt_violation(x, g, lam).max() if p else 0.0
    size, it, count, status = ws_start, 0, 0, MAX_ITER
    history = np.zeros(16)
    always = np.arange(n_features, p)
    while True:
        if kkt <= tol:
            status = TOL_MET
            break
        if it >= max_iter:
            break
        # 1-2. scores and the working set
        score = kkt_violation(x, g, lam)
        chosen, violating = working_set(x, score, n_features, size)
        idx = np.concatenate((chosen, always))
        A_ws = np.empty((n, len(idx)))
        for i in range(n):
            for a in range(len(idx)):
                A_ws[i, a] = A[i, idx[a]]
        H = hessian(A_ws, h, c2[idx])
        # 3. direction: the weighted lasso on the working set, to ~1e-2 of the KKT violation
        d_ws = np.zeros(len(idx))
        step_tol = 1e-2 * kkt / max(np.diag(H).max(), 1e-300)
        weighted_lasso_cd(H, g[idx], x[idx], lam[idx], d_ws, 1000, step_tol)
        d = np.zeros(p)
        d[idx] = d_ws
        delta = g @ d + np.sum(lam * abs_change(x, d))
        if not delta < 0.0:
            size = 2 * max(size, len(chosen))  # no descent seen here: look at more features
            if len(chosen) >= min(n_features, violating):
                status = NO_DESCENT  # every violating feature is in, and the model's minimiser is d = 0
                break
            continue
        # 4. line search on F
        f_noise = f_rtol * abs(F)
        t, found = 1.0, False
        F_t = F
        for _ in range(30):
            x_t = x + t * d
            f_t = evaluate(A, x_t, y, s, c2, g_t, h_t)
            F_t = f_t + np.sum(lam * np.abs(x_t))
            if F_t <= F + 0.25 * t * delta or (F_t <= F + f_noise and t == 1.0):
                found = True
                break
            t *= 0.5
        if not found:
            status = NO_DECREASE
            break
        F_old = F
        x, F = x_t, F_t
        g, g_t, h, h_t = g_t, g, h_t, h
        history = record(history, it, F)
        it += 1
        kkt = kkt_violation(x, g, lam).max()
        count = stalled(count, F_old, F, f_rtol)
        if count >= 3:
            status = STALLED
            break
    return x, F, kkt, it, status, history


@njit(fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def shifted_terms(A, z0, b, y, s, G, scatter):
    """The data term at logits z0 + b: (sum_i s_i loss_i, sum_i r_i, sum_i s_i p_i (1 - p_i)), its value and
    first two derivatives in the intercept b, from one sweep over the n logits; with ``scatter``, also its
    gradient A^T r written into G (p,), from each tile of A while the tile's residuals are at hand."""
    n = len(z0)
    z = np.empty(TILE)
    two_f = np.empty(TILE)
    bits = np.empty(TILE, dtype=np.int64)
    two_k = bits.view(np.float64)
    r = np.empty(TILE)
    loss = np.empty(TILE)
    G[:] = 0.0
    f, g, hb = 0.0, 0.0, 0.0
    for t0 in range(0, n, TILE):
        m = min(TILE, n - t0)
        for i in range(m):
            z[i] = z0[t0 + i] + b
        tile_loss_64(z, y[t0 : t0 + m], s[t0 : t0 + m], m, two_f, bits, loss, r)
        for i in range(m):
            e = two_f[i] * two_k[i]
            f += loss[i]
            g += r[i]
            hb += s[t0 + i] * e / ((1.0 + e) * (1.0 + e))
        if scatter:
            tile_scatter(A, t0, m, r, G)
    return f, g, hb


@njit(nogil=True, cache=True)
def gap_terms(A, x, y, s, fit_intercept, max_iter):
    """The duality gap's data terms at x (:func:`torchlogit._certificate.design_duality_gap`):
    (b', the data term at b', its gradient A^T r there (p,)).

    b' minimises the data term over the intercept (the last coordinate) with
    the weights fixed, by :func:`torchlogit._certificate._intercept_newton`'s
    damped Newton on the logits z0 = A x without the intercept (one product,
    then sweeps over n numbers); without an intercept b' is not used (0).
    """
    n, p = A.shape
    xb = x.copy()
    b = 0.0
    if fit_intercept:
        b = x[p - 1]
        xb[p - 1] = 0.0
    z0 = np.empty(n)
    for t0 in range(0, n, TILE):
        tile_logits(A, t0, min(TILE, n - t0), xb, 0.0, z0[t0:], 0.0)
    G = np.zeros(p)
    f = np.nan  # the objective at b, evaluated only when a step must be damped
    for _ in range(max_iter if fit_intercept else 0):
        _, g, hb = shifted_terms(A, z0, b, y, s, G, False)
        if abs(g) <= 1e-13:
            break
        step = g / hb if hb > 0.0 else 0.0  # hb = 0: every row saturated, as the pseudo-inverse of 0
        if g * step < 1e-10:  # the quadratic model is exact to O(decrement^3/2): no evaluation
            b, f = b - step, np.nan
            continue
        if np.isnan(f):
            f = shifted_terms(A, z0, b, y, s, G, False)[0]
        t, f_new = 1.0, f
        while t >= 0.125:
            f_new = shifted_terms(A, z0, b - t * step, y, s, G, False)[0]
            if f_new <= f:
                break
            t *= 0.5
        if t < 0.125:
            break  # no decrease at float64 resolution: b is as good as it gets
        b, f = b - t * step, f_new
    data = shifted_terms(A, z0, b, y, s, G, True)[0]
    return b, data, G


@njit(fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def centre_and_moments(A, d, s, centre):
    """For the first d columns F of A: (mu, m2) with mu = sum_i s_i F_i (0 unless ``centre``) and
    m2 = sum_i s_i (F_i - mu)^2, leaving F - mu in A: :meth:`torchlogit._compact.Design.moments` in two
    sweeps over the rows (in order: the same sums on every thread count)."""
    n = A.shape[0]
    mu = np.zeros(d)
    if centre:
        for i in range(n):
            si = s[i]
            for j in range(d):
                mu[j] += si * A[i, j]
    m2 = np.zeros(d)
    for i in range(n):
        si = s[i]
        for j in range(d):
            v = A[i, j] - mu[j]
            A[i, j] = v
            m2[j] += si * v * v
    return mu, m2


@njit(fastmath=FLAGS, error_model="numpy", nogil=True, cache=True)
def scale_columns(A, d, shift, inv_sigma):
    """A[:, :d] <- (A[:, :d] - shift) * inv_sigma, in place: the design's standardisation in one sweep."""
    for i in range(A.shape[0]):
        for j in range(d):
            A[i, j] = (A[i, j] - shift[j]) * inv_sigma[j]
