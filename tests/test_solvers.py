"""Solvers as free functions: same optimum, honest reports, the lecture's loop."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import make_problem

from torchlogit._fit import Standardizer
from torchlogit._loss import POINTWISE, LinearModelLoss
from torchlogit._problem import Problem
from torchlogit.nn import LinearModel
from torchlogit.penalties import L2, NoPenalty
from torchlogit.solvers import SOLVERS, choose, get_optimizer, lbfgs, make_batches, newton, sgd
from torchlogit.solvers._linesearch import drive
from torchlogit.solvers.lbfgs import lbfgs_steps


def logistic_functions(kind="multinomial", l2=0.1, n=300, d=4, k=3):
    X, y, sw = make_problem(kind, n=n, d=d, k=k)
    loss = LinearModelLoss(POINTWISE[kind], d, k if kind == "multinomial" else 1, True)
    sw = sw / sw.sum()

    problem = Problem(loss, L2(l2) if l2 else NoPenalty(), X, y, sw)

    def fun_and_grad(w):
        f, g = problem.loss_gradient(w)
        return float(f), g

    return loss, fun_and_grad, problem.hessian, (X, y, sw)


@pytest.mark.parametrize("kind", ["binary", "multinomial", "squared"])
def test_newton_and_lbfgs_agree(kind):
    loss, fg, hess, _ = logistic_functions(kind)
    w0 = torch.zeros(loss.n_params, dtype=torch.float64)
    a = newton(fg, w0, tol=1e-10, max_iter=100, hessian=hess)
    b = lbfgs(fg, w0, tol=1e-10, max_iter=1000)
    assert a.converged and b.converged
    assert a.grad_max <= 1e-10 and a.n_iter < 15
    assert abs(a.fun - b.fun) <= 1e-12 * abs(a.fun)
    assert a.fun == pytest.approx(fg(a.x)[0]) and a.history[-1] == a.fun


def test_callback_sees_every_iteration_and_max_iter_zero_returns_w0():
    loss, fg, hess, _ = logistic_functions()
    seen = []
    res = lbfgs(fg, torch.zeros(loss.n_params, dtype=torch.float64), tol=1e-8, max_iter=50, callback=seen.append)
    assert [info.iteration for info in seen] == list(range(1, res.n_iter + 1))
    w0 = torch.full((loss.n_params,), 0.1, dtype=torch.float64)
    for solve, extra in [(lbfgs, {}), (newton, {"hessian": hess})]:
        res0 = solve(fg, w0, tol=1e-8, max_iter=0, **extra)
        assert res0.n_iter == 0 and not res0.converged
        torch.testing.assert_close(res0.x, w0)


def test_max_iter_stops_and_says_so():
    loss, fg, _, _ = logistic_functions()
    res = lbfgs(fg, torch.zeros(loss.n_params, dtype=torch.float64), tol=1e-12, max_iter=3)
    assert res.n_iter == 3 and not res.converged and "max_iter" in res.message


def test_sgd_is_the_lecture_loop_and_deterministic():
    loss, fg, _, (X, y, sw) = logistic_functions("binary")
    crit = POINTWISE["binary"]
    n = len(X)

    def run(seed):
        model = LinearModel(4, 1).double()
        W, b = model.linear.weight, model.linear.bias

        def forward_backward(idx):  # the lecture's forward + loss.backward(), by autograd
            model.zero_grad()
            batch = (sw[idx] * crit.loss(model(X[idx]), y[idx])).sum() * (n / len(idx))
            batch.backward()
            return batch

        return sgd(
            fg,
            torch.zeros(5, dtype=torch.float64),
            tol=None,
            max_iter=30,
            params=[W, b],
            forward_backward=forward_backward,
            batches=make_batches(n, 16, random_state=seed),
            optimizer="sgd",
            learning_rate=0.05,
        )

    a, b, c = run(0), run(0), run(1)
    torch.testing.assert_close(a.x, b.x)  # same random_state, same result
    assert not torch.equal(a.x, c.x)
    exact = newton(
        fg,
        torch.zeros(5, dtype=torch.float64),
        tol=1e-10,
        max_iter=50,
        hessian=lambda w: LinearModelLoss(crit, 4, 1, True).hessian(w, X, y, sw),
    )
    assert a.n_iter == 30 and len(a.history) == 30
    assert exact.fun <= a.fun <= exact.fun * 1.01
    assert a.history[-1] < a.history[0]


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
def test_estimator_sgd_takes_the_same_steps_as_autograd(kind, monkeypatch):
    """The closed-form backward of solver='sgd' equals loss.backward() of the lecture's loop, step for step."""
    import torchlogit._fit as fit
    from torchlogit import LogisticRegression

    X, y, _ = make_problem(kind, n=50, d=3, k=3)
    Xn, yn = X.numpy(), y.numpy()
    ours = LogisticRegression(solver="sgd", max_iter=4, batch_size=8, learning_rate=0.1, random_state=3, C=2.0).fit(
        Xn, yn
    )
    captured = {}
    original = fit.SOLVERS["sgd"]

    def autograd_sgd(fun_and_grad, w0, *, params, forward_backward, batches, **kw):
        params = list(params)
        closed = forward_backward

        def by_autograd(idx):  # rebuild the same batch loss with autograd and compare gradients
            value = closed(idx)
            grads = [p.grad.clone() for p in params]
            for p in params:
                p.grad = None
            with torch.enable_grad():
                W, b = params
                z = torch.nn.functional.linear(torch.as_tensor(Xn, dtype=W.dtype)[idx], W, b)
                target = torch.as_tensor(yn)[idx]
                pw = POINTWISE["binary" if kind == "binary" else "multinomial"]
                t = target.to(W.dtype) if kind == "binary" else target.long()
                auto = pw.loss(z, t).sum() * (len(Xn) / len(idx)) / len(Xn) + 0.5 * (W * W).sum() / (2.0 * len(Xn))
                auto.backward()
            for p, g in zip(params, grads):
                torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
            captured["checked"] = captured.get("checked", 0) + 1
            return value

        return original(fun_and_grad, w0, params=params, forward_backward=by_autograd, batches=batches, **kw)

    monkeypatch.setitem(fit.SOLVERS, "sgd", dataclasses.replace(original, function=autograd_sgd))
    again = LogisticRegression(solver="sgd", max_iter=4, batch_size=8, learning_rate=0.1, random_state=3, C=2.0).fit(
        Xn, yn
    )
    assert captured["checked"] == 4 * 7  # 4 epochs of ceil(50 / 8) batches
    np.testing.assert_array_equal(ours.coef_, again.coef_)


def test_plain_sgd_update_equals_torch_optim_sgd():
    loss, fg, _, (X, y, sw) = logistic_functions("binary")
    crit = POINTWISE["binary"]

    def run(optimizer):
        model = LinearModel(4, 1).double()

        def forward_backward(idx):
            model.zero_grad()
            batch = (sw[idx] * crit.loss(model(X[idx]), y[idx])).sum() * (len(X) / len(idx))
            batch.backward()
            return batch

        return sgd(
            fg,
            torch.zeros(5, dtype=torch.float64),
            tol=None,
            max_iter=5,
            params=model.parameters(),
            forward_backward=forward_backward,
            batches=make_batches(len(X), 16, random_state=0),
            optimizer=optimizer,
            learning_rate=0.05,
        )

    fast, reference = run("sgd"), run(torch.optim.SGD)
    torch.testing.assert_close(fast.x, reference.x, rtol=0, atol=0)
    assert fast.history == reference.history


def test_optimizer_names():
    assert get_optimizer("sgd") is torch.optim.SGD
    assert get_optimizer("Adam") is torch.optim.Adam
    assert get_optimizer("rmsprop") is torch.optim.RMSprop
    for bad in ["lbfgs", "nope"]:
        with pytest.raises(ValueError, match="unknown optimizer"):
            get_optimizer(bad)


def test_registry_and_auto_rule():
    # the tolerance when the user gives none: the exact solvers' 1e-6; sgd runs its epochs
    assert {name: s.default_tol for name, s in SOLVERS.items()} == {
        "lbfgs": 1e-6,
        "newton": 1e-6,
        "sgd": None,
        "prox-newton": 1e-6,
        "newton-dual": 1e-6,
    }
    for name, solver in SOLVERS.items():  # every solver says what it needs; choose() honours it
        if "smooth" in solver.needs:
            with pytest.raises(ValueError, match=f"Solver {name} supports only 'l2' or None penalties, got l1"):
                choose(name, 10, penalty_kind="l1")
        else:
            assert choose(name, 10, penalty_kind="elasticnet") == name
    for name in ("auto", "saga", "liblinear"):
        assert choose(name, 10, penalty_kind="l1") == "prox-newton"
    for name in ("newton-cg", "newton-cholesky", "sag"):
        with pytest.raises(ValueError, match="supports only 'l2' or None"):
            choose(name, 10, penalty_kind="elasticnet")
    assert choose("auto", 1000, lambda: (1.0, 0.5)) == "newton" and choose("auto", 1001, lambda: (1.0, 0.5)) == "lbfgs"
    # the weighing of measured costs itself: tests/test_costs.py
    assert choose("newton-cholesky", 10) == "newton" and choose("saga", 5000) == "lbfgs"
    with pytest.raises(ValueError, match="unknown solver"):
        choose("magic", 3)


def test_linear_model_forward_returns_logits():
    model = LinearModel(3, 2)
    x = torch.randn(5, 3)
    torch.testing.assert_close(model(x), x @ model.linear.weight.T + model.linear.bias)
    theta = model.to_vector()
    again = LinearModel.from_vector(theta, 3, 2)
    torch.testing.assert_close(again(x), model(x))
    loss = LinearModelLoss(POINTWISE["multinomial"], 3, 2, True)
    torch.testing.assert_close(loss.logits(theta, x), model(x))  # one parameter layout
    assert np.isclose(float(theta.numel()), loss.n_params)


def correlated_problem(n=2000, d=40, k=4, dtype=torch.float64, seed=0):
    """Columns are random walks, so neighbours are strongly correlated (like pixels), on scales 0.1..10."""
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, d, generator=g, dtype=torch.float64)
    X = torch.cumsum(Z, 1) / torch.arange(1, d + 1) ** 0.5 * torch.logspace(-1, 1, d, dtype=torch.float64)
    W = 0.3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    logits = X @ W.T / X.std(0).mean()
    y = torch.multinomial(torch.softmax(logits, 1), 1, generator=g).ravel()
    return X.to(dtype), y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_correlation_preconditioner_keeps_the_optimum_and_cuts_iterations(dtype, monkeypatch):
    import torchlogit._fit as fit

    X, y = correlated_problem(dtype=dtype)
    loss = LinearModelLoss(POINTWISE["multinomial"], X.shape[1], 4, True)
    sw = torch.ones(len(y), dtype=dtype)
    w0 = torch.zeros(loss.n_params, dtype=torch.float64)
    S = float(sw.sum())
    problem = Problem(loss, L2(1.0 / S), X, y, sw / S)
    ref = fit.fit_problem(problem, solver="newton", w0=w0, tol=1e-9, max_iter=100)
    runs = {}
    for max_features in (4096, 0):  # 0 switches the preconditioner off
        monkeypatch.setattr(fit, "PRECONDITION_MAX_FEATURES", max_features)
        runs[max_features] = fit.fit_problem(problem, solver="lbfgs", w0=w0, tol=1e-6, max_iter=5000)
    for res in runs.values():
        assert res.converged and res.grad_max <= 1e-6
        assert res.fun == pytest.approx(ref.fun, rel=1e-8)
    # measured: 20 against 307 (float64), 20 against 313 (float32)
    assert runs[4096].n_iter * 5 < runs[0].n_iter


@pytest.mark.parametrize("diagonal", [False, True])
def test_scaled_preconditioners_invert_the_hessian_at_the_null_model(diagonal):
    """Where every p_i is ybar (w = 0, the intercept's optimum) the binary Hessian in phi coordinates is
    c R + l2 / sigma^2 with c = ybar (1 - ybar), and 1 / c for the intercept: the scaled correlation
    preconditioner inverts it, and the scaled diagonal one inverts its diagonal."""
    from torchlogit._fit import correlation_preconditioner, diagonal_preconditioner

    X, y3 = correlated_problem(n=3000, d=12, k=3)
    y = (y3 == 0).to(torch.float64)
    n, d = X.shape
    s = torch.full((n,), 1.0 / n, dtype=torch.float64)
    std = Standardizer.from_data(X, s, 1, True)
    loss = LinearModelLoss(POINTWISE["binary"], d, 1, True)
    problem = Problem(loss, L2(1e-2), X, y, s)
    ybar = float(y.mean())
    theta = torch.cat([torch.zeros(d, dtype=torch.float64), torch.tensor([math.log(ybar / (1 - ybar))])])
    H = problem.hessian(theta, std=std)  # (d + 1, d + 1), phi coordinates
    c = ybar * (1 - ybar)
    l2 = problem.penalty.l2
    if diagonal:
        M = diagonal_preconditioner(std, l2, c, scaled=True)
        expected = 1.0 / H.diagonal()
        got = torch.stack([M(e) for e in torch.eye(d + 1, dtype=torch.float64)]).diagonal()
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=0)
    else:
        R = std.correlation(X, s, max_rows=n)  # every row: the exact weighted correlation
        M = correlation_preconditioner(std, X, s, l2, c, floor=0.0, R=R, scaled=True)
        MH = torch.stack([M(col) for col in H.T]).T
        torch.testing.assert_close(MH, torch.eye(d + 1, dtype=torch.float64), rtol=0, atol=1e-8)


def test_a_sparse_x_gets_the_correlation_preconditioner_only_where_it_costs_few_passes(monkeypatch):
    """A sparse X's correlation preconditioner densifies its sampled rows (r d^2 multiply-adds, r ~ 10 d): it is
    formed where that is at most PRECONDITION_MAX_PASSES passes over the non-zeros, else the diagonal one is;
    a dense X of any shape up to PRECONDITION_MAX_FEATURES columns keeps it. Both reach the same optimum."""
    import scipy.sparse as sp

    import torchlogit._fit as fit
    from torchlogit import LogisticRegression
    from torchlogit._sparse import SparseX

    def csr(n, d, density):
        return SparseX.from_scipy(sp.random(n, d, density=density, format="csr", random_state=0))

    assert not fit.correlation_affordable(csr(20_000, 3_000, 0.01), 1)  # ~170,000 passes
    assert fit.correlation_affordable(csr(20_000, 20, 0.3), 1)  # r d^2 = 4e6 against 20 x 2 x 120,000
    assert fit.correlation_affordable(torch.zeros(20_000, 3_000), 1)  # dense: up to the column limit
    assert not fit.correlation_affordable(torch.zeros(10, fit.PRECONDITION_MAX_FEATURES + 1), 1)

    rng = np.random.default_rng(0)
    X = sp.random(3000, 800, density=0.01, format="csr", random_state=1)
    y = (X @ rng.standard_normal(800) + 0.1 * rng.standard_normal(3000) > 0).astype(int)
    formed = []
    real = fit.correlation_preconditioner
    monkeypatch.setattr(fit, "correlation_preconditioner", lambda *a, **k: formed.append(1) or real(*a, **k))
    kw = {"C": 10.0, "solver": "lbfgs", "tol": 1e-8, "max_iter": 5000}
    diagonal = LogisticRegression(**kw).fit(X, y)
    assert not formed  # 3,000 rows x 800^2 against 20 x 2 x 24,000 non-zeros
    monkeypatch.setattr(fit, "PRECONDITION_MAX_PASSES", 10**9)
    correlation = LogisticRegression(**kw).fit(X, y)
    assert formed
    # the same optimum: objectives to 1e-10; coefficients to 1e-4 (rare columns leave flat directions)
    assert diagonal.objective_ == pytest.approx(correlation.objective_, rel=1e-10)
    np.testing.assert_allclose(diagonal.coef_, correlation.coef_, rtol=0, atol=1e-4)


def test_a_scaled_preconditioner_takes_a_full_first_step():
    """On a quadratic with M = A^-1 and ``scaled``, the first step is Newton's: one iteration; without it the
    first step is cut to unit length and the run needs more."""
    g = torch.Generator().manual_seed(0)
    Q = torch.randn(8, 8, generator=g, dtype=torch.float64)
    A = Q @ Q.T + 0.1 * torch.eye(8, dtype=torch.float64)
    b = 100 * torch.randn(8, generator=g, dtype=torch.float64)  # the optimum is far from 0
    Ainv = torch.linalg.inv(A)

    def fg(x):
        return float(0.5 * x @ A @ x - b @ x), A @ x - b

    runs = {}
    for scaled in (False, True):
        steps = lbfgs_steps(
            torch.zeros(8, dtype=torch.float64), tol=1e-8, max_iter=100, precondition=lambda v: Ainv @ v, scaled=scaled
        )
        runs[scaled] = drive(steps, fg)
        assert runs[scaled].converged
    assert runs[True].n_iter == 1
    assert runs[False].n_iter > 1


def test_lbfgs_is_not_stopped_by_noise_in_f():
    """float32 objectives are exact to ~1e-7: a step accepted on that slack must not end the run."""
    loss, fg, _, _ = logistic_functions(l2=1e-4, n=400, d=6)
    gen = torch.Generator().manual_seed(0)

    def noisy(w):
        f, g = fg(w)
        return f * (1 + 1e-7 * float(torch.randn((), generator=gen, dtype=torch.float64))), g

    res = lbfgs(noisy, torch.zeros(loss.n_params, dtype=torch.float64), tol=1e-9, max_iter=2000, f_rtol=1e-6)
    assert res.converged and res.grad_max <= 1e-9, res.message


@pytest.mark.parametrize("k, fit_intercept", [(1, True), (3, True), (1, False), (4, False)])
def test_standardised_hessian_is_the_chain_rule_of_the_raw_one(k, fit_intercept):
    """hessian(..., std=std) = J^T H J, J the Jacobian of to_theta and H the objective's Hessian (both autograd)."""
    d, l2 = 5, 0.3
    g = torch.Generator().manual_seed(k)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    sigma = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    std = Standardizer(mu, sigma, k, fit_intercept)
    X = mu + sigma * torch.randn(60, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, max(k, 2), (60,), generator=g)
    y = y.to(torch.float64) if k == 1 else y
    sw = torch.full((60,), 1 / 60, dtype=torch.float64)
    loss = LinearModelLoss(POINTWISE["binary" if k == 1 else "multinomial"], d, k, fit_intercept)
    p = loss.n_params
    jacobian = torch.func.vmap(std.to_theta, in_dims=1, out_dims=1)(torch.eye(p, dtype=torch.float64))
    phi = torch.randn(p, generator=g, dtype=torch.float64)
    theta = std.to_theta(phi)
    problem = Problem(loss, L2(l2), X, y, sw)
    H_phi = problem.hessian(theta, std=std)
    H_theta = torch.autograd.functional.hessian(lambda t: loss.objective(t, X, y, sw) + L2(l2).value(t[: k * d]), theta)
    expected = jacobian.T @ H_theta @ jacobian
    if k == 1 or not fit_intercept:  # no null space (every softmax coordinate is penalised)
        torch.testing.assert_close(H_phi, expected)
    else:  # softmax intercepts: H_phi fills the null space, so compare the Newton step it gives
        grad = std.grad_to_phi(problem.loss_gradient(theta)[1])
        torch.testing.assert_close(expected @ torch.linalg.solve(H_phi, grad), grad)


def test_lbfgs_warm_pairs_from_another_penalty_keep_the_optimum_and_save_iterations():
    """Curvature pairs of a run at one L2 strength, moved to another (y += (l2' - l2) s on W), warm-start it."""
    from torchlogit.solvers._linesearch import drive
    from torchlogit.solvers.lbfgs import lbfgs_steps

    loss, fg_a, _, _ = logistic_functions(l2=0.1, n=400, d=6)
    _, fg_b, _, _ = logistic_functions(l2=0.01, n=400, d=6)
    first = lbfgs(fg_a, torch.zeros(loss.n_params, dtype=torch.float64), tol=1e-10, max_iter=500)
    kd = loss.n_params - 3  # the intercepts (last 3 entries) carry no penalty
    ys = [torch.cat([y[:kd] + (0.01 - 0.1) * s[:kd], y[kd:]]) for s, y in zip(*first.pairs)]
    cold = drive(lbfgs_steps(first.x, tol=1e-10, max_iter=500), fg_b)
    warm = drive(lbfgs_steps(first.x, tol=1e-10, max_iter=500, pairs=(first.pairs[0], ys)), fg_b)
    assert cold.converged and warm.converged
    assert abs(warm.fun - cold.fun) <= 1e-12 * abs(cold.fun)
    assert warm.n_iter < cold.n_iter
    bad = drive(lbfgs_steps(first.x, tol=1e-10, max_iter=500, pairs=(first.pairs[0], [-y for y in ys])), fg_b)
    assert bad.converged and bad.n_iter == cold.n_iter  # pairs with s.y <= 0 are dropped


def test_lbfgs_done_must_hold_with_the_gradient_test():
    """``done`` adds a convergence test: a run it refuses goes on past max|g| <= tol; one it accepts stops there."""
    from torchlogit.solvers._linesearch import drive
    from torchlogit.solvers.lbfgs import lbfgs_steps

    loss, fg, _, _ = logistic_functions()
    w0 = torch.zeros(loss.n_params, dtype=torch.float64)
    plain = drive(lbfgs_steps(w0, tol=1e-4, max_iter=200), fg)
    agreed = drive(lbfgs_steps(w0, tol=1e-4, max_iter=200, done=lambda f, g: True), fg)
    assert plain.converged and agreed.n_iter == plain.n_iter
    seen = []
    tighter = drive(lbfgs_steps(w0, tol=1e-4, max_iter=200, done=lambda f, g: seen.append(f) or len(seen) > 3), fg)
    assert tighter.converged and tighter.n_iter == plain.n_iter + 3 and tighter.fun < plain.fun
