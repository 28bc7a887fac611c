"""Wide data (n << d): binary L2 fits by Newton in the n coordinates of w = X^T beta (solver 'newton-dual')."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from torchlogit import LogisticRegression
from torchlogit._fit import representer_applies
from torchlogit._loss import POINTWISE, LinearModelLoss
from torchlogit._problem import Problem
from torchlogit.penalties import L1, L2, ElasticNet


def _wide(n, d, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)).astype(dtype)
    y = (X[:, :5].sum(1) + rng.logistic(size=n) > X[:, :5].sum(1).mean()).astype(int)
    return X, y


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_newton_dual_reaches_scikit_learns_optimum(fit_intercept, weighted):
    X, y = _wide(30, 3000)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=30) if weighted else None
    ours = LogisticRegression(C=0.3, tol=1e-10, fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
    assert ours.solver_ == "newton-dual" and ours.convergence_.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's lbfgs may warn at this tol; its optimum is what counts
        ref = SkLogisticRegression(C=0.3, tol=1e-12, max_iter=100_000, fit_intercept=fit_intercept)
        ref.fit(X, y, sample_weight=sw)
    assert np.linalg.norm(ours.coef_ - ref.coef_) <= 1e-5 * np.linalg.norm(ref.coef_)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5, atol=1e-7)
    assert ours.convergence_.duality_gap < 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_three_rows_and_many_columns_converge(dtype):
    """3 x 30,000: L-BFGS in 30,000 dimensions stalled at float32 rounding (objective 1.8x its optimum)."""
    X, y = _wide(3, 30_000, dtype=dtype)
    y = np.array([0, 1, 0])
    seen = []
    model = LogisticRegression(tol=1e-6).fit(X, y, callback=lambda info: seen.append(info.x.shape))
    assert model.solver_ == "newton-dual" and model.convergence_.converged
    assert model.convergence_.grad_max <= 1e-6 and model.convergence_.duality_gap < 1e-9
    tight = LogisticRegression(tol=1e-10).fit(X, y)
    assert seen and set(seen) == {(30_001,)}  # the callback sees theta, as for every solver
    # the same optimum as L-BFGS in float64
    ref = LogisticRegression(solver="lbfgs", tol=1e-9, max_iter=5000).fit(X.astype(np.float64), y)
    error = np.linalg.norm(tight.coef_ - ref.coef_) / np.linalg.norm(ref.coef_)
    assert error <= (1e-4 if dtype == np.float32 else 1e-5)


def test_which_problems_it_takes():
    X = torch.randn(10, 500, dtype=torch.float64)
    y = (torch.rand(10) < 0.5).double()
    s = torch.full((10,), 0.1, dtype=torch.float64)
    binary = LinearModelLoss(POINTWISE["binary"], 500, 1, True)
    assert representer_applies(Problem(binary, L2(0.1), X, y, s))
    for penalty in (L1(0.1), ElasticNet(0.1, 0.5), L2(0.0), L2(0.1, weights=torch.ones(500))):
        assert not representer_applies(Problem(binary, penalty, X, y, s))
    multi = LinearModelLoss(POINTWISE["multinomial"], 500, 3, True)
    assert not representer_applies(Problem(multi, L2(0.1), X, torch.zeros(10, dtype=torch.long), s))
    tall = torch.randn(100, 500, dtype=torch.float64)  # n^2 = 10,000 > 3 d = 1,500: L-BFGS
    assert not representer_applies(Problem(binary, L2(0.1), tall, torch.zeros(100).double(), torch.full((100,), 0.01)))
    with pytest.raises(ValueError, match="newton-dual"):
        LogisticRegression(solver="newton-dual").fit(np.random.default_rng(0).normal(size=(50, 3)), [0, 1] * 25)
