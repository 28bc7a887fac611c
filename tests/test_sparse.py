"""Sparse input (scipy CSR/CSC/COO, torch sparse): the same models as dense input, never densified."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from torchlogit import LogisticRegression, load

# (no penalty: both data sets are separable, so there is no optimum to compare; see the summary test)
PENALTIES = {"l2": dict(l1_ratio=0.0, C=1.0), "l1": dict(l1_ratio=1.0, C=0.5), "elasticnet": dict(l1_ratio=0.5, C=0.5)}


def _nonnegative(X):
    return X / X.max(axis=0).clip(1e-12)  # many exact zeros in digits, as in count data


@pytest.fixture(scope="module")
def problems():
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xd, yd = load_digits(return_X_y=True)
    return {"binary": (_nonnegative(Xb), yb), "multinomial": (_nonnegative(Xd[:500]), yd[:500])}


def _as(fmt, X):
    if fmt == "torch":
        with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(X).to_sparse_csr()
    return sp.csr_matrix(X).asformat(fmt)


@pytest.mark.parametrize("penalty", list(PENALTIES), ids=list(PENALTIES))
@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "torch"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_input_gives_the_dense_model(problems, penalty, kind, fmt, dtype):
    X, y = problems[kind]
    X = X.astype(dtype)
    params = dict(PENALTIES[penalty], tol=1e-8)
    dense = LogisticRegression(**params).fit(X, y)
    sparse = LogisticRegression(**params).fit(_as(fmt, X), y)
    assert sparse.solver_ == dense.solver_
    rtol = 1e-6 if dtype == np.float64 else 2e-3
    scale = np.abs(dense.coef_).max()
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=rtol, atol=rtol * scale)
    if penalty in ("l1", "elasticnet") and dtype == np.float64:
        np.testing.assert_array_equal(sparse.coef_ == 0, dense.coef_ == 0)
    # predictions of one model on either kind of input agree
    np.testing.assert_allclose(sparse.predict_proba(_as(fmt, X)), sparse.predict_proba(X), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sparse.decision_function(_as(fmt, X)), sparse.decision_function(X), rtol=1e-6, atol=1e-6)
    assert (sparse.predict(_as(fmt, X)) == dense.predict(X)).mean() > 0.99


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_fused_sparse_pass_equals_autograd(dtype, fit_intercept):
    """CSR binary loss and gradient in one read of X (numba) against autograd on the dense float64 matrix."""
    from torchlogit._loss import POINTWISE, LinearModelLoss
    from torchlogit._sparse import SparseX

    rng = np.random.default_rng(0)
    n, d = 3000, 40
    A = sp.random(n, d, density=0.1, format="csr", random_state=1, dtype=dtype) * 5
    X = SparseX.from_scipy(A)
    assert X.fuses_binary()
    y = torch.from_numpy((rng.random(n) < 0.4).astype(dtype))
    s = torch.from_numpy(rng.random(n).astype(dtype))
    s /= s.sum()
    loss = LinearModelLoss(POINTWISE["binary"], d, 1, fit_intercept)
    theta = torch.from_numpy(rng.normal(size=loss.n_params) * 3)
    f, g = loss.loss_gradient(theta, X, y, s)
    t = theta.clone().requires_grad_(True)
    Xd = torch.from_numpy(A.toarray().astype(np.float64))
    ref = loss.objective(t, Xd, y.double(), s.double())
    ref.backward()
    assert abs(float(f) - float(ref)) <= 1e-12 * abs(float(ref))
    torch.testing.assert_close(g, t.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("pointwise", ["binary", "squared"])
def test_a_working_set_hessian_of_sparse_x_equals_the_dense_one(pointwise, fit_intercept):
    """The numba gram on a CSR matrix's columns F (one read of the rows) against the dense blocks' Hessian."""
    from torchlogit._fit import Standardizer
    from torchlogit._loss import POINTWISE, LinearModelLoss
    from torchlogit._sparse import SparseX

    rng = np.random.default_rng(3)
    n, d = 5000, 60
    A = sp.random(n, d, density=0.2, format="csr", random_state=2) * 3
    X, Xd = SparseX.from_scipy(A), torch.from_numpy(A.toarray())
    assert X.fuses_binary()
    y = torch.from_numpy((rng.random(n) < 0.5).astype(np.float64))
    s = torch.from_numpy(rng.random(n))
    s /= s.sum()
    columns = torch.tensor([2, 7, 8, 30, 59])
    std = Standardizer.from_data(Xd, s, 1, fit_intercept).subset(columns)
    sub = LinearModelLoss(POINTWISE[pointwise], len(columns), 1, fit_intercept)
    theta = torch.from_numpy(rng.normal(size=sub.n_params))
    H = sub.hessian(theta, X, y, s, std=std, columns=columns)
    H_dense = sub.hessian(theta, Xd, y, s, std=std, columns=columns)
    torch.testing.assert_close(H, H_dense, rtol=1e-10, atol=1e-14)


def _zipf_text(n, d, per_row, seed=0, support=100):
    """A tf-like CSR matrix (Zipf column frequencies) and labels from a sparse logistic model."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, d + 1)
    cols = rng.choice(d, size=(n, per_row), p=p / p.sum())
    X = sp.csr_matrix((rng.random(n * per_row) + 0.5, cols.ravel(), np.arange(0, n * per_row + 1, per_row)), (n, d))
    X.sum_duplicates()
    w = np.zeros(d)
    w[:support] = rng.normal(size=support) * 2
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w) + 1))).astype(int)
    return X, y


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_the_column_model_gives_the_dense_hessians_fit(monkeypatch, l1_ratio, fit_intercept):
    """Large sparse working sets are solved on their columns (no m x m Hessian): the same optimum."""
    from torchlogit import _fit

    X, y = _zipf_text(4000, 3000, 30)
    params = {"l1_ratio": l1_ratio, "C": 0.5, "tol": 1e-9, "fit_intercept": fit_intercept}
    monkeypatch.setattr(_fit, "COLUMN_MODEL_MIN_FEATURES", 10**9)
    dense = LogisticRegression(**params).fit(X, y)
    used = []
    monkeypatch.setattr(_fit, "COLUMN_MODEL_MIN_FEATURES", 1)
    monkeypatch.setattr(
        _fit.ColumnModel, "solve", lambda self, *a, _s=_fit.ColumnModel.solve: used.append(1) or _s(self, *a)
    )
    columns = LogisticRegression(**params).fit(X, y)
    assert used and columns.convergence_.converged
    assert 0 < (columns.coef_ != 0).sum() < X.shape[1] // 2
    np.testing.assert_array_equal(columns.coef_ == 0, dense.coef_ == 0)
    np.testing.assert_allclose(columns.coef_, dense.coef_, atol=1e-7 * np.abs(dense.coef_).max())
    assert columns.convergence_.duality_gap < 1e-7


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_column_cd_minimises_its_model_and_anderson_needs_fewer_sweeps(fit_intercept):
    """working_set_cd against the model written out densely: the minimiser of
    Q(d, d_b) = g.d + g_b d_b + 1/2 |r|_w^2 + 1/2 c2.d^2 + lam.|x + d|, r = X' d + d_b,
    from coordinate descent on the explicit Hessian (solvers._cd), with Anderson's extrapolation
    (memory 5) and without it; the extrapolation must save sweeps on these correlated Zipf columns."""
    from torchlogit import _sparse_kernels as kern
    from torchlogit.solvers import _cd

    X, _ = _zipf_text(3000, 400, 30)
    csc = X.tocsc()
    rng = np.random.default_rng(3)
    m, n = X.shape[1], X.shape[0]
    mu = np.asarray(X.mean(axis=0)).ravel() if fit_intercept else np.zeros(m)
    sigma = np.sqrt(np.asarray(X.multiply(X).mean(axis=0)).ravel() - mu**2) + 1e-3
    w = rng.uniform(0.05, 0.25, n) / n
    g, x = rng.normal(size=m) * 1e-3, np.where(rng.random(m) < 0.2, rng.normal(size=m), 0.0)
    lam, c2, g_b = np.full(m, 2e-4), np.full(m, 1e-5), 1e-3 if fit_intercept else 0.0
    args = (csc.indptr, csc.indices, csc.data, mu, 1 / sigma, w, g, x, lam, c2, g_b, fit_intercept, 1e-14, 5000)
    plain = kern.working_set_cd(*args, 0)
    fast = kern.working_set_cd(*args, 5)
    # the same model, dense: columns (X - mu) / sigma, and the intercept's column of ones
    A = (X.toarray() - mu) / sigma
    if fit_intercept:
        A = np.hstack([A, np.ones((n, 1))])
    H = A.T @ (w[:, None] * A) + np.diag(np.append(c2, 0.0)[: A.shape[1]])
    G, X0 = np.append(g, g_b)[: A.shape[1]], np.append(x, 0.0)[: A.shape[1]]
    L = np.append(lam, 0.0)[: A.shape[1]]
    d, _ = _cd.solve(H, G, X0, L, tol=1e-15, max_sweeps=100_000)
    for got, d_b, _ in (plain, fast):
        step = np.append(got, d_b) if fit_intercept else got
        np.testing.assert_allclose(step, d, rtol=0, atol=1e-9 * np.abs(d).max())
        np.testing.assert_array_equal(x + step[:m] == 0, x + d[:m] == 0)  # the same zeros
    assert fast[2] < 0.6 * plain[2], (fast[2], plain[2])


def test_wide_text_converges_in_few_lbfgs_iterations():
    """Rare words have tiny sigma: the penalty's curvature l2 / sigma^2 spans decades; the diagonal
    preconditioner takes it out (measured 51 iterations against 142 without it, 3,000 x 5,000)."""
    rng = np.random.default_rng(0)
    n, d, per_row = 3000, 5000, 30
    p = 1.0 / np.arange(1, d + 1)  # Zipf word frequencies
    cols = rng.choice(d, size=(n, per_row), p=p / p.sum())
    X = sp.csr_matrix((rng.random(n * per_row) + 0.5, cols.ravel(), np.arange(0, n * per_row + 1, per_row)), (n, d))
    X.sum_duplicates()
    w = np.zeros(d)
    w[:200] = rng.normal(size=200)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(int)
    model = LogisticRegression(solver="lbfgs", tol=1e-6, max_iter=2000).fit(X, y)
    assert model.n_iter_[0] <= 90
    reference = SkLogisticRegression(tol=1e-10, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4 * np.abs(reference.coef_).max())


def test_sparse_matches_scikit_learn_on_tf_idf_text():
    """A TfidfVectorizer pipeline, as text users build it: the same optimum as scikit-learn's."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(words, size=rng.integers(5, 30), p=_zipf(300))) for _ in range(400)]
    y = np.array([("w1 " in d or "w7 " in d) for d in docs]).astype(int)
    ours = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0, tol=1e-10)).fit(docs, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = make_pipeline(TfidfVectorizer(), SkLogisticRegression(C=10.0, tol=1e-12, max_iter=10_000)).fit(docs, y)
    scale = np.abs(ref[-1].coef_).max()
    np.testing.assert_allclose(ours[-1].coef_, ref[-1].coef_, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(ours.predict_proba(docs), ref.predict_proba(docs), atol=1e-6)


def _zipf(n):
    p = 1.0 / np.arange(1, n + 1)
    return p / p.sum()


@pytest.mark.parametrize("make", ["onehot", "kbins", "trees"])
def test_scikit_learn_transformers_that_output_sparse_matrices(make):
    from sklearn.ensemble import RandomTreesEmbedding
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder

    X, y = load_breast_cancer(return_X_y=True)
    step = {
        "onehot": OneHotEncoder(handle_unknown="ignore"),
        "kbins": KBinsDiscretizer(n_bins=5, encode="onehot", quantile_method="averaged_inverted_cdf"),
        "trees": RandomTreesEmbedding(n_estimators=10, max_depth=3, random_state=0),
    }[make]
    Xs = np.round(X[:, :5]) if make == "onehot" else X
    assert sp.issparse(step.fit_transform(Xs))  # the estimator really gets a sparse matrix
    ours = make_pipeline(step, LogisticRegression(tol=1e-10)).fit(Xs, y)
    ref = make_pipeline(step, SkLogisticRegression(tol=1e-12, max_iter=10_000)).fit(Xs, y)
    np.testing.assert_allclose(ours.predict_proba(Xs), ref.predict_proba(Xs), atol=1e-6)


def test_sparsify_and_densify(problems, tmp_path):
    X, y = problems["binary"]
    model = LogisticRegression(l1_ratio=1.0, C=0.1).fit(X, y)
    proba = model.predict_proba(X)
    assert model.sparsify() is model and sp.issparse(model.coef_)
    assert model.coef_.nnz == (model.densify().coef_ != 0).sum()
    model.sparsify()
    np.testing.assert_array_equal(model.predict_proba(X), proba)
    model.save(tmp_path / "m.safetensors")  # stored dense, loaded dense
    loaded = load(tmp_path / "m.safetensors")
    assert isinstance(loaded.coef_, np.ndarray)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


@pytest.mark.parametrize("C", [np.inf, 0.5], ids=["unpenalised", "l2"])
@pytest.mark.parametrize("kind", ["csr", "csc", "torch"])
def test_summary_on_sparse_input_equals_dense(problems, kind, C):
    X, y = problems["binary"]
    X = X[:, :6]
    model = LogisticRegression(C=C).fit(X, y)
    sparse_X = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "torch": lambda a: torch.from_numpy(a).to_sparse_csr()}
    dense, sparse = model.summary(X, y), model.summary(sparse_X[kind](X), y)
    np.testing.assert_allclose(sparse.params, dense.params, rtol=1e-12)
    np.testing.assert_allclose(sparse.bse, dense.bse, rtol=1e-10)


def test_sgd_and_partial_fit_take_sparse_input(problems):
    X, y = problems["binary"]
    params = dict(solver="sgd", max_iter=3, random_state=0, batch_size=16)
    np.testing.assert_allclose(
        LogisticRegression(**params).fit(sp.csr_matrix(X), y).coef_,
        LogisticRegression(**params).fit(X, y).coef_,
        rtol=1e-12,
    )
    streamed = LogisticRegression(**params)
    for part in np.array_split(np.arange(len(y)), 3):
        streamed.partial_fit(sp.csr_matrix(X[part]), y[part], classes=[0, 1])
    assert np.isfinite(streamed.coef_).all()


# A wide sparse matrix (20,000 x 12,000, ~35 non-zeros a row): a dense copy would be 1.9 GB, 80x the matrix.
MEMORY_CHILD = """
import json, resource, sys
import numpy as np, scipy.sparse as sp
from torchlogit import LogisticRegression
penalty = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
n, d, per = 20_000, 12_000, 40
cols = np.minimum(rng.zipf(1.3, size=n * per) - 1, d - 1)
X = sp.csr_matrix((rng.uniform(0.1, 1.0, n * per), (np.repeat(np.arange(n), per), cols)), shape=(n, d))
X.sum_duplicates()
w = np.zeros(d); w[:200] = rng.normal(size=200) * 3
y = (X @ w + rng.logistic(size=n) > np.median(X @ w)).astype(int)
LogisticRegression(**penalty, max_iter=3).fit(X[:2000], y[:2000])  # libraries and compiled kernels loaded
matrix_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
open("/proc/self/clear_refs", "w").write("5")  # reset the peak resident size
before = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
model = LogisticRegression(**penalty).fit(X, y)
model.predict_proba(X)
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps({"matrix": matrix_bytes, "extra": peak - before, "nnz": int((model.coef_ != 0).sum())}))
"""


@pytest.mark.parametrize("penalty", [dict(C=1.0), dict(l1_ratio=1.0, C=0.05)], ids=["l2-lbfgs", "l1-prox-newton"])
def test_a_wide_sparse_fit_never_densifies_and_stays_within_half_the_matrix_again(penalty):
    child = subprocess.run([sys.executable, "-c", MEMORY_CHILD, json.dumps(penalty)], capture_output=True, timeout=600)
    assert child.returncode == 0, child.stderr.decode()[-2000:]
    report = json.loads(child.stdout.decode().strip().splitlines()[-1])
    assert report["extra"] <= 1.5 * report["matrix"], report
