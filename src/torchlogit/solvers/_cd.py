"""Coordinate descent on a weighted-lasso quadratic: prox-Newton's inner problem.

    minimise over d:   q(d) = g^T d + 1/2 d^T H d + sum_j lam_j |x_j + d_j|

H (m, m) symmetric positive semi-definite, g, x, lam (m,), float64, m the
working set's size (tens to a few thousand). One coordinate at a time, the
exact minimiser in d_j with the others fixed is a soft-thresholding:

    u_j = x_j + d_j - (g_j + (H d)_j) / H_jj,     x_j + d_j <- sign(u_j) max(|u_j| - lam_j / H_jj, 0)

and H d is kept up to date with H's column j. A sweep costs O(m^2). The loop
is compiled by numba when it is installed (m^2 operations in Python would
cost ~1 s per sweep at m = 1000); the same loop in plain Python is the fallback.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency, but the package must work without it

    def njit(*args, **kwargs):
        return (lambda f: f) if not (args and callable(args[0])) else args[0]


@njit(cache=True, nogil=True)
def _cholesky_solve(M, b):
    """x with M x = b for a symmetric M (k, k) by Cholesky; (x, True), or (b, False) if M is not positive definite."""
    k = len(b)
    L = np.zeros((k, k))
    for j in range(k):
        s = M[j, j]
        for t in range(j):
            s -= L[j, t] * L[j, t]
        if not s > 1e-12 * abs(M[j, j]) or s <= 0.0:
            return b, False
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, k):
            s = M[i, j]
            for t in range(j):
                s -= L[i, t] * L[j, t]
            L[i, j] = s / L[j, j]
    y = np.empty(k)
    for i in range(k):
        s = b[i]
        for t in range(i):
            s -= L[i, t] * y[t]
        y[i] = s / L[i, i]
    x = np.empty(k)
    for i in range(k - 1, -1, -1):
        s = y[i]
        for t in range(i + 1, k):
            s -= L[t, i] * x[t]
        x[i] = s / L[i, i]
    return x, True


@njit(cache=True, nogil=True)
def _exact_on_support(H, g, x, lam, d, Hd):
    """Move d to the exact minimiser of q for the support of v = x + d, if it can; True if that minimises q.

    With S the coordinates where v != 0 and s their signs, and v = 0 off S,
    stationarity on S reads H_SS e = -(g + H d + lam s)_S for the change e
    of d on S: one Cholesky solve of |S| unknowns. If a sign would flip, d
    moves along e only to the first coordinate that reaches 0 (q decreases
    all the way: it is a convex quadratic there, least at the full step),
    that coordinate leaves S, and the solve is repeated (an active-set
    method). At the full step, it is q's minimiser when every coordinate off
    S satisfies |g_j + (H d)_j| <= lam_j. d and Hd are updated in place.
    """
    m = len(g)
    full = False  # reached the minimiser on a support (no sign flip on the way)
    curved = np.diag(H) > 0.0
    for _ in range(m):
        S = np.nonzero((x + d != 0.0) & curved)[0]
        k = len(S)
        if k == 0:
            return False
        v = x[S] + d[S]
        r = -(g[S] + Hd[S] + lam[S] * np.sign(v))
        e, ok = _cholesky_solve(np.ascontiguousarray(H[S][:, S]), r)
        if not ok:
            return False
        t, hit = 1.0, -1  # the largest step along e before a sign flips
        for a in range(k):
            if v[a] * (v[a] + e[a]) <= 0.0 and e[a] != 0.0 and -v[a] / e[a] < t:
                t, hit = -v[a] / e[a], a
        d[S] += t * e
        if hit >= 0:
            d[S[hit]] = -x[S[hit]]  # exactly 0: it leaves the support
        Hd[:] = H @ d  # afresh: in-place updates would drift over many solves
        if hit < 0:
            full = True
            break
    if not full:
        return False
    for j in range(m):  # the coordinates at zero must stay there
        if x[j] + d[j] == 0.0 and H[j, j] > 0.0 and abs(g[j] + Hd[j]) > lam[j] * (1.0 + 1e-12):
            return False
    return True


@njit(cache=True, nogil=True)
def weighted_lasso_cd(H, g, x, lam, d, max_sweeps, tol):
    """Minimise q(d) from ``d`` (updated in place); returns (sweeps done, largest change in the last sweep).

    Stops when a sweep changes no coordinate by more than ``tol`` (in units of
    the coordinate), or after ``max_sweeps``. Coordinates with H_jj <= 0 (a
    constant feature) are left where they are.

    Once a sweep leaves the support and signs of x + d as they were, the
    minimiser for that support is one linear solve (``_exact_on_support``);
    if it passes q's optimality conditions the method stops there (change 0).
    Cyclic CD alone converges linearly, at a rate set by the features'
    correlation: on standardised breast cancer with an elastic net, most
    solves ran into ``max_sweeps``. The solve is tried only while it costs
    less than about 10 sweeps (|S|^3 / 6 <= 10 m^2), and again every 10
    sweeps while the support stays (a sign can flip on the way to it).
    """
    m = len(g)
    Hd = H @ d
    change = 0.0
    sweep = 0
    next_try = 0  # the sweep from which the solve may be tried
    for sweep in range(1, max_sweeps + 1):  # noqa: B007 (the count is returned)
        change = 0.0
        moved = False  # did any coordinate join or leave the support, or change sign?
        size = 0
        for j in range(m):
            a = H[j, j]
            if a <= 0.0:
                continue
            old = x[j] + d[j]
            u = old - (g[j] + Hd[j]) / a
            t = lam[j] / a
            new = 0.0
            if u > t:
                new = u - t
            elif u < -t:
                new = u + t
            step = new - old
            if new != 0.0:
                size += 1
            if (new > 0.0) != (old > 0.0) or (new < 0.0) != (old < 0.0):
                moved = True
            if step != 0.0:
                d[j] += step
                for i in range(m):
                    Hd[i] += H[i, j] * step
                if abs(step) > change:
                    change = abs(step)
        if change <= tol:
            break
        if moved:
            next_try = sweep + 1
        elif sweep >= next_try and size * size * size <= 60 * m * m:
            next_try = sweep + 10
            if _exact_on_support(H, g, x, lam, d, Hd):
                change = 0.0
                break
    return sweep, change


def solve(H, g, x, lam, max_sweeps=1000, tol=1e-12):
    """d minimising q (numpy float64 arrays in, a new array out) and the sweeps it took."""
    d = np.zeros_like(g)
    sweeps, _ = weighted_lasso_cd(
        np.ascontiguousarray(H),
        np.ascontiguousarray(g),
        np.ascontiguousarray(x),
        np.ascontiguousarray(lam),
        d,
        max_sweeps,
        tol,
    )
    return d, sweeps
