"""Proximal Newton with working sets: the exact solver for L1 and elastic-net penalties.

    minimise  F(x) = f(x) + sum_j lam_j |x_j|       f smooth (data term + any L2 part), lam_j >= 0

The method of skglm's ProxNewton, celer, LIBLINEAR's newGLMNET and glmnet,
in named steps; each outer iteration is:

1. scores: one pass for the gradient g of f; per coordinate the KKT
   violation, dist(-g_j, lam_j d|x_j|) (0 exactly at the optimum);
2. working set: the groups (features; a multinomial feature's K coefficients
   together) that are in the support, plus the most violating ones, at least
   ``2 |support|`` of them; coordinates without a group (intercepts) always;
3. direction: the quadratic model of f on the working set, with H its
   Hessian there (one pass), plus the L1 term: a weighted lasso solved to
   an accuracy that tightens with the KKT violation, by coordinate descent
   (:mod:`torchlogit.solvers._cd`, numba) on the CPU, or by FISTA in torch
   where H lives on a GPU (:func:`fista_direction`), so the whole method
   runs on the data's device;
4. line search: backtracking on F from the full step, Armijo with the
   model's decrease delta = g^T d + sum lam (|x + d| - |x|).

It stops when the largest KKT violation is <= tol (converged), when F has
not decreased beyond its own rounding for three iterations, or when the
model on every violating group finds no descent at all (converged as far
as the data's precision allows: float32 data with tol 1e-8), when the line
search finds no decrease, or after ``max_iter`` outer iterations.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _cd
from ._result import STOPPED, IterInfo, Result, RoundingStall

EPS = torch.finfo(torch.float64).eps


def kkt_violation(x, g, lam):
    """Per coordinate: dist(-g, lam d|x|); |g| where lam = 0."""
    at_zero = (g.abs() - lam).clamp_min(0.0)
    off_zero = (g + lam * torch.sign(x)).abs()
    return torch.where(x == 0, at_zero, off_zero)


def fista_direction(H, g, x, lam, tol, max_iter=20000):
    """d minimising q(d) = g^T d + d^T H d / 2 + sum_j lam_j |x_j + d_j|, in torch on H's device.

    Accelerated proximal gradient on u = x + d with step 1/L, L >= the
    largest eigenvalue of H (its largest absolute row sum, Gershgorin),
    restarted whenever the momentum points uphill (O'Donoghue and Candes).
    Stops when the model's KKT violation is <= ``tol`` (as the outer loop
    measures it) or after ``max_iter`` steps. All tensors float64, (m,) and (m, m).
    """
    L = float(H.abs().sum(dim=1).max().clamp_min(1e-300))
    u = x.clone()
    v, t = u.clone(), 1.0
    for _ in range(max_iter):
        grad = g + H @ (v - x)  # the model's gradient at v
        z = v - grad / L
        u_new = torch.sign(z) * (z.abs() - lam / L).clamp_min(0.0)  # prox of sum lam |.| / L
        if float(((v - u_new) * (u_new - u)).sum()) > 0.0:  # momentum uphill: restart from u
            v, t = u.clone(), 1.0
            continue
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        v = u_new + ((t - 1.0) / t_new) * (u_new - u)
        u, t = u_new, t_new
        if float(kkt_violation(u, g + H @ (u - x), lam).max()) <= tol:
            break
    return u - x


INNER = "auto"  # 'cd' (numba, CPU), 'fista' (torch, any device) or 'auto': cd on the CPU


def _direction(H, g, x, lam, kkt):
    """The working set's step: the weighted lasso model solved to ~1e-2 of the outer KKT violation."""
    if INNER == "fista" or (INNER == "auto" and H.device.type != "cpu"):
        return fista_direction(H, g, x, lam, tol=1e-2 * kkt)
    Hn = H.cpu().numpy()
    step_tol = 1e-2 * kkt / max(float(np.diag(Hn).max()), 1e-300)  # CD's test is on coordinate changes
    d, _ = _cd.solve(Hn, g.cpu().numpy(), x.cpu().numpy(), lam.cpu().numpy(), tol=step_tol)
    return torch.from_numpy(d).to(x.device)


def _abs_change(x, d):
    """|x + d| - |x| per coordinate, without cancellation where the sign stays: sign(x) d there.

    Near the optimum d ~ 1e-9 on coordinates ~ 1: the plain difference is
    rounding (~1e-16 |x|), which can outweigh the model's whole decrease
    g^T d ~ 1e-20 and hide a real step.
    """
    v = x + d
    same = (x != 0) & (torch.sign(v) == torch.sign(x))
    return torch.where(same, torch.sign(x) * d, v.abs() - x.abs())


def _violating_groups(x, score, groups):
    """How many groups the working set could hold: those with a positive score or a non-zero coordinate."""
    grouped = groups >= 0
    return int(torch.unique(groups[grouped & ((score > 0) | (x != 0))]).numel())


def working_set(x, score, groups, n_groups, size):
    """(groups chosen, sorted): the groups holding a non-zero coordinate, and the best scoring others up to ``size``."""
    grouped = groups >= 0
    best = torch.zeros(n_groups, dtype=score.dtype, device=score.device)
    best.scatter_reduce_(0, groups[grouped], score[grouped], "amax")
    active = torch.zeros(n_groups, dtype=torch.bool, device=score.device)
    active[groups[grouped & (x != 0)]] = True
    best[active] = float("inf")  # the support always stays in
    size = min(n_groups, max(size, 2 * int(active.sum())))
    candidates = torch.argsort(best, descending=True)[:size]
    chosen = candidates[(best[candidates] > 0)]
    return torch.sort(chosen).values


def prox_newton(
    fun_and_grad,
    w0,
    *,
    lam,
    groups,
    hessian_ws,
    tol=1e-6,
    max_iter=100,
    callback=None,
    f_rtol=64 * EPS,
    ws_start=10,
):
    """Minimise F from ``w0``.

    fun_and_grad(x) -> (f: float, g: float64 tensor like x), the smooth part.
    lam (p,) float64: L1 weights, 0 for unpenalised coordinates.
    groups (p,) int64: the group of each coordinate, -1 for those always in the working set.
    hessian_ws(x, chosen) -> (idx (m,) int64, H (m, m) float64): the smooth part's
    Hessian on the coordinates of the ``chosen`` groups and the ungrouped ones;
    or, in place of H, a model whose ``solve(g, x, lam, kkt)`` returns the step
    (a large sparse working set, whose Hessian is never formed: ``_fit.ColumnModel``).
    ``f_rtol``: relative accuracy of the f values (float32 data: ~10 eps32).
    """
    x = w0.detach().to(torch.float64).clone()
    lam = lam.to(torch.float64)
    n_groups = int(groups.max()) + 1 if bool((groups >= 0).any()) else 0

    def composite(f, x):
        return f + float((lam * x.abs()).sum())

    f, g = fun_and_grad(x)
    F = composite(f, x)
    history, size, stall = [], ws_start, RoundingStall(f_rtol)
    msg, converged, it = f"max_iter={max_iter} reached", False, 0
    kkt = float(kkt_violation(x, g, lam).max()) if x.numel() else 0.0
    while True:
        if kkt <= tol:
            msg, converged = f"max KKT violation {kkt:.3g} <= tol {tol:.3g}", True
            break
        if it >= max_iter:
            break
        # 1-2. scores and the working set
        score = kkt_violation(x, g, lam)
        chosen = working_set(x, score, groups, n_groups, size)
        idx, H = hessian_ws(x, chosen)  # H: the (m, m) Hessian, or a model with solve(g, x, lam, kkt)
        # 3. direction: the weighted lasso on the working set, to an accuracy that follows the KKT violation
        d = torch.zeros_like(x)
        if isinstance(H, torch.Tensor):
            d[idx] = _direction(H.to(x.device), g[idx], x[idx], lam[idx], kkt)
        else:
            d[idx] = H.solve(g[idx], x[idx], lam[idx], kkt)
        delta = float(g @ d) + float((lam * _abs_change(x, d)).sum())
        if not delta < 0.0:
            size = 2 * max(size, len(chosen))  # the model sees no descent here: look at more groups
            if len(chosen) >= min(n_groups, _violating_groups(x, score, groups)):
                # every group that violates the KKT conditions is already in, and on them the model's
                # minimiser is d = 0: no coordinate can move at float64 resolution (as RoundingStall, converged)
                msg, converged = "no descent direction: converged at rounding level", True
                break
            continue
        # 4. line search on F
        f_noise = f_rtol * abs(F)
        t, accepted = 1.0, None
        for _ in range(30):
            x_t = x + t * d
            f_t, g_t = fun_and_grad(x_t)
            F_t = composite(f_t, x_t)
            if F_t <= F + 0.25 * t * delta or (F_t <= F + f_noise and t == 1.0):
                accepted = (x_t, f_t, g_t, F_t)
                break
            t *= 0.5
        if accepted is None:
            msg = "line search found no decrease (objective at rounding level)"
            break
        F_old = F
        x, f, g, F = accepted
        it += 1
        kkt = float(kkt_violation(x, g, lam).max())
        history.append(F)
        if stall.stalled(F_old, F):
            msg, converged = stall.MESSAGE, True
            break
        if callback is not None and callback(IterInfo(it, F, kkt, x=x)):
            msg = STOPPED
            break
    return Result(x, float(F), kkt, it, converged, msg, history, stopped=msg == STOPPED)
