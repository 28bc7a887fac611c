"""L1 and elastic net (prox-newton) against scikit-learn run to tol 1e-10: coefficients, support, certificate."""

import importlib
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.preprocessing import StandardScaler

from torchlogit import LogisticRegression


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:400]), y[:400]


def _assert_same_fit(ours, ref):
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_array_equal(ours.coef_ == 0, ref.coef_ == 0)  # the same support, exactly


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["l1", "elasticnet"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_matches_scikit_learn_with_sample_weights(cancer, l1_ratio, fit_intercept):
    X, y = cancer
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    params = {"l1_ratio": l1_ratio, "C": 0.2, "fit_intercept": fit_intercept}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = SkLogisticRegression(solver="saga", tol=1e-10, max_iter=200_000, **params).fit(X, y, sample_weight=sw)
        ours = LogisticRegression(tol=1e-10, **params).fit(X, y, sample_weight=sw)
    assert ours.solver_ == "prox-newton" and ours.convergence_.converged
    assert 0 < (ours.coef_ != 0).sum() < X.shape[1]  # a sparse model: the test means something
    _assert_same_fit(ours, ref)
    assert ours.convergence_.duality_gap < 1e-9  # the certificate: objective within 1e-9 of the optimum


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["l1", "elasticnet"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multinomial_matches_scikit_learn(digits, l1_ratio, fit_intercept, weighted):
    X, y = digits
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y)) if weighted else None
    params = {"l1_ratio": l1_ratio, "C": 0.1, "fit_intercept": fit_intercept}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = SkLogisticRegression(solver="saga", tol=1e-10, max_iter=200_000, **params).fit(X, y, sample_weight=sw)
        ours = LogisticRegression(tol=1e-10, **params).fit(X, y, sample_weight=sw)
    assert ours.coef_.shape == (10, 64) and 0 < (ours.coef_ != 0).sum() < ours.coef_.size
    _assert_same_fit(ours, ref)
    assert ours.convergence_.duality_gap < 1e-8


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5}])
@pytest.mark.parametrize("penalty", ["l1", "elasticnet", "l2", "none"])
def test_class_weight_with_every_penalty(cancer, class_weight, penalty):
    """scikit-learn's class weights multiply the sample weights; its fit to tol 1e-10 (saga where there
    is an L1 part, else lbfgs) is the reference, for each penalty."""
    X, y = cancer
    l1_ratio, C = {"l1": (1.0, 0.2), "elasticnet": (0.5, 0.2), "l2": (0.0, 0.2), "none": (0.0, np.inf)}[penalty]
    params = {"l1_ratio": l1_ratio, "C": C, "class_weight": class_weight}
    if penalty == "none":
        X = X[:, :5]  # all 30 columns separate the classes: without a penalty there would be no optimum
    solver = "saga" if l1_ratio > 0 else "lbfgs"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = SkLogisticRegression(solver=solver, tol=1e-10, max_iter=200_000, **params).fit(X, y)
        ours = LogisticRegression(tol=1e-10, **params).fit(X, y)
    _assert_same_fit(ours, ref)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_l1_matches_liblinear(cancer, weighted):
    """LIBLINEAR's primal L1 solver (newGLMNET) to tol 1e-10. It penalises its intercept (a constant
    column), so the comparison is without one."""
    X, y = cancer
    sw = np.random.default_rng(2).uniform(0.5, 2.0, len(y)) if weighted else None
    params = {"l1_ratio": 1.0, "C": 0.2, "fit_intercept": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = SkLogisticRegression(solver="liblinear", tol=1e-10, max_iter=100_000, **params)
        ref.fit(X, y, sample_weight=sw)
        ours = LogisticRegression(tol=1e-10, **params).fit(X, y, sample_weight=sw)
    assert 0 < (ours.coef_ != 0).sum() < X.shape[1]
    _assert_same_fit(ours, ref)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["l1", "elasticnet"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_matches_skglm(cancer, l1_ratio, fit_intercept):
    """skglm's SparseLogisticRegression (working-set prox-Newton) to tol 1e-12: its objective is the
    mean loss + alpha * penalty, scikit-learn's the sum + penalty / C, so alpha = 1 / (C n)."""
    skglm = pytest.importorskip("skglm", reason="skglm is not installed (the dev extra installs it)")
    X, y = cancer
    C = 0.2
    ref = skglm.SparseLogisticRegression(
        alpha=1.0 / (C * len(y)), l1_ratio=l1_ratio, tol=1e-12, max_iter=1000, fit_intercept=fit_intercept
    ).fit(X, y)
    ours = LogisticRegression(tol=1e-10, l1_ratio=l1_ratio, C=C, fit_intercept=fit_intercept).fit(X, y)
    assert 0 < (ours.coef_ != 0).sum() < X.shape[1]
    _assert_same_fit(ours, ref)


def test_lasso_path_starts_where_every_coefficient_is_zero(cancer):
    """alpha_max of the penalty object: at C just below 1 / (n alpha_max) W = 0, just above it not."""
    import torch

    from torchlogit.penalties import L1

    X, y = cancer
    p0 = y.mean()  # the intercept's optimum at W = 0 gives p = mean(y) on every row
    gradient = torch.from_numpy(X.T @ (p0 - y) / len(y))  # the data term's gradient in W, per row mean
    alpha_max = L1(1.0).alpha_max(gradient)
    C_min = 1.0 / (len(y) * alpha_max)
    assert not LogisticRegression(l1_ratio=1.0, C=0.999 * C_min, tol=1e-10).fit(X, y).coef_.any()
    assert LogisticRegression(l1_ratio=1.0, C=1.01 * C_min, tol=1e-10).fit(X, y).coef_.any()


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "newton-cholesky", "sag"])
def test_smooth_only_solvers_refuse_an_l1_part_in_scikit_learns_words(cancer, solver):
    X, y = cancer
    with pytest.raises(ValueError, match=f"Solver {solver} supports only 'l2' or None penalties, got l1 penalty"):
        LogisticRegression(solver=solver, l1_ratio=1.0).fit(X, y)


@pytest.mark.parametrize("solver", ["saga", "liblinear", "prox-newton", "auto"])
def test_solver_names_that_take_l1_all_give_the_same_model(cancer, solver):
    X, y = cancer
    model = LogisticRegression(solver=solver, l1_ratio=1.0, C=0.2, tol=1e-10).fit(X, y)
    reference = LogisticRegression(solver="prox-newton", l1_ratio=1.0, C=0.2, tol=1e-10).fit(X, y)
    assert model.solver_ == "prox-newton"
    np.testing.assert_array_equal(model.coef_, reference.coef_)


@pytest.mark.parametrize(
    "data, l1_ratio, C", [("cancer", 0.5, 0.2), ("digits", 1.0, 0.1)], ids=["binary-en", "multi-l1"]
)
def test_the_inner_solver_for_a_gpu_gives_the_cpu_fit(request, monkeypatch, data, l1_ratio, C):
    """On a GPU the working-set model is solved by FISTA in torch on the device; here it runs on the CPU
    against coordinate descent (which the tests above check against scikit-learn)."""
    prox_newton = importlib.import_module("torchlogit.solvers.prox_newton")  # the module, not the function

    X, y = request.getfixturevalue(data)
    params = {"l1_ratio": l1_ratio, "C": C, "tol": 1e-10}
    monkeypatch.setattr(prox_newton, "INNER", "cd")
    cd = LogisticRegression(**params).fit(X, y)
    monkeypatch.setattr(prox_newton, "INNER", "fista")
    fista = LogisticRegression(**params).fit(X, y)
    assert cd.convergence_.converged and fista.convergence_.converged
    _assert_same_fit(fista, cd)
    assert fista.convergence_.duality_gap < 1e-8


def test_fista_solves_the_weighted_lasso_model():
    import torch

    from torchlogit.solvers import _cd

    prox_newton = importlib.import_module("torchlogit.solvers.prox_newton")
    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 12))
    H = torch.from_numpy(A.T @ A / 40 + 0.01 * np.eye(12))
    g, x = torch.from_numpy(rng.normal(size=12)), torch.from_numpy(rng.normal(size=12) * (rng.random(12) < 0.5))
    lam = torch.from_numpy(np.r_[np.full(11, 1.0), 0.0])  # the last coordinate unpenalised, as an intercept
    d = prox_newton.fista_direction(H, g, x, lam, tol=1e-12)
    d_cd, _ = _cd.solve(H.numpy(), g.numpy(), x.numpy(), lam.numpy(), tol=1e-14)
    np.testing.assert_allclose(d.numpy(), d_cd, atol=1e-9)
    assert 0 < int(((x + d) == 0).sum()) < 11  # the solution has exact zeros: the prox did its work
