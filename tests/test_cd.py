"""prox-Newton's inner solver: coordinate descent on the weighted lasso q(d), finished by exact solves on
the support (``_cd._exact_on_support``), which must reach q's minimiser where cyclic CD alone crawls."""

import numpy as np
import pytest

from torchlogit.solvers import _cd


def _kkt(H, g, x, lam, d):
    """max_j dist(-(g + H d)_j, lam_j d|x_j + d_j|): 0 exactly at q's minimiser."""
    grad, v = g + H @ d, x + d
    at_zero = np.maximum(np.abs(grad) - lam, 0.0)
    off_zero = np.abs(grad + lam * np.sign(v))
    return float(np.where(v == 0, at_zero, off_zero).max())


def _correlated(m, rho, seed, ridge=1e-4):
    """H = a Gram of features with pairwise correlation ~rho (condition number ~ m / (1 - rho)) plus a ridge."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(400, 1))
    A = np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.normal(size=(400, m))
    return A.T @ A / 400 + ridge * np.eye(m), rng


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("lam_scale", [0.0, 0.002, 0.02, 0.2])
def test_reaches_the_minimiser_on_correlated_features_in_few_sweeps(seed, lam_scale):
    H, rng = _correlated(30, 0.95, seed)
    g = rng.normal(size=30)
    x = rng.normal(size=30) * (rng.random(30) < 0.5)
    lam = np.full(30, lam_scale)
    lam[-1] = 0.0  # an unpenalised coordinate, as an intercept
    d, sweeps = _cd.solve(H, g, x, lam, max_sweeps=1000, tol=1e-14)
    assert _kkt(H, g, x, lam, d) <= 1e-9 * max(1.0, np.abs(g).max())
    # cyclic CD alone needs thousands of sweeps here (see the next test); the exact solve ends it early
    assert sweeps < 100


def test_without_the_exact_solve_cd_alone_stalls_here():
    """The reason for the exact solve: the same problem, CD only, does not reach the tolerance in 1,000 sweeps."""
    H, rng = _correlated(30, 0.95, 0)
    g = rng.normal(size=30)
    x = np.zeros(30)
    lam = np.full(30, 0.002)
    stalled = _plain_cd(H, g, x, lam, sweeps=1000)
    assert _kkt(H, g, x, lam, stalled) > 1e-6  # far from the minimiser after 1,000 plain sweeps
    d, used = _cd.solve(H, g, x, lam, max_sweeps=1000, tol=1e-14)
    assert _kkt(H, g, x, lam, d) <= 1e-9 and used < 100


def _plain_cd(H, g, x, lam, sweeps):
    """Cyclic CD on q with nothing else (a reference written out in numpy)."""
    d = np.zeros_like(g)
    for _ in range(sweeps):
        for j in range(len(g)):
            u = x[j] + d[j] - (g[j] + H[j] @ d) / H[j, j]
            t = lam[j] / H[j, j]
            d[j] = np.sign(u) * max(abs(u) - t, 0.0) - x[j]
    return d


def test_signs_that_must_flip_or_vanish_are_handled():
    """Start on a support of the wrong signs: the active-set steps stop at zero crossings, CD re-enters."""
    H, rng = _correlated(12, 0.8, 3)
    x = np.ones(12)  # every coordinate positive at the start
    g = 2.0 * rng.normal(size=12) + 1.0  # pushes several negative or to zero
    lam = np.full(12, 0.3)
    d, _ = _cd.solve(H, g, x, lam, max_sweeps=1000, tol=1e-14)
    v = x + d
    assert _kkt(H, g, x, lam, d) <= 1e-9
    assert (v == 0).any() and (v < 0).any()  # both happened: the case is the one meant


def test_singular_support_falls_back_to_cd():
    """Two identical columns and no penalty: H_SS is singular; the Cholesky refuses and CD still ends at a minimiser."""
    A = np.random.default_rng(5).normal(size=(50, 4))
    A = np.column_stack([A, A[:, 0]])
    H = A.T @ A / 50
    g = H @ np.random.default_rng(7).normal(size=5)  # in H's range: q is bounded below
    lam = np.zeros(5)
    d, _ = _cd.solve(H, g, np.zeros(5), lam, max_sweeps=5000, tol=1e-13)
    assert np.abs(g + H @ d).max() <= 1e-8


def test_the_models_decrease_keeps_tiny_steps():
    """prox-Newton's delta = g^T d + sum lam (|x + d| - |x|): for d ~ 1e-12 on x ~ 1 the plain difference is
    rounding, which hid real steps near the optimum (a fit stopped at KKT 9e-12 instead of 1e-17)."""
    import torch

    from torchlogit.solvers.prox_newton import _abs_change

    x = torch.tensor([1.0, -2.0, 0.0, 1e-3], dtype=torch.float64)
    d = torch.tensor([1e-12, 1e-12, 1e-12, -3e-3], dtype=torch.float64)
    change = _abs_change(x, d)
    assert change[0] == 1e-12 and change[1] == -1e-12  # exact, where |1 + 1e-12| - 1 is 1.00009e-12
    assert change[2] == 1e-12 and change[3] == pytest.approx(1e-3)  # from zero, and through a sign change
