"""summary(): Wald inference against statsmodels Logit / MNLogit, side by side."""

import numpy as np
import pandas as pd
import pytest

sm = pytest.importorskip("statsmodels.api")

from sklearn.datasets import load_breast_cancer  # noqa: E402

from torchlogit import LogisticRegression  # noqa: E402
from torchlogit._inference import InferenceError  # noqa: E402


def spector():
    d = sm.datasets.spector.load_pandas()
    return d.exog, d.endog.to_numpy()


def breast_cancer_subset():
    data = load_breast_cancer(as_frame=True)
    X = data.data[["mean radius", "mean texture", "mean smoothness", "mean symmetry", "worst concavity"]]
    return X, data.target.to_numpy()


def synthetic_binary(n=3000, seed=0):
    """A known logistic model on unscaled columns (scales 0.01 .. 100)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) * np.array([0.01, 1.0, 10.0, 100.0])
    beta = np.array([30.0, 0.5, -0.05, 0.004])
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ beta - 0.3)))).astype(int)
    return pd.DataFrame(X, columns=["tiny", "unit", "ten", "hundred"]), y


def anes96():
    d = sm.datasets.anes96.load_pandas()
    return d.exog[["logpopul", "selfLR", "age", "educ", "income"]], d.endog.to_numpy().astype(int)


def synthetic_multinomial(n=2000, K=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    B = rng.standard_normal((K, 3))
    logits = X @ B.T + rng.standard_normal(K)
    y = np.array([rng.choice(K, p=np.exp(z - z.max()) / np.exp(z - z.max()).sum()) for z in logits])
    return pd.DataFrame(X, columns=["a", "b", "c"]), np.array(["w", "x", "y", "z"])[y]


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b)))


BINARY = {"spector": spector, "breast_cancer": breast_cancer_subset, "synthetic": synthetic_binary}
MULTI = {"anes96": anes96, "synthetic": synthetic_multinomial}


@pytest.mark.parametrize("name", list(BINARY))
def test_logit_matches_statsmodels(name):
    X, y = BINARY[name]()
    model = LogisticRegression(penalty=None, tol=1e-10).fit(X, y)
    res = model.summary(X, y)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
    assert rel(res.params, ref.params) < 1e-6 and rel(res.bse, ref.bse) < 1e-5
    assert rel(res.pvalues, ref.pvalues) < 1e-4 and rel(res.conf_int(), ref.conf_int().to_numpy()) < 1e-5
    for attr in ("llf", "llnull", "prsquared", "aic", "bic"):
        assert getattr(res, attr) == pytest.approx(getattr(ref, attr), rel=1e-9), attr
    assert res.nobs == ref.nobs and res.df_resid == ref.df_resid
    robust = model.summary(X, y, cov_type="HC0")
    ref_robust = sm.Logit(y, sm.add_constant(X)).fit(disp=0, method="newton", tol=1e-12, cov_type="HC0")
    assert rel(robust.bse, ref_robust.bse) < 1e-5
    hc1 = model.summary(X, y, cov_type="HC1")
    np.testing.assert_allclose(hc1.bse, robust.bse * np.sqrt(len(y) / (len(y) - X.shape[1] - 1)), rtol=1e-12)


@pytest.mark.parametrize("name", list(MULTI))
def test_mnlogit_matches_statsmodels(name):
    X, y = MULTI[name]()
    model = LogisticRegression(penalty=None, tol=1e-10).fit(X, y)
    codes = np.unique(y, return_inverse=True)[1]
    ref = sm.MNLogit(codes, sm.add_constant(X)).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
    res = model.summary(X, y)  # baseline: the first class, as MNLogit
    assert res.params.shape == (len(model.classes_) - 1, X.shape[1] + 1)
    assert rel(res.params, ref.params.to_numpy().T) < 1e-6 and rel(res.bse, ref.bse.to_numpy().T) < 1e-5
    for attr in ("llf", "llnull", "prsquared", "aic", "bic"):
        # statsmodels fits the null model iteratively; ours is closed form
        assert getattr(res, attr) == pytest.approx(getattr(ref, attr), rel=1e-8), attr
    robust = model.summary(X, y, cov_type="HC0")
    ref_robust = sm.MNLogit(codes, sm.add_constant(X)).fit(
        disp=0, method="newton", tol=1e-12, maxiter=100, cov_type="HC0"
    )
    assert rel(robust.bse, ref_robust.bse.to_numpy().T) < 1e-5


def test_baseline_conventions_agree():
    X, y = synthetic_multinomial()
    model = LogisticRegression(penalty=None, tol=1e-10).fit(X, y)
    first, last, sym = model.summary(X, y), model.summary(X, y, baseline="z"), model.summary(X, y, baseline=None)
    assert sym.params.shape == (4, 4) and np.allclose(sym.params.sum(0), 0, atol=1e-12)
    np.testing.assert_allclose(sym.params[1:] - sym.params[0], first.params, atol=1e-12)
    # contrast x - w: from the 'first' rows and from the symmetric covariance
    np.testing.assert_allclose(last.params[1] - last.params[0], first.params[0], atol=1e-12)  # (x-z)-(w-z) = x-w
    q = sym.cov_params.shape[0] // 4
    block = lambda a, b: sym.cov_params[a * q : (a + 1) * q, b * q : (b + 1) * q]  # noqa: E731
    var_x_minus_w = np.diag(block(1, 1) + block(0, 0) - block(0, 1) - block(1, 0))
    np.testing.assert_allclose(np.sqrt(var_x_minus_w), first.bse[0], rtol=1e-9)
    with pytest.raises(ValueError, match="baseline 'v' is not a class"):
        model.summary(X, y, baseline="v")


def test_table_frame_and_penalized_note():
    X, y = spector()
    res = LogisticRegression(penalty=None, tol=1e-10).fit(X, y).summary(X, y)
    text = str(res)
    assert "Logit Regression Results" in text and "GPA" in text and "-13.0213" in text and "4.931" in text
    frame = res.to_frame()
    assert list(frame.index) == ["const", "GPA", "TUCE", "PSI"] and frame.loc["PSI", "P>|z|"] == pytest.approx(
        0.0255, abs=5e-4
    )
    penalized = LogisticRegression(C=0.5).fit(X, y).summary(X, y)
    assert "not classical Wald inference" in str(penalized) and penalized.penalized
    assert np.linalg.norm(penalized.params[1:]) < np.linalg.norm(res.params[1:])  # shrunk toward zero
    Xm, ym = synthetic_multinomial()
    frame = LogisticRegression(penalty=None).fit(Xm, ym).summary(Xm, ym).to_frame()
    assert frame.index.names == ["class", "term"] and len(frame) == 12


def test_singular_information_names_the_columns():
    X, y = spector()
    X = X.assign(GPA2=2 * X["GPA"] - X["PSI"])
    model = LogisticRegression(penalty=None).fit(X, y)
    with pytest.raises(InferenceError, match="columns 'GPA', 'PSI', 'GPA2' are collinear") as info:
        model.summary(X, y)
    assert "\n" not in str(info.value)
    Xz = spector()[0].assign(zero=0.0)
    with pytest.raises(InferenceError, match="column 'zero' has no variation"):
        LogisticRegression(penalty=None).fit(Xz, y).summary(Xz, y)
    # a penalty makes the same design regular
    assert np.isfinite(LogisticRegression(C=1.0).fit(X, y).summary(X, y).bse).all()


def test_a_wide_singular_design_gets_a_line_not_thousands_of_names():
    from torchlogit._inference import _singular_message

    names = ["const"] + [f"x{j}" for j in range(3000)]
    message = _singular_message(names)
    assert "columns 'const', 'x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6' and 2993 more are collinear" in message
    assert len(message) < 300 and "\n" not in message
    assert "'GPA', 'PSI', 'GPA2' are" in _singular_message(["GPA", "PSI", "GPA2"])  # a few: all named


def test_float32_and_no_intercept():
    X, y = synthetic_binary()
    ref = sm.Logit(y, X).fit(disp=0, method="newton", tol=1e-12)
    res = LogisticRegression(penalty=None, fit_intercept=False, tol=1e-10).fit(X, y).summary(X, y)
    assert res.names == ["tiny", "unit", "ten", "hundred"] and rel(res.bse, ref.bse) < 1e-5
    assert res.llnull == pytest.approx(-len(y) * np.log(2))
    Xs = (X - X.mean()) / X.std()
    r32 = LogisticRegression(penalty=None).fit(Xs.astype(np.float32), y).summary(Xs.astype(np.float32), y)
    r64 = LogisticRegression(penalty=None, tol=1e-10).fit(Xs, y).summary(Xs, y)
    assert rel(r32.bse, r64.bse) < 1e-4


def test_separation_is_explained_not_returned_as_huge_numbers():
    import warnings

    from torchlogit._separation import SeparationWarning, find_separation

    hours, passed = np.array([[1.0], [2.0], [3.0]]), np.array([0, 0, 1])
    X = pd.DataFrame(hours, columns=["hours"])
    with pytest.warns(
        SeparationWarning,
        match="complete separation: classes 0 and 1 are separated by a linear combination of 'const', 'hours'",
    ) as rec:
        model = LogisticRegression(penalty=None).fit(X, passed)
    assert "Remedies: fit with an L2 penalty" in str(rec[0].message)
    assert model.separation_.complete and model.separation_.n_separated == 3
    with pytest.raises(InferenceError, match="^complete separation"):
        model.summary(X, passed)
    with warnings.catch_warnings():  # the lecture's remedy: the default L2 penalty
        warnings.simplefilter("error")
        penalized = LogisticRegression().fit(X, passed)
    assert penalized.separation_ is None and np.isfinite(penalized.summary(X, passed).bse).all()
    # quasi-complete: a tie at 2 hours
    quasi = find_separation(np.array([[1.0], [2.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]), 2)
    assert not quasi.complete and quasi.n_separated == 2 and "quasi-complete separation" in quasi.message()
    # multinomial: class 'c' sits alone at large x2, 'a' and 'b' overlap
    rng = np.random.default_rng(0)
    Xm = rng.standard_normal((90, 2))
    ym = np.where(Xm[:, 1] > 0.8, "c", np.where(rng.random(90) < 1 / (1 + np.exp(-2 * Xm[:, 0])), "a", "b"))
    with pytest.warns(SeparationWarning, match="'a' and 'c'; 'b' and 'c'"):
        LogisticRegression(penalty=None).fit(pd.DataFrame(Xm, columns=["x1", "x2"]), ym)
    # overlapping data: no warning, no LP finding
    Xs, ys = spector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LogisticRegression(penalty=None).fit(Xs, ys).separation_ is None


def test_convergence_report_and_duality_gap_bound_the_distance_to_the_optimum():
    X, y = breast_cancer_subset()
    X = (X - X.mean()) / X.std()
    best = LogisticRegression(solver="newton", tol=1e-12).fit(X, y).convergence_
    assert best.converged and best.duality_gap < 1e-12 and best.grad_max <= 1e-12
    for solver, tol in [("lbfgs", 1e-2), ("lbfgs", 1e-4), ("newton", 1e-3), ("sgd", None)]:
        report = (
            LogisticRegression(solver=solver, tol=tol, max_iter=5 if solver == "sgd" else 1000).fit(X, y).convergence_
        )
        excess = report.objective - best.objective
        assert 0 <= excess <= report.duality_gap * (1 + 1e-9) + 1e-15, (solver, tol, excess, report.duality_gap)
        assert report.solver == solver and report.n_iter >= 1 and str(report).startswith(solver)
    Xm, ym = synthetic_multinomial()
    ref = LogisticRegression(C=0.1, tol=1e-12).fit(Xm, ym).convergence_
    rough = LogisticRegression(C=0.1, solver="lbfgs", tol=1e-3).fit(Xm, ym).convergence_
    assert 0 <= rough.objective - ref.objective <= rough.duality_gap
    assert LogisticRegression(penalty=None).fit(Xm, ym).convergence_.duality_gap is None


def test_predict_proba_ci_matches_statsmodels_and_contains_the_estimate():
    X, y = spector()
    model = LogisticRegression(penalty=None, tol=1e-10).fit(X, y)
    res = model.summary(X, y)
    lo, hi = res.predict_proba_ci(X)
    p = model.predict_proba(X)
    assert lo.shape == hi.shape == p.shape and np.all(lo <= p + 1e-12) and np.all(p <= hi + 1e-12)
    np.testing.assert_allclose(lo.sum(1) + hi.sum(1), 2.0, atol=1e-12)  # the class-0 band mirrors class 1
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0, method="newton", tol=1e-12)
    frame = ref.get_prediction(sm.add_constant(X)).summary_frame()  # logit-scale interval, transformed
    np.testing.assert_allclose(lo[:, 1], frame["ci_lower"], rtol=1e-6)
    np.testing.assert_allclose(hi[:, 1], frame["ci_upper"], rtol=1e-6)
    Xm, ym = synthetic_multinomial(n=400)
    mm = LogisticRegression(penalty=None, tol=1e-10).fit(Xm, ym)
    lo, hi = mm.summary(Xm, ym).predict_proba_ci(Xm[:50])
    pm = mm.predict_proba(Xm[:50])
    assert np.all(lo <= pm + 1e-12) and np.all(pm <= hi + 1e-12) and np.all(hi - lo > 0)
    # wider with less data: 400 rows against 2000
    big = LogisticRegression(penalty=None, tol=1e-10).fit(*synthetic_multinomial())
    lo2, hi2 = big.summary(*synthetic_multinomial()).predict_proba_ci(Xm[:50])
    assert np.median(hi - lo) > 1.5 * np.median(hi2 - lo2)


def test_multinomial_band_is_the_delta_method_of_statsmodels_covariance():
    """Var p_k from a numerical Jacobian of the softmax in MNLogit's parameters and its cov_params."""
    from scipy import stats

    Xm, ym = synthetic_multinomial(n=400)
    model = LogisticRegression(penalty=None, tol=1e-10).fit(Xm, ym)
    lo, hi = model.summary(Xm, ym).predict_proba_ci(Xm[:5], alpha=0.1)
    codes = np.unique(ym, return_inverse=True)[1]
    exog = sm.add_constant(Xm).to_numpy()
    ref = sm.MNLogit(codes, exog).fit(disp=0, method="newton", tol=1e-12)
    beta, cov = np.asarray(ref.params).ravel(order="F"), np.asarray(ref.cov_params())  # equation-major, as cov_params

    def proba(flat, x):
        z = np.concatenate([[0.0], x @ flat.reshape(-1, exog.shape[1]).T])
        return np.exp(z - z.max()) / np.exp(z - z.max()).sum()

    q = stats.norm.ppf(0.95)
    for i in range(5):
        p = proba(beta, exog[i])
        G = np.array([(proba(beta + h, exog[i]) - proba(beta - h, exog[i])) / 2e-6 for h in 1e-6 * np.eye(len(beta))]).T
        se = np.sqrt(np.einsum("kj,jl,kl->k", G, cov, G))
        np.testing.assert_allclose(lo[i], np.clip(p - q * se, 0, 1), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(hi[i], np.clip(p + q * se, 0, 1), rtol=1e-5, atol=1e-9)
