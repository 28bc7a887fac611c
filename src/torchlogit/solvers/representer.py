"""Newton's method in the n coordinates of the representer theorem: the L2 solver for wide data (n < d).

With an L2 penalty on w only, the optimal w lies in the span of the rows of
X (the penalty grows along every direction orthogonal to them while the
data term does not change), so w = X^T beta with beta in R^n, and with
K = X X^T (n, n), z = K beta + b:

    F(beta, b) = sum_i L_i(z_i) + (l2 / 2) beta^T K beta,       L_i = s_i loss(z_i, y_i)

grad_beta F = K r with r = g + l2 beta (g_i = L_i'(z_i)), dF/db = sum g. The
Newton equations K (diag(h) K + l2 I) d_beta + K h d_b = -K r are solved
through their n-dimensional core

    [diag(h) K + l2 I   h] [d_beta]   [ -r        ]
    [1^T                0] [d_b   ] = [ -sum beta ]      (h_i = L_i''(z_i))

(the last row is the intercept's equation less the first n summed; without
an intercept only the first block). The matrix is nonsingular for l2 > 0
whatever K's rank. Each iteration costs O(n^2) for z and O(n^3) for the
solve, nothing of d: 3 x 100,000 is a 4 x 4 system. The caller measures
convergence where the other solvers do (``grad_max``: the gradient in its
own coordinates, one pass over X) and maps (beta, b) back to theta.
"""

from __future__ import annotations

import torch

from ._result import STOPPED, IterInfo, Result, RoundingStall

EPS = torch.finfo(torch.float64).eps


def representer_newton(K, rows, *, l2, fit_intercept, b0=0.0, grad_max, tol=1e-6, max_iter=100, callback=None):
    """Minimise F(beta, b) from beta = 0, b = b0; returns a Result whose x is [beta (n), b] (b only with an intercept).

    K (n, n) float64 symmetric PSD; ``rows(z) -> (value, g, h)``: sum_i L_i
    (float) and its first and second derivatives (n,) at logits z (n,)
    float64; ``grad_max(beta, b)``: the stopping measure (<= tol: converged).
    """
    n = K.shape[0]
    beta = torch.zeros(n, dtype=torch.float64, device=K.device)
    b = torch.tensor(float(b0) if fit_intercept else 0.0, dtype=torch.float64, device=K.device)
    Kbeta = torch.zeros_like(beta)

    def value(Kbeta, beta, b):
        v, g, h = rows(Kbeta + b)
        return v + 0.5 * l2 * float(beta @ Kbeta), g, h

    F, g, h = value(Kbeta, beta, b)
    history, stall = [], RoundingStall(64 * EPS)
    msg, converged, it = f"max_iter={max_iter} reached", False, 0
    gmax = grad_max(beta, b)
    while True:
        if gmax <= tol:
            msg, converged = f"max|gradient| {gmax:.3g} <= tol {tol:.3g}", True
            break
        if it >= max_iter:
            break
        # direction: the n (+1) dimensional Newton system above
        r = g + l2 * beta
        M = h[:, None] * K + l2 * torch.eye(n, dtype=K.dtype, device=K.device)
        if fit_intercept:
            A = torch.zeros(n + 1, n + 1, dtype=K.dtype, device=K.device)
            A[:n, :n], A[:n, n], A[n, :n] = M, h, 1.0
            step = torch.linalg.solve(A, -torch.cat([r, beta.sum().reshape(1)]))
            d_beta, d_b = step[:n], step[n]
        else:
            d_beta, d_b = torch.linalg.solve(M, -r), torch.zeros((), dtype=K.dtype, device=K.device)
        Kd = K @ d_beta
        slope = float(r @ Kd) + float(g.sum() * d_b)  # grad F . (d_beta, d_b)
        # line search: backtracking on F, Armijo from the full step
        t, accepted = 1.0, None
        for _ in range(30):
            F_t, g_t, h_t = value(Kbeta + t * Kd, beta + t * d_beta, b + t * d_b)
            if F_t <= F + 1e-4 * t * min(slope, 0.0):
                accepted = (t, F_t, g_t, h_t)
                break
            t *= 0.5
        if accepted is None:
            msg = "line search found no decrease (objective at rounding level)"
            break
        t, F_new, g, h = accepted
        beta, b, Kbeta = beta + t * d_beta, b + t * d_b, Kbeta + t * Kd
        F_old, F = F, F_new
        it += 1
        history.append(F)
        gmax = grad_max(beta, b)
        if gmax > tol and stall.stalled(F_old, F):
            msg, converged = stall.MESSAGE, True
            break
        if callback is not None and callback(IterInfo(it, F, gmax, x=_point(beta, b, fit_intercept))):
            msg = STOPPED
            break
    x = _point(beta, b, fit_intercept)
    return Result(x, float(F), gmax, it, converged, msg, history, stopped=msg == STOPPED)


def _point(beta, b, fit_intercept):
    return torch.cat([beta, b.reshape(1)]) if fit_intercept else beta.clone()
