"""Newton's method (IRLS for the logistic loss) with a Cholesky solve.

For problems whose p x p Hessian fits in memory: small d, or small K*d.
Each iteration, in named steps: direction (solve H d = -g), line search
(backtracking on f), convergence check (max|g| <= tol).
"""

from __future__ import annotations

import torch

from ._result import STOPPED, IterInfo, Result, RoundingStall

EPS = torch.finfo(torch.float64).eps


def newton_direction(H, g):
    """Solve H d = -g by Cholesky. If H is singular (collinear columns, no
    penalty) fall back to the pseudo-inverse: the minimum-norm step, a
    deterministic choice among the equally good ones. Returns d (float64)."""
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) == 0:
        return torch.cholesky_solve(-g[:, None], L)[:, 0]
    evals, evecs = torch.linalg.eigh(H)
    cutoff = len(g) * EPS * float(evals.abs().max())
    inv = torch.where(evals > cutoff, 1.0 / evals, torch.zeros_like(evals))
    return -(evecs @ (inv * (evecs.T @ g)))


def _line_search(fun_and_grad, x, f, g, d, f_noise, max_steps=30):
    """Backtracking from the full Newton step.

    Near the optimum f differences drown in rounding (``f_noise``, absolute);
    there we accept a step if f did not rise beyond rounding and the gradient
    shrank. Returns (x_new, f_new, g_new) or None.
    """
    gd = float(g @ d)
    gmax = float(g.abs().max())
    t = 1.0
    for _ in range(max_steps):
        x_t = x + t * d
        f_t, g_t = fun_and_grad(x_t)
        if f_t <= f + 1e-4 * t * gd:
            return x_t, f_t, g_t
        if f_t <= f + f_noise and float(g_t.abs().max()) < gmax:
            return x_t, f_t, g_t
        t *= 0.5
    return None


def newton(fun_and_grad, w0, *, tol=1e-4, max_iter=100, callback=None, hessian, f_rtol=64 * EPS):
    """Minimise from ``w0``; ``hessian(w)`` returns the (p, p) float64 Hessian.

    ``f_rtol``: relative accuracy of the f values (float32 data: ~10 eps32).
    """
    x = w0.detach().to(torch.float64).clone()
    f, g = fun_and_grad(x)
    history = []
    msg, converged = f"max_iter={max_iter} reached", False
    gmax = float(g.abs().max()) if g.numel() else 0.0
    it, stall = 0, RoundingStall(f_rtol)
    while True:
        if gmax <= tol:
            msg, converged = f"max|gradient| {gmax:.3g} <= tol {tol:.3g}", True
            break
        if it >= max_iter:
            break
        d = newton_direction(hessian(x), g)
        step = _line_search(fun_and_grad, x, f, g, d, f_rtol * abs(f))
        if step is None:
            msg = "line search found no decrease (objective at rounding level)"
            break
        f_old = f
        x, f, g = step
        it += 1
        gmax = float(g.abs().max())
        history.append(f)
        if stall.stalled(f_old, f):
            msg, converged = stall.MESSAGE, True
            break
        if callback is not None and callback(IterInfo(it, f, gmax, x=x)):
            msg = STOPPED
            break
    return Result(x, float(f), gmax, it, converged, msg, history, stopped=msg == STOPPED)
