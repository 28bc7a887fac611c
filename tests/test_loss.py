"""The math module against references: the lecture's numbers and torch.autograd."""

import math

import pytest
import torch
from conftest import make_problem

from torchlogit._loss import POINTWISE, BinaryCrossEntropy, LinearModelLoss, MultinomialCrossEntropy
from torchlogit._problem import Problem
from torchlogit.penalties import L1, L2, ElasticNet, NoPenalty

SMOOTH_PENALTIES = [NoPenalty(), L2(0.7)]  # every smooth penalty: gradients and Hessians are tested for each

KINDS = ["binary", "multinomial", "squared"]


def test_lecture_bce_numbers():
    # (y, p) pairs from the lecture, and their BCE: -(y log p + (1 - y) log(1 - p)).
    y = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    p = torch.tensor([0.2, 0.8, 0.3, 0.7], dtype=torch.float64)
    z = torch.log(p / (1 - p))[:, None]  # the logits that give these probabilities
    loss = BinaryCrossEntropy.loss(z, y)
    assert loss.tolist() == pytest.approx([1.6094, 0.2231, 0.3567, 1.2040], abs=5e-5)
    assert loss.mean().item() == pytest.approx(0.8483, abs=5e-5)
    # and torch's BCELoss on probabilities (the lecture's criterion) agrees
    assert torch.nn.BCELoss()(p, y).item() == pytest.approx(loss.mean().item(), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_for_huge_logits(dtype):
    z = torch.tensor([[1e4], [-1e4], [1e4], [-1e4]], dtype=dtype)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    loss = BinaryCrossEntropy.loss(z, y)
    assert torch.isfinite(loss).all()
    assert loss.tolist() == pytest.approx([0.0, 0.0, 1e4, 1e4])
    zk = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype)
    lk = MultinomialCrossEntropy.loss(zk, torch.tensor([0, 0]))
    assert lk.tolist() == pytest.approx([0.0, 2e4])
    logp = MultinomialCrossEntropy.link.log_inverse(zk)
    assert torch.isfinite(logp).all()
    assert torch.isfinite(BinaryCrossEntropy.link.log_inverse(z)).all()


def _loss(kind, dtype, fit_intercept=True, d=5, k=4):
    n_out = k if kind == "multinomial" else 1
    return LinearModelLoss(POINTWISE[kind], d, n_out, fit_intercept)


def _objective(problem, theta):
    """f = data term + penalty, through autograd-able torch operations only."""
    W, _ = problem.datafit.unpack(theta)
    return problem.datafit.objective(theta, problem.X, problem.y, problem.s) + problem.penalty.value(W)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("penalty", SMOOTH_PENALTIES, ids=lambda p: p.name)
def test_gradient_and_hessp_match_autograd(kind, dtype, fit_intercept, penalty):
    X, y, sw = make_problem(kind, dtype=dtype)
    problem = Problem(_loss(kind, dtype, fit_intercept), penalty, X, y, sw)
    theta = torch.randn(problem.datafit.n_params, dtype=dtype, generator=torch.Generator().manual_seed(1))
    theta.requires_grad_(True)
    f = _objective(problem, theta)
    (g_auto,) = torch.autograd.grad(f, theta, create_graph=True)
    f_cf, g_cf = problem.loss_gradient(theta.detach())
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    assert f_cf.dtype == torch.float64
    torch.testing.assert_close(f_cf, f.detach().to(torch.float64), rtol=rtol, atol=0)
    torch.testing.assert_close(g_cf, g_auto.detach().to(torch.float64), rtol=rtol, atol=rtol)

    v = torch.randn(problem.datafit.n_params, dtype=dtype, generator=torch.Generator().manual_seed(2))
    (hv_auto,) = torch.autograd.grad(g_auto @ v, theta)
    g2, hessp = problem.gradient_hessp(theta.detach())
    torch.testing.assert_close(g2, g_cf, rtol=rtol, atol=rtol)  # two float32 summation orders
    torch.testing.assert_close(hessp(v), hv_auto.to(torch.float64), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("penalty", SMOOTH_PENALTIES, ids=lambda p: p.name)
def test_full_hessian_matches_autograd(kind, fit_intercept, penalty):
    X, y, sw = make_problem(kind, n=50, d=3, k=3)
    problem = Problem(_loss(kind, torch.float64, fit_intercept, d=3, k=3), penalty, X, y, sw)
    theta = torch.randn(problem.datafit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    H_auto = torch.autograd.functional.hessian(lambda t: _objective(problem, t), theta)
    H = problem.hessian(theta, block_bytes=1)  # blocks of 16 rows: several
    if kind != "multinomial":
        torch.testing.assert_close(H, H_auto)
        return
    # Softmax: equal on the complement of the null space 1_K (x) e, and PD overall.
    g = problem.loss_gradient(theta)[1]
    step = torch.linalg.solve(H, g)
    torch.testing.assert_close(H_auto @ step, g, rtol=1e-8, atol=1e-10)
    assert torch.linalg.eigvalsh(H).min() > 0
    assert torch.linalg.eigvalsh(H_auto).min() > -1e-10


@pytest.mark.parametrize(
    "penalty, term",
    [
        (NoPenalty(), lambda w: 0.0),
        (L2(2.0), lambda w: 0.5 * 2.0 * w**2),
        (L1(2.0), lambda w: 2.0 * abs(w)),
        (ElasticNet(2.0, 0.25), lambda w: 2.0 * (0.25 * abs(w) + 0.75 / 2 * w**2)),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_objective_is_weighted_sum_plus_penalty(penalty, term):
    # f = sum_i sw_i loss_i + P(w), intercept unpenalised, by hand.
    X = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    sw = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    w, b = -0.5, -1.0
    theta = torch.tensor([w, b], dtype=torch.float64)
    by_hand = 0.0
    for xi, yi, si in zip([1, 2, 3], [0, 0, 1], [1.0, 2.0, 0.5]):
        p = 1 / (1 + math.exp(-(w * xi + b)))
        by_hand += si * -(yi * math.log(p) + (1 - yi) * math.log(1 - p))
    by_hand += term(w)
    problem = Problem(_loss("binary", torch.float64, True, d=1), penalty, X, y, sw)
    assert problem.objective(theta) == pytest.approx(by_hand, rel=1e-12)


def test_float32_objective_accumulates_in_float64():
    X, y, sw = make_problem("binary", n=200_000, d=3, dtype=torch.float32)
    loss = _loss("binary", torch.float32, True, d=3)
    theta = torch.tensor([0.3, -0.2, 0.1, 0.05])
    f32 = loss.objective(theta, X, y, sw)
    f64 = loss.objective(theta.double(), X.double(), y.double(), sw.double())
    assert f32.dtype == torch.float64
    assert abs(f32.item() - f64.item()) / f64.item() < 1e-6
