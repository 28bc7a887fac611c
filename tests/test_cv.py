"""torchlogit.path and LogisticRegressionCV against scikit-learn's LogisticRegressionCV at tight tolerances."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import LogisticRegressionCV as SkLogisticRegressionCV
from sklearn.preprocessing import StandardScaler

from torchlogit import LogisticRegressionCV
from torchlogit.path import regularization_path

COMMON = {"cv": 3, "use_legacy_attributes": False, "scoring": "neg_log_loss"}


@pytest.fixture(scope="module")
def binary():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[::2], y[::2]  # 285 rows: quick


@pytest.fixture(scope="module")
def multiclass():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _sklearn(X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saga's convergence notes at max_iter
        return SkLogisticRegressionCV(**COMMON, tol=1e-10, max_iter=100000, **kw).fit(X, y)


def _ours(X, y, **kw):
    return LogisticRegressionCV(**COMMON, tol=1e-9, **kw).fit(X, y)


@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize("l1_ratios, solver", [((0.0,), "lbfgs"), ((0.5,), "saga")])
def test_matches_sklearn(request, data, l1_ratios, solver):
    X, y = request.getfixturevalue(data)
    Cs = [0.01, 0.1, 1.0, 10.0]  # well separated: a decade apart
    if solver == "saga":
        # saga at tol 1e-10 is slow on the binary set: two C keep it short. At C=0.01 every weight of iris is 0
        # and saga leaves the intercepts short of their optimum (objective 109.897 against 109.851 on fold 0)
        Cs = [0.1, 1.0] if data == "binary" else [0.1, 1.0, 10.0]
    ref = _sklearn(X, y, Cs=Cs, l1_ratios=l1_ratios, solver=solver)
    got = _ours(X, y, Cs=Cs, l1_ratios=l1_ratios)
    assert got.C_ == ref.C_ and got.l1_ratio_ == ref.l1_ratio_
    np.testing.assert_array_equal(got.Cs_, ref.Cs_)
    assert got.scores_.shape == ref.scores_.shape and got.coefs_paths_.shape == ref.coefs_paths_.shape
    np.testing.assert_allclose(got.scores_, ref.scores_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.coef_, ref.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.intercept_, ref.intercept_, rtol=0, atol=1e-5)
    assert got.n_iter_.shape == ref.n_iter_.shape
    assert np.nanmax(got.duality_gaps_) < 1e-8  # every path point certified


def test_default_grid_is_sklearns(binary):
    X, y = binary
    got = LogisticRegressionCV(Cs=7, l1_ratios=(0,), scoring="accuracy", use_legacy_attributes=True).fit(X, y)
    np.testing.assert_array_equal(got.Cs_, np.logspace(-4, 4, 7))
    ref = _sklearn(X, y, Cs=7, l1_ratios=(0,))
    # l1_ratios given (not None): the legacy layout keeps its l1_ratios axis
    assert got.C_.shape == (1,) and got.scores_[1].shape == (5, 7, 1) and got.coefs_paths_[1].shape == (5, 7, 1, 31)
    np.testing.assert_array_equal(got.Cs_, ref.Cs_)


def test_legacy_attributes_multiclass(multiclass):
    X, y = multiclass
    kw = {"Cs": [0.1, 1.0], "l1_ratios": [0.0, 1.0], "cv": 3, "scoring": "neg_log_loss"}
    got = LogisticRegressionCV(use_legacy_attributes=True, tol=1e-9, **kw).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkLogisticRegressionCV(use_legacy_attributes=True, solver="saga", tol=1e-3, **kw).fit(X, y)
    for name in ("C_", "l1_ratio_", "l1_ratios_", "n_iter_"):
        assert np.shape(getattr(got, name)) == np.shape(getattr(ref, name)), name
    assert set(got.coefs_paths_) == set(ref.coefs_paths_) == {0, 1, 2}
    assert got.coefs_paths_[0].shape == ref.coefs_paths_[0].shape == (3, 2, 2, 5)
    assert got.scores_[2].shape == ref.scores_[2].shape


@pytest.mark.parametrize("data", ["binary", "multiclass"])
def test_refit_false(request, data):
    """scikit-learn's refit=False: each fold's best C, C_ their mean, coef_ the mean of those fold coefficients."""
    X, y = request.getfixturevalue(data)
    Cs = [0.01, 0.1, 1.0, 10.0]
    ref = _sklearn(X, y, Cs=Cs, l1_ratios=(0,), refit=False)
    got = _ours(X, y, Cs=Cs, l1_ratios=(0,), refit=False)
    assert got.C_ == pytest.approx(ref.C_)
    np.testing.assert_allclose(got.coef_, ref.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.intercept_, ref.intercept_, rtol=0, atol=1e-5)
    best = got.scores_[:, 0].argmax(axis=1)  # (n_folds,) each fold's own best
    mean = np.mean([got.coefs_paths_[f, 0, best[f]] for f in range(3)], axis=0)
    np.testing.assert_allclose(got.coef_, np.atleast_2d(mean)[:, :-1], rtol=1e-12)


def test_one_standard_error_rule(binary):
    X, y = binary
    kw = {"Cs": 12, "l1_ratios": (0,), "cv": 5, "scoring": "neg_log_loss", "use_legacy_attributes": False}
    best = LogisticRegressionCV(**kw).fit(X, y)
    simple = LogisticRegressionCV(selection="1se", **kw).fit(X, y)
    assert simple.C_ <= best.C_
    res = simple.cv_results_
    i = int(np.argmax(res["mean_test_score"]))
    j = simple.best_index_
    assert res["mean_test_score"][j] >= res["mean_test_score"][i] - res["sem_test_score"][i]
    smaller = res["C"] < res["C"][j]
    assert not (res["mean_test_score"][smaller] >= res["mean_test_score"][i] - res["sem_test_score"][i]).any()
    assert res["C"][j] == simple.C_


def test_cv_results_table(binary):
    X, y = binary
    m = LogisticRegressionCV(Cs=[0.1, 1.0, 10.0], l1_ratios=[0.2, 0.8], cv=4, scoring="accuracy").fit(X, y)
    res = m.cv_results_
    assert {"C", "l1_ratio", "mean_test_score", "sem_test_score", "split3_test_score"} <= set(res)
    assert all(len(v) == 6 for v in res.values())
    np.testing.assert_array_equal(res["l1_ratio"], [0.2, 0.2, 0.2, 0.8, 0.8, 0.8])
    folds = np.stack([res[f"split{f}_test_score"] for f in range(4)], axis=1)
    np.testing.assert_allclose(res["mean_test_score"], folds.mean(axis=1))
    scores = m.scores_[1]  # legacy layout (n_folds, n_cs, n_l1)
    np.testing.assert_allclose(folds[:3, :], scores[:, :, 0].T)
    assert (res["max_duality_gap"] < 1e-6).all()


def test_accuracy_matches_sklearn_scoring(binary):
    """The default scoring (accuracy, computed for a whole path at once) equals scikit-learn's scorer on each point."""
    X, y = binary
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    fast = LogisticRegressionCV(Cs=[0.01, 1.0], l1_ratios=(0,), cv=3, scoring=None).fit(X, y, sample_weight=sw)
    slow = LogisticRegressionCV(Cs=[0.01, 1.0], l1_ratios=(0,), cv=3, scoring="accuracy").fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(fast.scores_[1], slow.scores_[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5, 1.0])
def test_path_matches_sklearn_and_is_certified(binary, l1_ratio):
    X, y = binary
    path = regularization_path(X, y, Cs=8, l1_ratio=l1_ratio, tol=1e-9)
    assert np.all(np.diff(path.Cs) > 0) and path.Cs[-1] / path.Cs[0] == pytest.approx(1e4)
    assert np.nanmax(path.duality_gaps) < 1e-7
    assert path.coefs.shape == (8, 31)
    if l1_ratio > 0:  # the grid starts where every coefficient is zero, and only there
        assert not path.coef[0].any()
        assert path.coef[1].any()
    else:  # ridge: alpha_max of the L1 part over 1e-3 (glmnet), coefficients about 1e-3 of the L1 entry scale
        assert np.abs(path.coef[0]).max() < 1e-2
    C = path.Cs[5]
    solver = "saga" if l1_ratio else "lbfgs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkLogisticRegression(C=C, l1_ratio=l1_ratio, solver=solver, tol=1e-10, max_iter=100000).fit(X, y)
    if l1_ratio < 1:
        np.testing.assert_allclose(path.coef[5], ref.coef_, rtol=0, atol=1e-5)
    else:  # pure L1 on breast cancer's collinear columns: saga stops short; compare objectives instead
        assert _objective(X, y, path.coef[5], path.intercept[5], C) <= _objective(X, y, ref.coef_, ref.intercept_, C)


def _objective(X, y, coef, intercept, C):
    """scikit-learn's binary L1 objective: sum_i log-loss_i + ||w||_1 / C."""
    z = X @ coef.ravel() + intercept[0]
    return float(np.sum(np.logaddexp(0, z) - y * z) + np.abs(coef).sum() / C)


def test_path_multiclass_layout_and_order(multiclass):
    X, y = multiclass
    path = regularization_path(X, y, Cs=[10.0, 0.1, 1.0])  # any order; solved from the largest penalty
    assert path.coefs.shape == (3, 3, 5)
    np.testing.assert_array_equal(path.Cs, [10.0, 0.1, 1.0])
    ref = SkLogisticRegression(C=0.1, tol=1e-10, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(path.coef[1], ref.coef_, atol=1e-5)
    np.testing.assert_allclose(path.intercept[1], ref.intercept_, atol=1e-5)


def test_data_grid_option(binary):
    X, y = binary
    m = LogisticRegressionCV(Cs=5, l1_ratios=(1.0,), grid="data", cv=3, scoring="accuracy").fit(X, y)
    path = regularization_path(X, y, Cs=5, l1_ratio=1.0)
    np.testing.assert_allclose(m.Cs_, path.Cs)  # the grid comes from all rows, shared by the folds
    assert m.Cs_[-1] / m.Cs_[0] == pytest.approx(1e4)


def test_sample_and_class_weights_like_sklearn():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0)
    sw = np.random.default_rng(1).uniform(0.2, 3.0, len(y))
    kw = {"Cs": [0.01, 0.1, 1.0, 10.0], "l1_ratios": (0,), "class_weight": "balanced"}
    ref = _sklearn(X, y, **kw)
    got = _ours(X, y, **kw)
    assert got.C_ == ref.C_
    np.testing.assert_allclose(got.scores_, ref.scores_, atol=1e-6)
    ref = SkLogisticRegressionCV(**COMMON, tol=1e-10, max_iter=10000, **kw).fit(X, y, sample_weight=sw)
    got = _ours(X, y, **kw)
    got.fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(got.scores_, ref.scores_, atol=1e-6)
    np.testing.assert_allclose(got.coef_, ref.coef_, atol=1e-5)


def test_a_fold_without_a_class_is_certified():
    """KFold on sorted iris leaves a class out of a fold: its intercept has no finite optimum and the
    certificate's intercept Newton step meets an exactly singular Hessian (it used to raise)."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import KFold

    X, y = load_iris(return_X_y=True)
    model = LogisticRegressionCV(Cs=[1e-2, 1.0, 1292.0], cv=KFold(3)).fit(X, y)
    gaps = np.asarray(model.duality_gaps_)  # (folds, l1_ratios, Cs)
    assert gaps.shape == (3, 1, 3) and np.isfinite(gaps).all() and gaps.max() < 1e-6


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5])
def test_every_point_gap_certified_at_a_loose_tol(binary, l1_ratio):
    """tol=1e-4 alone leaves weak-penalty points short of 1e-6 (relative); gap_tol continues them until certified."""
    X, y = binary
    Cs = np.logspace(-2, 4, 7)
    loose = regularization_path(X, y, Cs=Cs, l1_ratio=l1_ratio, tol=1e-4, gap_tol=None)
    assert (loose.duality_gaps / np.abs(loose.objectives)).max() > 1e-6  # the case the refinement is for
    path = regularization_path(X, y, Cs=Cs, l1_ratio=l1_ratio, tol=1e-4)
    assert (path.duality_gaps / np.abs(path.objectives)).max() <= 1e-6
    assert (path.n_iter >= loose.n_iter).all() and path.n_iter.sum() > loose.n_iter.sum()  # refinement counted


def test_cv_gap_tol_certifies_every_fit(binary):
    X, y = binary
    kw = {**COMMON, "Cs": [0.1, 10.0, 1000.0], "l1_ratios": (0.5,), "tol": 1e-4}
    model = LogisticRegressionCV(**kw).fit(X, y)
    assert np.nanmax(model.duality_gaps_) <= 1e-6 * 0.7  # objectives are below 0.7 (log 2 at most)
    assert model.refit_duality_gap_ <= 1e-6 * 0.7
    assert np.nanmax(LogisticRegressionCV(**kw, gap_tol=None).fit(X, y).duality_gaps_) > 1e-6


@pytest.mark.parametrize(
    "dtype, fit_intercept, sparse",
    [(np.float64, True, False), (np.float32, True, False), (np.float64, False, False), (np.float64, True, True)],
)
def test_folds_solved_together_equal_one_by_one(monkeypatch, dtype, fit_intercept, sparse):
    """batch_folds (every fold's L-BFGS in lockstep, one pass over X for all) gives the per-fold fits; a sparse
    X's passes are its two products, each for all folds."""
    import scipy.sparse

    from torchlogit import _cv, _folds

    calls, refits = [], []
    solve_folds, fit_path = _folds.solve_folds, _cv.fit_path
    monkeypatch.setattr(_folds, "solve_folds", lambda *a, **k: calls.append(1) or solve_folds(*a, **k))
    monkeypatch.setattr(_cv, "fit_path", lambda *a, **k: refits.append(k.get("precondition")) or fit_path(*a, **k))
    X, y = make_classification(3000, 12, n_informative=6, random_state=0)
    X = X.astype(dtype)
    X = scipy.sparse.csr_matrix(X) if sparse else X  # every entry stored: the sparse passes on the same problem
    kw = {**COMMON, "cv": 4, "Cs": [0.001, 0.1, 10.0, 1000.0], "l1_ratios": (0.0,), "solver": "lbfgs"}
    kw["fit_intercept"] = fit_intercept
    together = LogisticRegressionCV(**kw).fit(X, y)
    assert len(calls) == 1  # the folds really were solved together (one call for the whole grid)
    apart = LogisticRegressionCV(**kw, batch_folds=False).fit(X, y)
    assert len(calls) == 1
    atol = 1e-6 if dtype == np.float64 else 1e-4
    assert together.C_ == apart.C_
    np.testing.assert_allclose(together.scores_, apart.scores_, rtol=0, atol=atol)
    # float32 logits leave the flat optimum of C=1000 known to ~1e-2 in its coefficients (both are certified).
    # tol bounds the gradient, the coefficients only through the curvature: measured, each path's float64
    # coefficients lie within 1e-5 of the tol-1e-10 optimum, and the two paths up to 1.2e-5 apart.
    if dtype == np.float64:
        assert np.nanmax(together.duality_gaps_) <= 1e-6 * 0.7  # certified, as the per-fold paths are
    assert max(together.refit_duality_gap_, apart.refit_duality_gap_) <= 1e-6 * 0.7
    if sparse:
        # the folds take the diagonal preconditioner here, each fold alone the correlation one: other iterates,
        # both certified, so the same objectives (the gap bounds f, the coefficients only to ~sqrt(gap / l2))
        np.testing.assert_allclose(_fold_objectives(X, y, together), _fold_objectives(X, y, apart), rtol=2e-6)
        assert refits[0] is None  # no sampled Hessian for a sparse X: the refit forms its own preconditioner
        return
    upto = None if dtype == np.float64 else 3
    np.testing.assert_allclose(
        together.coefs_paths_[:, :, :upto], apart.coefs_paths_[:, :, :upto], rtol=0, atol=3e-5 if upto is None else 1e-3
    )
    # the refit on all rows: L-BFGS preconditioned by the folds' sampled Hessian at C_ (apart: the usual
    # correlation preconditioner); both certified, the same coefficients
    assert refits[0] is not None and refits[-1] is None
    np.testing.assert_allclose(together.coef_, apart.coef_, rtol=0, atol=3e-5 if dtype == np.float64 else 1e-3)


def test_multinomial_folds_together_on_a_sparse_x(monkeypatch):
    """K classes on a sparse X: the folds are solved together (softmax passes of X's two products for all
    folds) and give the per-fold fits' scores and objectives; on a dense X in the CPU's memory they are
    not (each fold's fused softmax pass is faster there)."""
    import scipy.sparse
    import torch

    from torchlogit import _folds
    from torchlogit.path import prepare

    calls = []
    solve_folds = _folds.solve_folds
    monkeypatch.setattr(_folds, "solve_folds", lambda *a, **k: calls.append(1) or solve_folds(*a, **k))
    X, y = make_classification(2000, 10, n_informative=6, n_classes=3, random_state=0)
    kw = {**COMMON, "cv": 3, "Cs": [0.01, 1.0, 100.0], "l1_ratios": (0.0,), "solver": "lbfgs"}
    Xs = scipy.sparse.csr_matrix(X)
    together = LogisticRegressionCV(**kw).fit(Xs, y)
    assert len(calls) == 1
    apart = LogisticRegressionCV(**kw, batch_folds=False).fit(Xs, y)
    assert together.C_ == apart.C_
    np.testing.assert_allclose(together.scores_, apart.scores_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_fold_objectives(X, y, together), _fold_objectives(X, y, apart), rtol=2e-6)
    assert np.nanmax(together.duality_gaps_) <= 1e-6 * 1.1  # objectives are below log 3
    masks = [torch.ones(2000, dtype=torch.bool)] * 3
    dense, _ = prepare(LogisticRegressionCV(), X, y, None, None)
    assert not _folds.applies(dense, 0.0, "lbfgs", masks)
    assert _folds.applies(prepare(LogisticRegressionCV(), Xs, y, None, None)[0], 0.0, "lbfgs", masks)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_folds_together_with_sample_and_class_weights(monkeypatch, n_classes):
    """Sample weights times 'balanced' class weights on the folds solved together (a sparse X, both models)
    give the one-by-one paths' C, scores and refit."""
    import scipy.sparse

    from torchlogit import _folds

    calls = []
    solve_folds = _folds.solve_folds
    monkeypatch.setattr(_folds, "solve_folds", lambda *a, **k: calls.append(1) or solve_folds(*a, **k))
    X, y = make_classification(2000, 10, n_informative=6, n_classes=n_classes, random_state=0)
    sw = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    kw = {**COMMON, "Cs": [0.01, 1.0, 100.0], "l1_ratios": (0.0,), "solver": "lbfgs", "class_weight": "balanced"}
    Xs = scipy.sparse.csr_matrix(X)
    together = LogisticRegressionCV(**kw).fit(Xs, y, sample_weight=sw)
    assert calls == [1]
    apart = LogisticRegressionCV(**kw, batch_folds=False).fit(Xs, y, sample_weight=sw)
    assert together.C_ == apart.C_
    np.testing.assert_allclose(together.scores_, apart.scores_, rtol=0, atol=2e-6)
    np.testing.assert_allclose(together.coef_, apart.coef_, rtol=0, atol=5e-5)
    assert max(np.nanmax(together.duality_gaps_), together.refit_duality_gap_) <= 1e-6 * np.log(n_classes)


def test_multinomial_folds_together_reach_each_folds_optimum_and_certificate():
    """K classes on a dense X: the folds' shared softmax pass (what a GPU runs; called here on the CPU) gives
    each fold's own certified optimum, and the folds' gaps (Newton steps on the K intercepts, all folds
    at once) are each fold's single-fit certificate."""
    import torch

    from torchlogit import _certificate, _folds
    from torchlogit._problem import Problem
    from torchlogit.path import fit_path, prepare
    from torchlogit.penalties import from_params
    from torchlogit.solvers._result import Result

    X, y = make_classification(1500, 8, n_informative=5, n_classes=3, random_state=1)
    data, _ = prepare(LogisticRegressionCV(), X, y, None, None)  # float64
    rng = np.random.default_rng(1)
    masks = [torch.as_tensor(rng.random(1500) < 0.7) for _ in range(3)]
    Cs = [0.01, 1.0, 100.0]
    together, shared = _folds.solve_folds(data, Cs, masks)
    assert shared == [None] * 3  # the sampled Hessian is for two classes
    for j, mask in enumerate(masks):
        alone, _ = fit_path(data, Cs, 0.0, mask=mask, solver="lbfgs")
        for a, b in zip(alone, together[j]):
            assert b.duality_gap <= 1e-6 * abs(b.fun)
            assert b.fun == pytest.approx(a.fun, rel=2e-6)

    passes = _folds.FoldPasses(data, masks)
    probs = [
        Problem(data.datafit, from_params("deprecated", 0.3, 0.0, S), data.X, data.y, passes.S[:, j])
        for j, S in enumerate(passes.totals)
    ]
    runs, want = [], []
    for j, problem in enumerate(probs):  # points near, not at, each fold's optimum; intercepts off by 0.3
        theta = torch.as_tensor(rng.standard_normal(27) * 0.05)
        theta[24:] += torch.as_tensor([0.3 * (j - 1), -0.2, 0.1])
        f = problem.objective(theta)
        runs.append(Result(theta, f, float("nan"), 1, True, ""))
        want.append(_certificate.duality_gap(problem, theta, f))
    np.testing.assert_allclose(_folds.fold_gaps(passes, probs, runs, [0, 1, 2], True), want, rtol=1e-7)
    assert min(want) > 1e-3


def _fold_objectives(X, y, model):
    """(n_folds, n_cs): each fold fit's objective, mean train log-loss + ||W||^2 / (2 C n_train)."""
    from scipy.special import logsumexp
    from sklearn.model_selection import StratifiedKFold

    n_folds = model.coefs_paths_.shape[0]
    out = np.empty((n_folds, len(model.Cs_)))
    for f, (train, _) in enumerate(StratifiedKFold(n_folds).split(np.zeros(len(y)), y)):
        for i, C in enumerate(model.Cs_):
            coef = model.coefs_paths_[f, 0, i]  # (n_classes, n_dof), n_classes 1 for two classes
            W, b = (coef[:, :-1], coef[:, -1]) if model.fit_intercept else (coef, 0.0)
            Z = np.asarray(X[train] @ W.T) + b
            if len(W) == 1:  # two classes: softplus(z) - y z
                loss = np.logaddexp(0.0, Z[:, 0]) - y[train] * Z[:, 0]
            else:
                loss = logsumexp(Z, axis=1) - Z[np.arange(len(train)), y[train]]
            out[f, i] = loss.mean() + (W * W).sum() / (2 * C * len(train))
    return out


@pytest.mark.parametrize("folds", [[2, 0], [0, 1, 2, 3, 4], [6, 5, 4, 3, 2, 1, 0]])
@pytest.mark.parametrize("way", [(False, False), (True, False), (False, True), (True, True)])  # (five, touch)
def test_fold_pass_kernel_equals_blocked_products(monkeypatch, folds, way):
    """The fused numba pass over m folds gives the blocked torch products (float64 data: to rounding)."""
    import torch

    from torchlogit import _folds, _kernels
    from torchlogit.path import prepare

    X, y = make_classification(80_000, 30, random_state=1)  # 2.4M entries: the kernels apply
    data, _ = prepare(LogisticRegressionCV(), X, y, None, None)
    rng = np.random.default_rng(0)
    masks = [torch.as_tensor(rng.random(len(y)) < 0.75) for _ in range(7)]
    passes = _folds.FoldPasses(data, masks)
    W = torch.as_tensor(rng.standard_normal((len(folds), 30)) * 0.2)
    b = torch.as_tensor(rng.standard_normal(len(folds)))
    assert _kernels.applies(data.X)
    monkeypatch.setattr(_folds.FoldPasses, "_layout", lambda self, args: way)
    fused = passes.loss_gradient(W, b, folds)
    monkeypatch.setattr(_kernels, "applies", lambda X: False)
    blocked = passes.loss_gradient(W, b, folds)
    for a, c in zip(fused, blocked):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("data", ["binary", "multiclass"])
def test_fast_log_loss_equals_the_scorer(request, data):
    """'neg_log_loss' is computed for every C from one product; a callable scorer takes the per-C path."""
    from sklearn.metrics import get_scorer

    X, y = request.getfixturevalue(data)
    kw = {**COMMON, "Cs": [0.01, 1.0, 100.0], "l1_ratios": (0.0,)}
    fast = LogisticRegressionCV(**kw).fit(X, y)
    slow = LogisticRegressionCV(**{**kw, "scoring": get_scorer("neg_log_loss")}).fit(X, y)
    np.testing.assert_allclose(fast.scores_, slow.scores_, rtol=1e-12, atol=1e-14)


def test_path_scores_in_blocks_of_test_rows_equal_one_block(binary, monkeypatch):
    """The test rows are gathered a block at a time (no copy of X[test]); blocks of 7 rows give the same
    scores as one block."""
    from torchlogit import _cv

    X, y = binary
    kw = {**COMMON, "Cs": [0.01, 1.0], "l1_ratios": (0.0,)}
    whole = LogisticRegressionCV(**kw).fit(X, y)
    monkeypatch.setattr(_cv, "SCORE_BLOCK_BYTES", 7 * X.shape[1] * 4)
    blocks = LogisticRegressionCV(**kw).fit(X, y)
    np.testing.assert_allclose(blocks.scores_, whole.scores_, rtol=1e-12, atol=1e-14)


def _fold_setup(n, d, m=3, C=0.5, seed=0, n_classes=2):
    import torch

    from torchlogit import _folds
    from torchlogit._problem import Problem
    from torchlogit.path import prepare
    from torchlogit.penalties import from_params

    more = {} if n_classes == 2 else {"n_informative": 4, "n_classes": n_classes}
    X, y = make_classification(n, d, random_state=seed, **more)
    data, _ = prepare(LogisticRegressionCV(), X, y, None, None)
    rng = np.random.default_rng(seed)
    masks = [torch.as_tensor(rng.random(n) < 0.75) for _ in range(m)]
    passes = _folds.FoldPasses(data, masks)

    def problems(C):
        return [
            Problem(data.datafit, from_params("deprecated", C, 0.0, S), data.X, data.y, passes.S[:, j])
            for j, S in enumerate(passes.totals)
        ]

    return data, passes, problems, rng


def test_a_point_seen_again_costs_no_pass(monkeypatch):
    """FoldPasses remembers each fold's last few points: the same (W, b) bits give the same values, no pass."""
    import torch

    from torchlogit import _folds

    data, passes, _, rng = _fold_setup(600, 5)
    calls = []
    real = _folds.FoldPasses.pass_
    monkeypatch.setattr(
        _folds.FoldPasses, "pass_", lambda self, W, b, folds: calls.append(list(folds)) or real(self, W, b, folds)
    )
    W, b = torch.as_tensor(rng.standard_normal((3, 5))), torch.as_tensor(rng.standard_normal(3))
    first = passes.loss_gradient(W, b, [0, 1, 2])
    again = passes.loss_gradient(W[[2, 0]], b[[2, 0]], [2, 0])
    assert calls == [[0, 1, 2]]
    for a, c in zip(first, again):
        torch.testing.assert_close(a[..., [2, 0]], c, rtol=0, atol=0)
    moved = W.clone()
    moved[1, 0] += 1e-12  # one fold's point changes in its last bits: that fold alone is passed over again
    passes.loss_gradient(moved, b, [0, 1, 2])
    assert calls == [[0, 1, 2], [1]]
    for step in range(_folds.MEMO):  # the oldest point is forgotten after MEMO newer ones
        passes.loss_gradient(W[:1] + step + 1, b[:1], [0])
    passes.loss_gradient(W[:1], b[:1], [0])
    assert calls[-1] == [0] and len(calls) == 2 + _folds.MEMO + 1


@pytest.mark.parametrize("k", [1, 3])  # two classes, three
def test_curvature_pairs_move_exactly_to_a_new_penalty(k):
    """y = g(x + s) - g(x) of one C, re-penalised, is that difference under another C (to rounding)."""
    import torch

    from torchlogit import _folds

    data, passes, problems, rng = _fold_setup(500, 6, n_classes=max(2, k))
    d, p = 6, k * 7
    at1 = _folds.FoldsAtC(passes, data.std, problems(0.3), True, 1e-6)
    at2 = _folds.FoldsAtC(passes, data.std, problems(40.0), True, 1e-6)
    x, s = torch.as_tensor(rng.standard_normal(p)), torch.as_tensor(rng.standard_normal(p) * 0.1)

    def y(at):
        return at.evaluate([1], [x + s])[0][1] - at.evaluate([1], [x])[0][1]

    moved = _folds._repenalise(([s], [y(at1)]), at1.l2[1], at2.l2[1], d, k)
    torch.testing.assert_close(moved[1][0], y(at2), rtol=1e-10, atol=1e-14)
    assert not torch.allclose(y(at1), y(at2))  # the two penalties do differ


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_sampled_hessian_is_the_folds_mean_hessian(fit_intercept):
    """With every row in the sample (n <= SAMPLE_ROWS) the folds' preconditioner is the exact inverse Hessian,
    in the solver's coordinates phi, of the folds' mean objective at their mean point; it is formed again at
    every C where that costs no more than a pass, else formed once and rescaled by the measured curvature."""
    import torch

    from torchlogit import _folds
    from torchlogit._problem import Problem
    from torchlogit.path import prepare
    from torchlogit.penalties import from_params

    data, passes, _, rng = _fold_setup(600, 6, m=5)
    if not fit_intercept:
        data, _ = prepare(LogisticRegressionCV(fit_intercept=False), data.X.numpy(), data.y.numpy(), None, None)
        passes = _folds.FoldPasses(data, [torch.as_tensor(rng.random(600) < 0.75) for _ in range(5)])

    probs = [
        Problem(data.datafit, from_params("deprecated", 0.3, 0.0, S), data.X, data.y, passes.S[:, j])
        for j, S in enumerate(passes.totals)
    ]
    at = _folds.FoldsAtC(passes, data.std, probs, fit_intercept, 1e-6)
    p = 6 + int(fit_intercept)
    phis = [torch.as_tensor(rng.standard_normal(p) * 0.3) for _ in range(5)]
    at.evaluate(list(range(5)), phis)
    hessian = _folds.SampledHessian(data, passes)
    assert hessian.refresh  # 600 rows x 7^2 <= 2 x 600 x 6 x 5
    M = at.preconditioners(hessian, phis)[0](torch.eye(p, dtype=torch.float64))

    Z = data.std.standardize(data.X)
    Z = torch.cat([Z, torch.ones(600, 1, dtype=Z.dtype)], dim=1) if fit_intercept else Z
    sbar, l2bar = passes.S.mean(dim=1), torch.stack(at.l2).mean(0)

    def f(phi):  # the folds' mean objective in phi, its penalty l2bar on the coefficients only
        z = Z @ phi
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, data.y, reduction="none")
        return (sbar * loss).sum() + 0.5 * (l2bar * phi[:6] ** 2).sum()

    H = torch.autograd.functional.hessian(f, torch.stack(phis).mean(0))
    torch.testing.assert_close(M, torch.linalg.inv(H), rtol=1e-6, atol=1e-9)

    # where re-forming costs more than a pass: the first C's H, rescaled by the mean measured curvature
    hessian.refresh = False
    at.curvature = [2 * c for c in at.curvature]
    moved = [phi + 1.0 for phi in phis]  # other points: the rescaled H does not look at them
    M2 = hessian.inverse(moved, at.curvature, l2bar)
    H2 = H.clone()
    H2.diagonal()[:6] -= l2bar
    H2 = 2 * H2
    H2.diagonal()[:6] += l2bar
    torch.testing.assert_close(M2, torch.linalg.inv(H2), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n", [600, 80_000])  # the blocked torch products; the fused kernel (2.4M entries)
def test_fold_gaps_equal_the_single_fit_certificate(n):
    """The folds' gaps (intercept Newton steps taken by passes over X) are each fold's own certificate."""
    import torch

    from torchlogit import _certificate, _folds
    from torchlogit.solvers._result import Result

    data, passes, problems, rng = _fold_setup(n, 30, seed=1)
    probs = problems(0.05)
    runs, want = [], []
    for j, problem in enumerate(probs):  # points near, not at, each fold's optimum; intercepts off by 0.3
        theta = torch.as_tensor(rng.standard_normal(31) * 0.05)
        theta[-1] += 0.3 * (j - 1)
        f = problem.objective(theta)
        runs.append(Result(theta, f, float("nan"), 1, True, ""))
        want.append(_certificate.duality_gap(problem, theta, f))
    got = _folds.fold_gaps(passes, probs, runs, [0, 1, 2], True)
    np.testing.assert_allclose(got, want, rtol=1e-7)
    assert min(want) > 1e-3  # far enough from the optimum that the Newton steps matter


def test_the_fold_kernels_way_is_measured_once_and_kept(monkeypatch, tmp_path):
    """Outside the test suite's fixed choices the fold kernel's way (logits five folds at a time or one at a
    time, tiles touched first or not) is timed on the pass's own data, kept in the cache file, and reused."""
    import json

    import torch

    from torchlogit import _folds, _kernels, _measured
    from torchlogit.path import prepare

    monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_measured, "fixed_choices", lambda: False)
    monkeypatch.setattr(_measured, "_fastest", {})
    X, y = make_classification(80_000, 30, random_state=1)
    data, _ = prepare(LogisticRegressionCV(), X, y, None, None)
    rng = np.random.default_rng(0)
    passes = _folds.FoldPasses(data, [torch.as_tensor(rng.random(len(y)) < 0.75) for _ in range(5)])
    W, b = torch.as_tensor(rng.standard_normal((5, 30)) * 0.2), torch.zeros(5, dtype=torch.float64)
    assert _kernels.applies(data.X)
    first = passes.pass_(W, b, list(range(5)))
    (entry,) = [
        v for k, v in json.loads((tmp_path / "costs.json").read_text()).items() if "fold pass, 4 ways, 30 columns" in k
    ]
    assert set(entry) == {"one", "one, touch", "five", "five, touch"} and all(t > 0 for t in entry.values())
    calls = []
    monkeypatch.setattr(_measured, "seconds", lambda *a, **k: calls.append(1) or 1.0)
    again = passes.pass_(W, b, list(range(5)))
    assert not calls  # kept: not timed again
    for u, v in zip(first, again):
        assert torch.equal(u, v)


def test_touching_the_tiles_first_changes_no_bit():
    """tile_touch only reads: the fold kernel gives the same bits with and without it, either logits way."""
    from torchlogit import _folds_kernels, _kernels

    rng = np.random.default_rng(3)
    n, d, m = 3001, 37, 6
    X = rng.standard_normal((n, d)).astype(np.float32)
    W, b = (0.3 * rng.standard_normal((m, d))).astype(np.float32), np.zeros(m, np.float32)
    y = (rng.random(n) < 0.4).astype(np.float32)
    S = (rng.random((m, n)) / n).astype(np.float32)
    rows, chunks = _kernels._chunks(n)
    for five in (False, True):
        plain = _folds_kernels.folds_loss_gradient(X, W, b, y, S, rows, chunks, five, False)
        touched = _folds_kernels.folds_loss_gradient(X, W, b, y, S, rows, chunks, five, True)
        for u, v in zip(plain, touched):
            assert np.array_equal(u, v)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.0], ids=["l1", "l2"])
def test_the_path_is_warm_started(binary, l1_ratio):
    """Each point starts from the previous one: the path takes fewer iterations than cold fits at the
    same C, and reaches the same models."""
    from torchlogit import LogisticRegression

    X, y = binary
    solver = "prox-newton" if l1_ratio else "lbfgs"
    path = regularization_path(X, y, Cs=8, l1_ratio=l1_ratio, tol=1e-8, solver=solver)
    cold = [LogisticRegression(C=C, l1_ratio=l1_ratio, tol=1e-8, solver=solver).fit(X, y) for C in path.Cs]
    assert path.n_iter.sum() < 0.8 * sum(int(np.max(m.n_iter_)) for m in cold)
    for k, model in enumerate(cold):
        np.testing.assert_allclose(path.coefs[k][:-1], model.coef_.ravel(), rtol=1e-4, atol=1e-5)


def test_random_state_and_n_jobs_are_accepted_and_change_nothing(binary):
    """scikit-learn's random_state (saga/liblinear shuffling) and n_jobs (joblib over folds): accepted for a
    drop-in, without effect here (deterministic solvers; the folds share torch's threads)."""
    X, y = binary
    kw = {**COMMON, "Cs": 4, "l1_ratios": (0.0,)}
    base = LogisticRegressionCV(**kw).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # n_jobs' deprecation, if the installed version has one
        other = LogisticRegressionCV(**kw, random_state=7, n_jobs=2).fit(X, y)
    assert other.C_ == base.C_
    np.testing.assert_array_equal(other.coef_, base.coef_)
    np.testing.assert_array_equal(other.scores_, base.scores_)
