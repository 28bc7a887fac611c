"""A duality-gap certificate: how far an L2-penalised fit can be from the optimum.

For f(W, b) = sum_i s_i L_i(W x_i + b) + (l2 / 2) ||W||^2 with convex L_i, weak
Fenchel duality gives, for any b' with sum_i s_i dL_i/dz (W x_i + b') = 0
(the intercept's optimality condition at fixed W),

    f(W, b) - f*  <=  gap = [f(W, b) - f(W, b')] + ||grad_W f(W, b')||^2 / (2 l2).

(Derivation: take the dual point u_i = dL_i/dz at z'_i = W x_i + b'; the
Fenchel-Young equality L_i(z') + L_i*(u_i) = u_i . z' and sum_i s_i u_i = 0
make the dual objective f(W, b') - <W, A> - ||A||^2 / (2 l2) with
A = sum_i s_i u_i x_i^T = grad_W f(W, b') - l2 W; subtracting it from f(W, b)
leaves the expression above.) The gap is a bound, not an estimate: the
optimum is at most ``gap`` below f(W, b), up to floating-point rounding.
b' is found by Newton's method on the intercepts alone, from logits
X W^T computed once: two passes over X in all.
"""

from __future__ import annotations

import torch

f64 = torch.float64


def duality_gap(loss, theta, f_theta, X, y, s, l2, max_iter=50):
    """Upper bound on f(theta) - f* (same units as f_theta), or None when l2 == 0.

    ``loss`` a LinearModelLoss, ``theta`` float64 (p,), ``s`` the weights and
    ``l2`` the penalty used for ``f_theta``.
    """
    if not l2:
        return None  # no strong convexity: no bound of this kind
    k, d = loss.n_outputs, loss.n_features
    theta = theta.to(X.dtype)
    if loss.fit_intercept:
        W, b = loss.unpack(theta)
        Z0 = torch.nn.functional.linear(X, W)  # (n, k) logits without intercept: one pass
        b = _intercept_newton(loss.pointwise, Z0, y, s, b.to(f64), max_iter)
        theta = torch.cat([W.reshape(-1), b.to(X.dtype)])
    f_b, g_b = loss.loss_gradient(theta, X, y, s, l2)  # second pass
    gW = g_b[: k * d]
    return max(0.0, float(f_theta) - float(f_b)) + float(gW @ gW) / (2.0 * l2)


def _intercept_newton(pointwise, Z0, y, s, b, max_iter):
    """Minimise sum_i s_i L(Z0_i + b) over b (k,): damped Newton, no pass over X.

    From the solver's b the first full step nearly always lands: when the
    Newton decrement g^T H^-1 g is below 1e-10 the step is taken without
    evaluating the objective (the quadratic model is exact to O(decrement^3/2)),
    so a converged fit costs one or two sweeps over the n logits.
    """
    Z0 = Z0.to(f64)  # (n, k), once
    sw = s.to(f64)[:, None]

    def value(b):
        return float((pointwise.loss(Z0 + b, y).to(f64) * sw[:, 0]).sum())

    f = None  # the objective at b, evaluated only when a step must be damped
    for _ in range(max_iter):
        g_z, state = pointwise.gradient_state(Z0 + b, y)
        g = (sw * g_z).sum(0)  # (k,)
        if float(g.abs().max()) <= 1e-13:  # well below what changes the gap
            break
        if pointwise.multiclass:  # sum_i s_i (diag p_i - p_i p_i^T), singular along 1: add 1 1^T / k
            p = state
            H = torch.diag((sw * p).sum(0)) - (sw * p).T @ p + 1.0 / len(b)
        else:
            H = (sw[:, 0] * pointwise.hess_matvec(state, torch.ones_like(g_z))[:, 0]).sum().reshape(1, 1)
        step = torch.linalg.solve(H, g)
        if float(g @ step) < 1e-10:
            b, f = b - step, None
            continue
        f = value(b) if f is None else f
        for t in (1.0, 0.5, 0.25, 0.125):
            f_new = value(b - t * step)
            if f_new <= f:
                break
        else:
            break  # no decrease at float64 resolution: b is as good as it gets
        b, f = b - t * step, f_new
    return b
