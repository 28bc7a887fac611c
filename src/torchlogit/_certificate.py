"""A duality-gap certificate: how far a penalised fit can be from the optimum.

For f(W, b) = sum_i s_i L_i(W x_i + b) + P(W) with convex L_i and an
elastic-net P (:mod:`torchlogit.penalties`), weak Fenchel duality gives, for
any dual point u (n, k) with sum_i s_i u_i = 0 (the intercept's condition),

    f(W, b) - f*  <=  gap = f(W, b) - D(u),
    D(u) = -sum_i s_i L_i*(u_i) - P*(-A),   A = sum_i s_i u_i x_i^T  (k, d).

We take u_i = dL_i/dz at z'_i = W x_i + b', where b' re-optimises the
intercepts at fixed W (so sum_i s_i u_i = 0). By the Fenchel-Young equality
L_i(z') + L_i*(u_i) = u_i . z', the gap then reads

    gap = [f(W, b) - f(W, b')] + [P(W) + P*(-A) + <W, A>]

both brackets >= 0; the second is the penalty's Fenchel-Young gap, computed
per coordinate without cancellation (:meth:`Penalty.fenchel_young_gap`).
For L2 it is ||grad_W f(W, b')||^2 / (2 l2). For a pure L1 penalty P*(-A)
is infinite unless |A_j| <= l1 w_j, so u is scaled by c = min(1, min_j
l1 w_j / |A_j|) (which keeps sum_i s_i c u_i = 0) and D(c u) is evaluated
with the conjugates L* themselves (:meth:`conjugate` of each pointwise
loss). The gap is a bound, not an estimate, up to floating-point rounding.
b' is found by Newton's method on the intercepts alone, from logits X W^T
computed once: two passes over X in all.
"""

from __future__ import annotations

import torch

from ._sparse import linear

f64 = torch.float64


def duality_gap(problem, theta, f_theta, max_iter=50):
    """Upper bound on f(theta) - f* (f_theta: the objective at theta), or None without a penalty."""
    datafit, penalty, X, y, s = problem.datafit, problem.penalty, problem.X, problem.y, problem.s
    if not penalty.alpha:
        return None  # no strong convexity and no bounded dual: no bound of this kind
    k, d = datafit.n_outputs, datafit.n_features
    theta = theta.to(X.dtype)
    W, b = datafit.unpack(theta)
    if datafit.fit_intercept:
        Z0 = linear(X, W)  # (n, k) logits without intercept: one pass
        b = _intercept_newton(datafit.pointwise, Z0, y, s, b.to(f64), max_iter)
        theta = torch.cat([W.reshape(-1), b.to(X.dtype)])
    data_b, g_b = datafit.loss_gradient(theta, X, y, s)  # second pass
    A = g_b[: k * d].view(k, d)  # X^T (s u): the data term's gradient in W at b'
    return _bound(
        penalty, W.to(f64), A, f_theta, data_b, lambda: datafit.logits(theta, X).to(f64), datafit.pointwise, y, s
    )


def design_duality_gap(design, pointwise, penalty, phi, f_phi, max_iter=50):
    """:func:`duality_gap` in the coordinates of a :class:`torchlogit._compact.Design` (binary, float64).

    ``penalty``: the problem's penalty rescaled to those coordinates (V = W
    sigma); ``phi`` (p,) the solution there and ``f_phi`` its objective. The
    gap is the same number as in theta's (the same logits and dual point;
    X'^T (s u) = (X^T (s u)) / sigma once sum_i s_i u_i = 0), formed from the
    design in memory: one product A phi and one A^T r, no pass over X.
    """
    d = design.features.shape[1]
    V = phi[:d].view(1, d)
    terms = design.gap_terms(phi, max_iter)  # the same steps compiled, where the kernels serve
    if terms is not None:
        b, data_b, G = terms
        Z = lambda: (design.A @ torch.cat([V[0], b]))[:, None]  # noqa: E731 (pure L1's scaled dual point only)
        return _bound(penalty, V, G[:d].view(1, d), f_phi, data_b, Z, pointwise, design.y, design.s)
    b = phi[d:].clone()  # (1,) or (0,)
    # products with the contiguous [X' 1] (its X' columns are a strided view, which a product would copy)
    Z0 = (design.A @ torch.cat([V[0], torch.zeros_like(b)]))[:, None]  # (n, 1) logits without the intercept
    if design.fit_intercept:
        b = _intercept_newton(pointwise, Z0, design.y, design.s, b, max_iter)
    Z = Z0 + b if design.fit_intercept else Z0
    rows, g_z = pointwise.loss_and_gradient(Z, design.y)
    A = ((design.s * g_z[:, 0]) @ design.A)[:d].view(1, d)  # X'^T (s u)
    return _bound(penalty, V, A, f_phi, design.s @ rows, lambda: Z, pointwise, design.y, design.s)


def _bound(penalty, W, A, f_theta, data_b, logits, pointwise, y, s):
    """The gap from W (k, d) float64, A = X^T (s u) (k, d) and the data term at b', ``data_b``; ``logits()``
    gives Z at b' (n, k) float64, needed only for a pure L1 penalty whose P* is infinite at -A."""
    fy = penalty.fenchel_young_gap(W, -A)
    if torch.isfinite(fy):
        return max(0.0, float(f_theta) - float(data_b) - float(penalty.value(W))) + float(fy)
    # pure L1 with |A_j| > l1 w_j somewhere: scale the dual point into P*'s domain
    limit = penalty.l1 * penalty._w(W) * torch.ones_like(W)
    c = float(torch.clamp(limit / A.abs().clamp_min(1e-300), max=1.0).min())
    u, _ = pointwise.gradient_state(logits(), y)
    dual = -float((s.to(f64) * pointwise.conjugate(c * u, y)).sum())
    return max(0.0, float(f_theta) - dual)


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
        step, info = torch.linalg.solve_ex(H, g)
        if int(info):  # exactly singular: a class with no weight (a CV fold without it), p = 0 for it
            step = torch.linalg.pinv(H) @ g
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
