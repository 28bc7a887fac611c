"""Finite but extreme inputs (issue 12, item 3) and the standardisation's rounding (item 1).

Each case either fits the right optimum or is refused with one line: never
NaN coefficients, never a silent all-zero model.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from torchlogit import LogisticRegression, _kernels
from torchlogit._fit import Standardizer

SOLVERS = ["newton", "lbfgs"]


@pytest.fixture(scope="module")
def cancer5():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:, :5], y


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e20), (np.float64, 1e200)])
@pytest.mark.parametrize("solver", SOLVERS)
def test_one_huge_cell_fits_the_optimum(cancer5, dtype, big, solver):
    """One cell of 1e20 (float32) / 1e200 (float64): its square overflows.

    At the optimum that cell's row is fitted exactly by a coefficient of
    ~1/big, which costs nothing in the penalty; the other coefficients are
    those of the fit without that row and column (scikit-learn, float64).
    """
    X, y = cancer5
    keep = [0, 1, 3, 4]
    ref = SkLogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X[1:, keep], y[1:])
    Xb = X.astype(dtype)
    Xb[0, 2] = big
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning either
        model = LogisticRegression(solver=solver).fit(Xb, y)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    np.testing.assert_allclose(model.coef_[0, keep], ref.coef_[0], rtol=2e-3, atol=1e-3 * np.abs(ref.coef_).max())
    assert abs(model.intercept_[0] - ref.intercept_[0]) <= 2e-3 * abs(ref.intercept_[0])
    assert abs(model.coef_[0, 2]) * big < 100  # a finite logit for that row


@pytest.mark.parametrize("dtype, tiny", [(np.float32, 1e-30), (np.float64, 1e-200)])
@pytest.mark.parametrize("solver", SOLVERS)
def test_tiny_units_fit_like_the_unscaled_data(cancer5, dtype, tiny, solver):
    """X * 1e-30 without a penalty is the same model in other units: coef_ * 1e-30 unchanged."""
    X, y = cancer5
    X = X.astype(dtype)
    plain = LogisticRegression(penalty=None, solver=solver).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = LogisticRegression(penalty=None, solver=solver).fit(X * dtype(tiny), y)
    assert scaled.convergence_.converged
    # tol=1e-6 bounds the gradient: lbfgs's coefficients are ~1e-5 from the optimum, newton's at rounding
    rtol = 1e-3 if dtype == np.float32 else (1e-6 if solver == "newton" else 1e-4)
    np.testing.assert_allclose(scaled.coef_ * tiny, plain.coef_, rtol=rtol, atol=rtol * np.abs(plain.coef_).max())
    assert np.abs(scaled.coef_).min() > 0  # not the all-zero model of a column taken for a constant


def test_constant_columns_are_still_recognised():
    X = np.column_stack([np.full(50, 1e-30), np.zeros(50), np.full(50, 3.0), np.arange(50.0)])
    y = (np.arange(50) % 3 == 0).astype(int)
    model = LogisticRegression().fit(X, y)
    assert np.abs(model.coef_[0, :3]).max() < 1e-12  # 0 up to rounding: the free intercept absorbs a constant


def test_tol_zero_runs_until_the_solver_stops():
    """scikit-learn accepts tol=0 (run to max_iter); so do we."""
    X, y = load_breast_cancer(return_X_y=True)
    SkLogisticRegression(tol=0)._validate_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(tol=0, max_iter=30).fit(X, y)
    assert model.n_iter_[0] <= 30 and np.isfinite(model.coef_).all()


def test_non_finite_coefficients_are_refused_with_the_column(monkeypatch):
    """The last guard: whatever went wrong, a NaN model is never returned."""
    import pandas as pd

    from torchlogit import _base

    real = _base.fit_problem

    def broken(*args, **kwargs):
        res = real(*args, **kwargs)
        res.x[1] = float("nan")
        return res

    monkeypatch.setattr(_base, "fit_problem", broken)
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.sin(np.arange(20.0))})
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="non-finite coefficients for column 'b'"):
        LogisticRegression().fit(X, y)


# ----------------------------------------------------------------- item 1
@pytest.mark.parametrize("threshold", [0, 1 << 62], ids=["kernel", "torch"])
def test_recentring_is_decided_by_what_rounding_cannot_corrupt(monkeypatch, threshold):
    """The first pass's m2 is off by 2% (a BLAS summing float32 in another order did that on an AMD EPYC).

    The recentring decision must not read m2 - m1^2 (then sigma came out 141.6
    for 22.24); with it decided from m1^2 / m2, sigma is right whatever the
    first pass's rounding.
    """
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", threshold)
    real = Standardizer._moments
    calls = []

    def first_pass_rounded(X, s, c, scale, block_bytes):
        m1, m2 = real(X, s, c, scale, block_bytes)
        calls.append(1)
        return (m1, m2 * 1.02) if len(calls) == 1 else (m1, m2)

    monkeypatch.setattr(Standardizer, "_moments", staticmethod(first_pass_rounded))
    n = 200_000
    X = 5 + 1e-3 * torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    X[torch.linspace(0, n - 1, 1000).round().long()] = 1e3  # exactly the rows the shift is taken from
    std = Standardizer.from_data(X, torch.full((n,), 1.0 / n), 1, True)
    sigma = X.double().std(0, correction=0)
    np.testing.assert_allclose(std.sigma.numpy(), sigma.numpy(), rtol=1e-3)
    assert len(calls) == 2  # the second pass ran
