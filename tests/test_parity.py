"""Same optimum as scikit-learn, for every solver and link that supports the case."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge as SkRidge
from sklearn.preprocessing import StandardScaler

from torchlogit import LinearRegression, LogisticRegression, Ridge

EXACT = ["newton", "lbfgs"]


def rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def sklearn_reference(X, y, C, solver="lbfgs"):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference itself must have converged
        return SkLogisticRegression(C=C, solver=solver, tol=1e-10, max_iter=20000).fit(X, y)


def breast_cancer(n_features=None):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return (X[:, :n_features] if n_features else X), y


def multinomial_problem(n=3000, d=6, k=4, seed=0):
    """Known softmax model; classes overlap, so the unpenalised optimum exists."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(k, d))
    p = np.exp(X @ W.T)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=pi) for pi in p])
    return X, y


@pytest.mark.parametrize("solver", EXACT)
@pytest.mark.parametrize("C", [1.0, np.inf])
def test_breast_cancer(solver, C):
    # All 30 standardised features are linearly separable: the unpenalised
    # optimum does not exist there, so penalty=None uses the first 8.
    X, y = breast_cancer(None if np.isfinite(C) else 8)
    ref = sklearn_reference(X, y, C)
    model = LogisticRegression(C=C, solver=solver, tol=1e-9).fit(X, y)
    assert rel(model.coef_, ref.coef_) < 1e-4
    assert rel(model.intercept_, ref.intercept_) < 1e-4
    np.testing.assert_array_equal(model.classes_, ref.classes_)


@pytest.mark.parametrize("solver", EXACT)
def test_digits_penalized(solver):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixels in [0, 1]; raw 0..16 pixels take sklearn's lbfgs > 4000 iterations
    ref = sklearn_reference(X, y, 1.0)
    model = LogisticRegression(C=1.0, solver=solver, tol=1e-9, max_iter=5000).fit(X, y)
    assert model.coef_.shape == (10, 64)
    assert rel(model.coef_, ref.coef_) < 1e-4
    assert rel(model.intercept_, ref.intercept_) < 1e-4


def test_digits_raw_pixels_against_newton_cholesky():
    # On raw pixels sklearn's lbfgs needs thousands of iterations; its exact
    # newton-cholesky is the reference there, and our default converges.
    X, y = load_digits(return_X_y=True)
    ref = sklearn_reference(X, y, 1.0, solver="newton-cholesky")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LogisticRegression(tol=1e-9).fit(X, y)
    assert rel(model.coef_, ref.coef_) < 1e-4
    assert rel(model.intercept_, ref.intercept_) < 1e-4


@pytest.mark.parametrize("solver", EXACT)
def test_multinomial_unpenalized(solver):
    X, y = multinomial_problem()
    ref = sklearn_reference(X, y, np.inf)
    model = LogisticRegression(penalty=None, solver=solver, tol=1e-9).fit(X, y)
    # both report the representative whose coefficients sum to zero over classes
    np.testing.assert_allclose(model.coef_.sum(0), 0, atol=1e-10)
    assert rel(model.coef_, ref.coef_) < 1e-4
    assert rel(model.intercept_, ref.intercept_) < 1e-4


@pytest.mark.parametrize("solver", EXACT)
def test_sample_and_class_weights(solver):
    X, y = multinomial_problem(n=800)
    sw = np.random.default_rng(1).uniform(0.1, 3.0, len(y))
    ref = SkLogisticRegression(C=0.5, tol=1e-10, max_iter=20000, class_weight="balanced").fit(X, y, sample_weight=sw)
    model = LogisticRegression(C=0.5, solver=solver, tol=1e-9, class_weight="balanced").fit(X, y, sample_weight=sw)
    assert rel(model.coef_, ref.coef_) < 1e-4


def objective(model, X, y):
    """Our objective (sum of losses + 0.5 ||W||^2 / C) at a fitted model, via log-probabilities."""
    logp = model.predict_log_proba(X)
    idx = np.searchsorted(model.classes_, y)
    return -logp[np.arange(len(y)), idx].sum() + 0.5 * (model.coef_**2).sum() / model.C


def binary_problem(n=2000, d=5, seed=0):
    """Known logistic model with independent standard-normal features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ rng.normal(size=d) + 0.5)))).astype(int)
    return X, y


@pytest.mark.parametrize(
    "problem, optimizer, learning_rate",
    [(binary_problem, "sgd", 0.05), (breast_cancer, "adam", 0.01)],
)
def test_sgd_reaches_the_optimal_objective(problem, optimizer, learning_rate):
    # Plain SGD on a well-conditioned problem; Adam on standardised breast cancer,
    # whose correlated features make plain SGD with a constant step crawl.
    X, y = problem()
    exact = LogisticRegression(tol=1e-9).fit(X, y)
    sgd = LogisticRegression(
        solver="sgd",
        optimizer=optimizer,
        learning_rate=learning_rate,
        batch_size=64,
        max_iter=300,
        tol=None,
        random_state=0,
    ).fit(X, y)
    f_opt, f_sgd = objective(exact, X, y), objective(sgd, X, y)
    assert f_opt <= f_sgd <= f_opt * (1 + 1e-3)


def test_linear_regression_lecture_revision():
    # hours -> points: 2, 4, 6 points for 1, 2, 3 hours; 4 hours -> 8 points.
    model = LinearRegression().fit([[1.0], [2.0], [3.0]], [2.0, 4.0, 6.0])
    assert model.predict([[4.0]])[0] == pytest.approx(8.0, abs=1e-9)
    assert model.coef_[0] == pytest.approx(2.0) and model.intercept_ == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("solver", EXACT)
def test_linear_and_ridge_match_sklearn(solver):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 7)) * np.logspace(-2, 2, 7)
    y = X @ rng.normal(size=7) + 3 + rng.normal(size=200)
    sw = rng.uniform(0.5, 2, 200)
    for ours, ref in [
        (LinearRegression(solver=solver, tol=1e-10), SkLinearRegression()),
        (Ridge(alpha=3.0, solver=solver, tol=1e-10), SkRidge(alpha=3.0)),
    ]:
        ours.fit(X, y, sample_weight=sw)
        ref.fit(X, y, sample_weight=sw)
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-5)
        assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-5)
