"""Small binary problems held as a standardised float64 design (``_compact``): the same objective, gradient,
Hessian and optimum as the general path, which standardises X's blocks at every evaluation."""

import numpy as np
import pytest
import torch
from conftest import make_problem

from torchlogit import _compact, _kernels
from torchlogit._certificate import duality_gap
from torchlogit._fit import Standardizer, fit_problem
from torchlogit._loss import POINTWISE, LinearModelLoss
from torchlogit._problem import Problem
from torchlogit._sparse import SparseX
from torchlogit.penalties import L1, L2, ElasticNet, NoPenalty

f64 = torch.float64


def _problem(penalty, fit_intercept=True, dtype=f64, n=80, d=6, shift=3.0):
    X, y, sw = make_problem("binary", n=n, d=d, dtype=dtype)
    X = X * torch.linspace(0.1, 10.0, d, dtype=dtype) + shift  # unscaled, off-centre columns
    loss = LinearModelLoss(POINTWISE["binary"], d, 1, fit_intercept)
    return Problem(loss, penalty, X, y, sw / sw.sum())


@pytest.fixture(params=["torch", "kernel"])
def gram(request, monkeypatch):
    """The design's Hessians (and moments) formed by torch, or by the numba kernel even on small data."""
    if request.param == "kernel":
        if not _kernels.ready():
            pytest.skip("numba is not installed (or its kernels not compiled): torch forms the Hessians")
        monkeypatch.setattr(_compact, "GRAM_KERNEL_FROM", 0)
    else:
        monkeypatch.setattr(_compact, "GRAM_KERNEL_FROM", 1 << 62)
        monkeypatch.setattr(_compact, "COMPILED", False)  # torch's steps throughout (moments, solvers, gap)
    return request.param


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_design_gives_the_general_paths_objective_gradient_and_hessian(fit_intercept, gram):
    problem = _problem(L2(0.1), fit_intercept)
    std = Standardizer.from_data(problem.X, problem.s, 1, fit_intercept)
    design = _compact.Design(problem)
    assert design.gram_kernel == (gram == "kernel")
    design.standardize(std)
    phi = torch.randn(problem.datafit.n_params, generator=torch.Generator().manual_seed(1), dtype=f64)
    theta = std.to_theta(phi)
    f, g = problem.data_loss_gradient(theta)
    f_c, g_c = design.loss_gradient(phi)
    assert float(f_c) == pytest.approx(float(f), rel=1e-13)
    torch.testing.assert_close(g_c, std.grad_to_phi(g), rtol=1e-12, atol=1e-14)
    H = problem.data_hessian(theta, std=std)
    torch.testing.assert_close(design.hessian(phi), H, rtol=1e-12, atol=1e-14)
    idx = torch.tensor([0, 2, 5] + ([6] if fit_intercept else []))
    torch.testing.assert_close(design.hessian(phi, idx), H[idx][:, idx], rtol=1e-12, atol=1e-14)
    other = 0.5 * phi  # not where loss_gradient was last evaluated: its logits are not reused
    H_other = problem.data_hessian(std.to_theta(other), std=std)
    torch.testing.assert_close(design.hessian(other), H_other, rtol=1e-12, atol=1e-14)


def test_fused_newton_terms_equal_the_separate_ones_and_each_hessian_is_handed_out_once(gram):
    """Newton's evaluations form H in the same kernel as f and g where the gram kernel serves (else nothing changes)."""
    problem = _problem(L2(0.1), n=300)
    std = Standardizer.from_data(problem.X, problem.s, 1, True)
    separate, fused = _compact.Design(problem), _compact.Design(problem)
    for design in (separate, fused):
        design.standardize(std)
    assert fused.fuse_hessian() == (gram == "kernel")
    phi = torch.randn(problem.datafit.n_params, generator=torch.Generator().manual_seed(2), dtype=f64) * 3
    (f, g), (f_fused, g_fused) = separate.loss_gradient(phi), fused.loss_gradient(phi)
    assert float(f_fused) == pytest.approx(float(f), rel=1e-13)
    torch.testing.assert_close(g_fused, g, rtol=1e-12, atol=1e-15)
    H = separate.hessian(phi)
    H_fused = fused.hessian(phi)
    torch.testing.assert_close(H_fused, H, rtol=1e-12, atol=1e-15)
    H_fused += 1.0  # as Newton adds the penalty's curvature, in place
    torch.testing.assert_close(fused.hessian(phi), H, rtol=1e-12, atol=1e-15)  # formed again, not the one changed
    torch.testing.assert_close(fused.hessian(0.5 * phi), separate.hessian(0.5 * phi), rtol=1e-12, atol=1e-15)


def test_moments_are_the_weighted_two_pass_ones_and_the_copy_is_standardised(gram):
    problem = _problem(L2(0.1))
    X, s = problem.X, problem.s
    design = _compact.Design(problem)
    mu, sigma = design.moments()
    mu_ref = s @ X
    torch.testing.assert_close(mu, mu_ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(sigma, (s @ (X - mu_ref) ** 2).sqrt(), rtol=1e-12, atol=0)
    design.standardize(Standardizer.from_scale(mu, sigma, 1, True))
    torch.testing.assert_close(design.A[:, :-1], (X - mu) / sigma, rtol=1e-12, atol=1e-14)
    assert bool((design.A[:, -1] == 1).all())
    assert torch.equal(problem.X, _problem(L2(0.1)).X)  # the user's X is never written


@pytest.mark.parametrize("given", [False, True], ids=["own moments", "given standardisation"])
def test_correlation_is_the_standardised_rows_weighted_gram(gram, given):
    """The L-BFGS preconditioner's R from every row: the kernel path rescales the moments' product."""
    problem = _problem(L2(0.1))
    X, s = problem.X, problem.s
    design = _compact.Design(problem)
    mu, sigma = design.moments()
    std = Standardizer.from_scale(mu + 0.5 * given, sigma * (1 + given), 1, True)
    design.standardize(std)
    Z = (X - std.mu) / std.sigma
    torch.testing.assert_close(design.correlation(), (Z * s[:, None]).T @ Z / s.sum(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scale", [1e-200, 1e160])
def test_squares_out_of_range_leave_the_design_to_the_general_path(scale):
    problem = _problem(NoPenalty())
    problem = Problem(problem.datafit, problem.penalty, problem.X * scale, problem.y, problem.s)
    assert _compact.Design(problem).moments() is None


@pytest.mark.parametrize("penalty", [NoPenalty(), L2(0.05), L1(0.02), ElasticNet(0.04, 0.5)], ids=lambda p: p.name)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_fits_reach_the_general_paths_optimum(monkeypatch, penalty, fit_intercept, dtype, gram):
    problem = _problem(penalty, fit_intercept, dtype)
    assert _compact.applies(problem)
    solver = "prox-newton" if penalty.l1 else "newton"
    w0 = torch.zeros(problem.datafit.n_params, dtype=f64)
    compact = fit_problem(problem, solver=solver, w0=w0, tol=1e-10, max_iter=200)
    monkeypatch.setattr(_compact, "COMPACT_BYTES", 0)
    assert not _compact.applies(problem)
    general = fit_problem(problem, solver=solver, w0=w0, tol=1e-10, max_iter=200)
    assert compact.converged and general.converged
    rtol = 1e-5 if dtype == torch.float32 else 1e-8
    np.testing.assert_allclose(
        compact.x.numpy(), general.x.numpy(), rtol=rtol, atol=rtol * float(general.x.abs().max())
    )
    assert compact.fun == pytest.approx(general.fun, rel=1e-6 if dtype == torch.float32 else 1e-12)
    if penalty.l1:
        assert torch.equal(compact.x[:-1] == 0, general.x[:-1] == 0) if fit_intercept else True
    if penalty.alpha:
        assert compact.duality_gap <= (1e-7 if dtype == torch.float32 else 1e-9)  # the certificate reads X as it is


@pytest.mark.parametrize("penalty", [L2(0.05), L1(0.02), L1(0.001), ElasticNet(0.04, 0.5)], ids=lambda p: p.name)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("compiled_gap", [True, False], ids=["compiled", "torch"])
def test_the_designs_certificate_is_the_general_one(monkeypatch, penalty, fit_intercept, compiled_gap):
    """The gap a fit on a Design reports (from the design, in phi; compiled or by torch's steps) is the one the
    general path forms from X, short of the optimum (where it is large, and for pure L1 the dual point is
    scaled) and at it."""
    monkeypatch.setattr(_compact, "COMPILED", compiled_gap)
    problem = _problem(penalty, fit_intercept, n=200)
    solver = "prox-newton" if penalty.l1 else "newton"
    w0 = torch.zeros(problem.datafit.n_params, dtype=f64)
    gaps = []
    for max_iter, tol in ((1, 1e-3), (100, 1e-10)):
        res = fit_problem(problem, solver=solver, w0=w0, tol=tol, max_iter=max_iter)
        general = duality_gap(problem, res.x, res.fun)
        assert res.duality_gap == pytest.approx(general, rel=1e-6, abs=1e-15)
        gaps.append(res.duality_gap)
    assert gaps[0] > 1e3 * gaps[1]


def test_a_given_standardisation_is_used(monkeypatch):
    """A regularisation path passes one Standardizer to all its fits; the design must use it, not its own."""
    problem = _problem(L2(0.05))
    w0 = torch.zeros(problem.datafit.n_params, dtype=f64)
    std = Standardizer.from_scale(torch.full((6,), 2.0, dtype=f64), torch.full((6,), 3.0, dtype=f64), 1, True)
    seen = []
    monkeypatch.setattr(_compact.Design, "standardize", lambda self, s: seen.append(s) or _ORIGINAL(self, s))
    res = fit_problem(problem, solver="newton", w0=w0, tol=1e-10, max_iter=100, std=std)
    assert seen == [std]
    ref = fit_problem(problem, solver="newton", w0=w0, tol=1e-10, max_iter=100)
    np.testing.assert_allclose(res.x.numpy(), ref.x.numpy(), rtol=1e-8, atol=1e-10)


_ORIGINAL = _compact.Design.standardize


def test_the_gram_kernel_serves_narrow_designs_only(gram):
    """Wide data (3 x 100,000 fits in a design) never forms a p x p product by the kernel, nor a timing of one."""
    assert not _compact._gram_kernel(3, 100_001)
    assert _compact._gram_kernel(10_000, 21) == (gram == "kernel")


def test_which_problems_get_a_design():
    assert _compact.applies(_problem(L2(0.1)))
    X, y, sw = make_problem("multinomial", n=40, d=4, k=3)
    multinomial = Problem(LinearModelLoss(POINTWISE["multinomial"], 4, 3, True), L2(0.1), X, y, sw / sw.sum())
    assert not _compact.applies(multinomial)  # K^2 Hessian blocks: the general path
    big = _problem(L2(0.1), n=(_compact.COMPACT_BYTES // (8 * 7)) + 1)
    assert not _compact.applies(big)
    small = _problem(L2(0.1))
    import scipy.sparse

    sparse = Problem(
        small.datafit,
        small.penalty,
        SparseX.from_scipy(scipy.sparse.csr_matrix(small.X.numpy()), "cpu"),
        small.y,
        small.s,
    )
    assert not _compact.applies(sparse)  # never densified


@pytest.fixture
def compiled():
    if _kernels.design_solvers() is None:
        pytest.skip("numba is not installed (or its kernels not compiled): the torch solvers run on the design")


def _fit_both_ways(monkeypatch, problem, solver, **kwargs):
    """(compiled, torch): the same fit by ``_design_kernels`` and by the torch solver on the same design."""
    w0 = torch.zeros(problem.datafit.n_params, dtype=f64)
    calls = []
    original = _compact.compiled_solve
    monkeypatch.setattr(_compact, "compiled_solve", lambda *a, **k: calls.append(1) or original(*a, **k))
    fast = fit_problem(problem, solver=solver, w0=w0, **kwargs)
    assert calls, "the compiled solver did not serve"
    monkeypatch.setattr(_compact, "COMPILED", False)
    slow = fit_problem(problem, solver=solver, w0=w0, **kwargs)
    return fast, slow


@pytest.mark.parametrize(
    "penalty", [NoPenalty(), L2(0.05), L1(0.1), L1(0.05), ElasticNet(0.1, 0.5)], ids=lambda p: f"{p.name}{p.alpha}"
)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_the_compiled_solvers_take_the_torch_solvers_steps(monkeypatch, compiled, penalty, fit_intercept, dtype):
    """Newton and prox-Newton compiled whole: the same iterations, stopping rule, optimum and support."""
    problem = _problem(penalty, fit_intercept, dtype, n=150, d=8)
    solver = "prox-newton" if penalty.l1 else "newton"
    fast, slow = _fit_both_ways(monkeypatch, problem, solver, tol=1e-10, max_iter=200)
    assert fast.converged and slow.converged
    assert fast.n_iter == slow.n_iter and len(fast.history) == fast.n_iter
    np.testing.assert_allclose(fast.history, slow.history, rtol=1e-12)
    np.testing.assert_allclose(fast.x.numpy(), slow.x.numpy(), rtol=1e-8, atol=1e-9 * float(slow.x.abs().max()))
    assert fast.fun == pytest.approx(slow.fun, rel=1e-13)
    assert fast.message.split()[0] == slow.message.split()[0]  # the same reason (the numbers are rounding)
    if penalty.l1:
        assert torch.equal(fast.x == 0, slow.x == 0)
        assert 0 < int((fast.x[:8] != 0).sum()) < 8  # a real selection, not all or nothing
    if penalty.alpha:
        assert fast.duality_gap == pytest.approx(slow.duality_gap, rel=1e-3, abs=1e-14)


def test_the_compiled_solvers_stop_and_say_why_as_the_torch_ones(monkeypatch, compiled):
    problem = _problem(L1(0.05), n=150, d=8)
    fast, slow = _fit_both_ways(monkeypatch, problem, "prox-newton", tol=1e-10, max_iter=2)
    assert fast.n_iter == slow.n_iter == 2
    assert not fast.converged and fast.message == slow.message == "max_iter=2 reached"
    fast, slow = _fit_both_ways(monkeypatch, _problem(L2(0.05)), "newton", tol=1e-10, max_iter=0)
    assert fast.n_iter == 0 and fast.history == [] and fast.message == slow.message
    np.testing.assert_array_equal(fast.x.numpy(), 0.0)


def test_compiled_newton_on_collinear_columns_without_a_penalty_takes_the_minimum_norm_step(monkeypatch, compiled):
    """A singular Hessian (a repeated column, no penalty): Cholesky fails and the pseudo-inverse steps, as in torch."""
    problem = _problem(NoPenalty(), n=120, d=4)
    X = torch.cat([problem.X, problem.X[:, :1]], dim=1)  # column 4 repeats column 0
    loss = LinearModelLoss(POINTWISE["binary"], 5, 1, True)
    problem = Problem(loss, NoPenalty(), X, problem.y, problem.s)
    fast, slow = _fit_both_ways(monkeypatch, problem, "newton", tol=1e-9, max_iter=100)
    assert fast.converged and slow.converged
    assert fast.fun == pytest.approx(slow.fun, rel=1e-12)
    keep = [1, 2, 3, 5]  # the columns not repeated, and the intercept
    np.testing.assert_allclose(fast.x[keep].numpy(), slow.x[keep].numpy(), rtol=1e-6, atol=1e-8)
    assert float(fast.x[0] + fast.x[4]) == pytest.approx(float(slow.x[0] + slow.x[4]), rel=1e-6)
    # the pseudo-inverse splits the pair's weight evenly (torch's Cholesky of the nearly singular H may not)
    assert float(fast.x[0]) == pytest.approx(float(fast.x[4]), rel=1e-9)


def test_a_callback_gets_every_iteration_from_the_torch_solver(compiled):
    """The compiled solvers report nothing per iteration, so a fit with a callback keeps the torch loop."""
    problem = _problem(L2(0.05))
    seen = []
    w0 = torch.zeros(problem.datafit.n_params, dtype=f64)
    res = fit_problem(problem, solver="newton", w0=w0, tol=1e-10, max_iter=100, callback=seen.append)
    assert [info.iteration for info in seen] == list(range(1, res.n_iter + 1))


def test_the_compiled_history_grows_past_its_first_buffer(monkeypatch, compiled):
    """The compiled solvers keep every iteration's objective, however large max_iter (their buffer doubles)."""
    problem = _problem(NoPenalty(), n=150, d=8)
    y = (problem.X[:, 0] > problem.X[:, 0].median()).to(f64)  # separable: no optimum, f falls at every step
    problem = Problem(problem.datafit, problem.penalty, problem.X, y, problem.s)
    fast, slow = _fit_both_ways(monkeypatch, problem, "newton", tol=0.0, max_iter=40)
    assert fast.n_iter == slow.n_iter == 40 and len(fast.history) == 40  # 16 fit in the first buffer
    np.testing.assert_allclose(fast.history[:20], slow.history[:20], rtol=1e-9)
    assert all(a > b for a, b in zip(fast.history, fast.history[1:]))
