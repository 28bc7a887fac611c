"""The penalty objects against brute force: prox, conjugate, KKT distance, Fenchel-Young gap, rescaling."""

import math

import pytest
import torch

from torchlogit.penalties import L1, L2, ElasticNet, NoPenalty, from_params

f64 = torch.float64
PENALTIES = [NoPenalty(), L2(0.7), L1(0.4), ElasticNet(0.5, 0.3)]
IDS = [p.name for p in PENALTIES]
GRID = torch.linspace(-6.0, 6.0, 240_001, dtype=f64)  # a 1-D grid for brute-force minima and suprema


@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
@pytest.mark.parametrize("w", [2.0, 0.5])
def test_prox_is_the_minimiser_it_claims(penalty, w):
    """prox(v, t) = argmin_u P(u) t + (u - v)^2 / 2, per coordinate, with weight w."""
    weighted = penalty.rescaled(torch.tensor([1.0 / w], dtype=f64))  # weights multiply by 1 / scale
    for v in (-1.3, -0.1, 0.0, 0.05, 2.2):
        step = 0.8
        objective = torch.stack([weighted.value(u.reshape(1)) for u in GRID[::100]]) * step + (GRID[::100] - v) ** 2 / 2
        brute = float(GRID[::100][objective.argmin()])
        assert float(weighted.prox(torch.tensor([v], dtype=f64), step)) == pytest.approx(brute, abs=6e-3)


@pytest.mark.parametrize("penalty", PENALTIES[1:], ids=IDS[1:])
def test_conjugate_is_the_supremum(penalty):
    for a in (-0.9, -0.2, 0.0, 0.3, 0.45):
        values = a * GRID - (penalty.l1 * GRID.abs() + 0.5 * penalty.l2 * GRID**2)
        closed = float(penalty.conjugate(torch.tensor([a], dtype=f64)))
        if math.isinf(closed):  # pure L1 beyond its threshold: unbounded, so the grid's maximum is at an edge
            assert int(values.argmax()) in (0, len(GRID) - 1) and float(values.max()) > 0
        else:
            assert closed == pytest.approx(float(values.max()), abs=1e-7)


@pytest.mark.parametrize("penalty", PENALTIES[1:], ids=IDS[1:])
def test_fenchel_young_gap_is_value_plus_conjugate_minus_inner_product(penalty):
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(3, 5, generator=gen, dtype=f64)
    W[0, :2] = 0.0
    B = 0.3 * torch.randn(3, 5, generator=gen, dtype=f64)
    direct = float(penalty.value(W) + penalty.conjugate(B) - (W * B).sum())
    stable = float(penalty.fenchel_young_gap(W, B))
    if math.isinf(direct):
        assert math.isinf(stable)
    else:
        assert stable == pytest.approx(direct, rel=1e-12, abs=1e-14) and stable >= 0


@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_kkt_distance_is_zero_exactly_at_a_prox_fixed_point(penalty):
    """W = prox(W - t G, t) is optimality for data gradient G; subdiff_distance must then be 0."""
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(20, generator=gen, dtype=f64) * 0.5
    # the minimiser of <G, W> + ||W - c||^2 / 2 + P(W): W = prox(c - G, 1); its data gradient is G + W - c
    c = torch.randn(20, generator=gen, dtype=f64)
    W = penalty.prox(c - G, 1.0)
    assert float(penalty.subdiff_distance(W, G + W - c).max()) < 1e-12
    assert float(penalty.subdiff_distance(W, G + W - c + 0.1).max()) > 0.05  # and not zero elsewhere


def test_rescaling_keeps_the_value_of_the_same_model():
    sigma = torch.tensor([2.0, 0.5, 10.0], dtype=f64)
    W = torch.tensor([[0.3, -1.0, 0.02]], dtype=f64)
    for penalty in PENALTIES:
        assert float(penalty.rescaled(sigma).value(W * sigma)) == pytest.approx(float(penalty.value(W)), rel=1e-14)


def test_scikit_learn_spellings():
    assert from_params("deprecated", 2.0, 0.0, 10).name == "l2"
    assert from_params("deprecated", 2.0, 1.0, 10).name == "l1" and from_params("l1", 2.0, 0.0, 10).name == "l1"
    assert from_params("deprecated", 2.0, 0.3, 10).name == "elasticnet"
    assert (
        from_params("deprecated", math.inf, 0.3, 10).name == "none" and from_params(None, 2.0, 0.0, 10).name == "none"
    )
    assert from_params("l2", 2.0, None, 10).alpha == pytest.approx(1 / 20)  # alpha = 1 / (C sum(sw))


@pytest.mark.parametrize("penalty", [L2(0.7), ElasticNet(0.5, 0.0)], ids=["l2", "elasticnet-ratio-0"])
def test_gradient_and_curvature_of_the_smooth_penalties_are_autograds(penalty):
    """gradient and curvature against torch.autograd on value, with per-coordinate weights (2, 1, 0.5)."""
    weighted = penalty.rescaled(torch.tensor([0.5, 1.0, 2.0], dtype=f64))
    W = torch.tensor([[0.3, -1.2, 2.0], [0.0, 0.7, -0.4]], dtype=f64, requires_grad=True)
    (grad,) = torch.autograd.grad(weighted.value(W), W)
    torch.testing.assert_close(weighted.gradient(W.detach()), grad, rtol=1e-14, atol=1e-15)
    hess = torch.autograd.functional.hessian(lambda V: weighted.value(V), W.detach())
    diagonal = torch.diagonal(hess.reshape(W.numel(), W.numel())).reshape(W.shape)
    torch.testing.assert_close(weighted.curvature(W.detach()), diagonal, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("penalty", [L1(0.4), ElasticNet(0.5, 0.3)], ids=["l1", "elasticnet"])
def test_the_penalties_without_a_kink_refuse_no_gradient_and_alpha_max(penalty):
    """An L1 part has no gradient (its prox instead); alpha_max is where W = 0 becomes optimal: at that alpha
    -G0 lies in the subdifferential of the penalty at 0 (KKT distance 0), a little below it does not."""
    with pytest.raises(TypeError, match="not differentiable"):
        penalty.gradient(torch.ones(3, dtype=f64))
    G0 = torch.tensor([0.2, -0.9, 0.5], dtype=f64)
    a = penalty.alpha_max(G0)
    ratio = penalty.l1_ratio if isinstance(penalty, ElasticNet) else 1.0
    assert a == pytest.approx(0.9 / ratio)
    at = type(penalty)(a, ratio) if isinstance(penalty, ElasticNet) else type(penalty)(a)
    below = type(penalty)(0.99 * a, ratio) if isinstance(penalty, ElasticNet) else type(penalty)(0.99 * a)
    zero = torch.zeros(3, dtype=f64)
    assert float(at.subdiff_distance(zero, G0).max()) == pytest.approx(0.0, abs=1e-15)
    assert float(below.subdiff_distance(zero, G0).max()) > 0


@pytest.mark.parametrize("penalty", [NoPenalty(), L2(0.7)], ids=["none", "l2"])
def test_alpha_max_is_infinite_without_an_l1_part(penalty):
    assert penalty.alpha_max(torch.tensor([0.2, -0.9], dtype=f64)) == math.inf


def test_no_penalty_has_zero_gradient_and_curvature():
    W = torch.tensor([[0.3, -1.2]], dtype=f64)
    assert float(NoPenalty().value(W)) == 0.0
    assert torch.equal(NoPenalty().gradient(W), torch.zeros_like(W)) and torch.equal(
        NoPenalty().curvature(W), torch.zeros_like(W)
    )
