"""Full-batch L-BFGS: two-loop recursion plus a weak Wolfe line search.

State lives in float64 (vectors of length p, cheap); the data passes through
``fun_and_grad`` in whatever dtype the caller chose.
"""

from __future__ import annotations

import torch

from ._linesearch import drive, wolfe_steps
from ._result import STOPPED, IterInfo, Result

EPS = torch.finfo(torch.float64).eps


def _direction(g, s_hist, y_hist, precondition=None):
    """-H g with H the L-BFGS inverse-Hessian estimate (Nocedal & Wright, alg. 7.4).

    The recursion starts from H0 = gamma M, M = ``precondition`` (identity when
    None) and gamma = s.y / y.M.y from the newest pair: a good M (an estimate
    of the inverse Hessian's shape) leaves the memory pairs only the rest of
    the curvature to learn.
    """
    M = precondition or (lambda v: v)
    q = -g
    alphas = []
    rhos = [1.0 / float(y @ s) for s, y in zip(s_hist, y_hist)]
    for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rhos)):
        a = rho * float(s @ q)
        q = q - a * y
        alphas.append(a)
    q = M(q)
    if s_hist:  # initial scaling gamma = s.y / y.M.y from the newest pair
        q = q * (float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ M(y_hist[-1])))
    for s, y, rho, a in zip(s_hist, y_hist, rhos, reversed(alphas)):
        q = q + (a - rho * float(y @ q)) * s
    return q


def lbfgs(
    fun_and_grad,
    w0,
    *,
    tol=1e-4,
    max_iter=100,
    callback=None,
    memory=10,
    ftol=64 * EPS,
    f_rtol=64 * EPS,
    precondition=None,
    scaled=False,
):
    """Minimise a smooth function from ``w0``.

    fun_and_grad(w) -> (f: float, g: float64 tensor like w)
    Stops when max|g| <= tol (converged), when the relative decrease of f in
    one step falls below ``ftol`` (converged: f is at rounding level), when no
    step satisfies the line search, or after ``max_iter`` iterations.
    ``f_rtol``: relative accuracy of the f values (float32 data: ~10 eps32).
    ``precondition(v) -> M v``: a symmetric positive definite approximation of
    the inverse Hessian's shape (its scale is learnt), or None; ``scaled``: M
    has the inverse Hessian's units too (see ``lbfgs_steps``).
    """
    options = {"memory": memory, "ftol": ftol, "f_rtol": f_rtol, "precondition": precondition, "scaled": scaled}
    steps = lbfgs_steps(w0, tol=tol, max_iter=max_iter, callback=callback, **options)
    return drive(steps, fun_and_grad)


def _remember(s_hist, y_hist, s, y, memory):
    """Append the pair (s, y) where s.y > 0 (keeping the inverse-Hessian estimate positive definite); keep the
    newest ``memory`` pairs."""
    if float(s @ y) > EPS * float(y @ y):
        s_hist.append(s)
        y_hist.append(y)
        if len(s_hist) > memory:
            s_hist.pop(0)
            y_hist.pop(0)


def lbfgs_steps(
    w0,
    *,
    tol,
    max_iter,
    callback=None,
    memory=10,
    ftol=64 * EPS,
    f_rtol=64 * EPS,
    precondition=None,
    pairs=None,
    done=None,
    scaled=False,
):
    """:func:`lbfgs` as a generator: yields each point x it needs, receives (f, g) there; returns its Result.

    The same steps, stopping rules and messages whoever evaluates the
    function: :func:`lbfgs` with one function, ``torchlogit._folds`` with one
    pass over the data for many folds' points at once. ``pairs``: curvature
    pairs (s list, y list) to start from, e.g. a previous run's
    ``Result.pairs`` on the same function or on one whose gradient differs
    by a known linear term (the caller then corrects y); pairs with
    s.y <= 0 are dropped. ``done(f, g) -> bool``: a further test that must
    hold with max|g| <= tol for convergence (an estimate of the duality gap).
    ``scaled``: ``precondition`` estimates the inverse Hessian itself, units included, so the first step
    (before any pair) is tried at length 1, not shortened to a unit-length direction.
    """
    x = w0.detach().to(torch.float64).clone()
    f, g = yield x
    history = []
    s_hist, y_hist = [], []
    for s, y in zip(*(pairs or ((), ()))):
        _remember(s_hist, y_hist, s, y, memory)
    msg, converged = f"max_iter={max_iter} reached", False
    it = stalls = 0
    gmax = float(g.abs().max()) if g.numel() else 0.0
    while True:
        if gmax <= tol and (done is None or done(f, g)):
            msg, converged = f"max|gradient| {gmax:.3g} <= tol {tol:.3g}", True
            break
        if it >= max_iter:
            break
        d = _direction(g, s_hist, y_hist, precondition)
        # First step: unless M has the Hessian's units, the direction -M g carries g's; scale it to length <= 1.
        step = 1.0 if s_hist or scaled else min(1.0, 1.0 / float(d.norm()))
        found = yield from wolfe_steps(x, f, g, d, step=step, f_noise=f_rtol * abs(f))
        if found is None:
            msg = "line search found no decrease (objective at rounding level)"
            break
        t, f_new, g_new = found
        s, y = t * d, g_new - g
        _remember(s_hist, y_hist, s, y, memory)
        x, f_old, f, g = x + s, f, f_new, g_new
        it += 1
        gmax = float(g.abs().max())
        history.append(f)
        if callback is not None and callback(IterInfo(it, f, gmax, x=x)):
            msg = STOPPED
            break
        # A step accepted on the f_noise slack (f_old - f < 0) is not a sign of convergence:
        # only a true but negligible decrease is.
        if 0.0 <= (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
            stalls += 1
            if stalls >= 3:
                msg, converged = "relative reduction of the objective below ftol", True
                break
        else:
            stalls = 0
    return Result(x, float(f), gmax, it, converged, msg, history, stopped=msg == STOPPED, pairs=(s_hist, y_hist))
