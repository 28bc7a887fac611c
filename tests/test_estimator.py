"""LogisticRegression behaves as scikit-learn's does where the two share a feature."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CUDA
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from test_parity import binary_problem, multinomial_problem

from torchlogit import LogisticRegression
from torchlogit._base import to_tensor

HOURS, PASSED = [[1.0], [2.0], [3.0]], [0, 0, 1]


def test_lecture_data():
    model = LogisticRegression().fit(HOURS, PASSED)
    ref = SkLogisticRegression(tol=1e-10).fit(HOURS, PASSED)
    np.testing.assert_allclose(model.predict_proba([[4.0]]), ref.predict_proba([[4.0]]), rtol=1e-6)
    assert model.predict([[4.0]])[0] == 1 and model.predict([[1.0]])[0] == 0


def test_string_labels_and_pandas_feature_names():
    X, y = multinomial_problem(n=300, d=3, k=3)
    labels = np.array(["cat", "dog", "emu"])[y]
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    model = LogisticRegression().fit(df, labels)
    assert list(model.classes_) == ["cat", "dog", "emu"]
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert set(model.predict(df)) <= set(labels)
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X)


def test_torch_tensor_input_matches_numpy():
    X, y = binary_problem(n=500)
    a = LogisticRegression().fit(X, y)
    b = LogisticRegression().fit(torch.from_numpy(X), torch.from_numpy(y))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(torch.from_numpy(X)))


@pytest.mark.parametrize(
    "dtype_in, dtype_opt, expected",
    [
        (np.float32, None, np.float32),
        (np.float64, None, np.float64),
        (np.int64, None, np.float64),
        (np.float64, "float32", np.float32),
        (np.float32, "float64", np.float64),
    ],
)
def test_dtype_follows_input_or_option(dtype_in, dtype_opt, expected):
    X, y = binary_problem(n=300)
    X = (X * 10).astype(dtype_in)
    model = LogisticRegression(dtype=dtype_opt).fit(X, y)
    assert model.coef_.dtype == expected
    ref = LogisticRegression(dtype="float64").fit(X.astype(np.float64), y)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-3)


def test_float32_input_is_not_copied():
    X = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    t = to_tensor(X, torch.device("cpu"))
    assert t.data_ptr() == X.ctypes.data  # shares the user's memory
    Xf = np.asfortranarray(X)
    assert to_tensor(Xf, torch.device("cpu")).data_ptr() == Xf.ctypes.data


def test_penalty_spellings_of_both_sklearn_generations():
    X, y = binary_problem(n=400)
    none_old = LogisticRegression(penalty=None).fit(X, y)
    none_new = LogisticRegression(C=np.inf).fit(X, y)
    np.testing.assert_allclose(none_old.coef_, none_new.coef_)
    l2_new = LogisticRegression(C=0.1, l1_ratio=0.0).fit(X, y)
    l2_old = LogisticRegression(penalty="l2", C=0.1).fit(X, y)
    np.testing.assert_allclose(l2_new.coef_, l2_old.coef_)
    assert np.abs(l2_new.coef_).sum() < np.abs(none_new.coef_).sum()
    en_new = LogisticRegression(C=0.1, l1_ratio=0.5).fit(X, y)
    en_old = LogisticRegression(penalty="elasticnet", C=0.1, l1_ratio=0.5).fit(X, y)
    np.testing.assert_allclose(en_new.coef_, en_old.coef_)
    l1_new = LogisticRegression(C=0.1, l1_ratio=1.0).fit(X, y)
    with pytest.warns(UserWarning, match="Inconsistent values: penalty=l1 with l1_ratio=0.0"):
        l1_old = LogisticRegression(penalty="l1", C=0.1).fit(X, y)  # scikit-learn's warning, and an L1 fit
    np.testing.assert_allclose(l1_new.coef_, l1_old.coef_)
    strong = {
        C: [(LogisticRegression(C=C, l1_ratio=r).fit(X, y).coef_ == 0).sum() for r in (1.0, 0.5, 0.0)] for C in (0.002,)
    }
    assert strong[0.002][0] > 0 and strong[0.002][0] >= strong[0.002][1] >= strong[0.002][2] == 0


def test_warning_when_C_is_given_without_penalty():
    X, y = binary_problem(n=200)
    with pytest.warns(UserWarning, match="penalty=None will ignore the C"):
        LogisticRegression(penalty=None, C=0.5).fit(X, y)


def test_solver_aliases():
    X, y = binary_problem(n=300)
    for alias, resolved in [
        ("newton-cg", "newton"),
        ("newton-cholesky", "newton"),
        ("liblinear", "newton"),
        ("saga", "newton"),
        ("sag", "newton"),
        ("lbfgs", "lbfgs"),
    ]:
        assert LogisticRegression(solver=alias).fit(X, y).solver_ == resolved


def test_auto_solver_rule():
    """Above 1000 parameters never Newton; below, the measured costs decide (tests/test_costs.py)."""
    _, y = binary_problem(n=200, d=5)
    Xw = np.random.default_rng(0).normal(size=(200, 1001))
    with pytest.warns(ConvergenceWarning):  # 200 rows, 1001 features: separable, no optimum
        assert LogisticRegression(max_iter=5).fit(Xw, y).solver_ == "lbfgs"  # p = 1002 > 1000


@pytest.mark.parametrize(
    "solver, phrase",
    [
        ("newton", "Newton solver did not converge after 1 iterations"),
        ("newton-cholesky", "Newton solver did not"),
        ("lbfgs", "lbfgs failed to converge after 1 iteration"),
        ("newton-cg", "newton-cg failed to converge at loss"),
        ("liblinear", "Liblinear failed to converge"),
        ("saga", "The max_iter was reached"),
    ],
)
def test_convergence_warning_starts_with_scikit_learns_phrase_and_names_the_fix(solver, phrase):
    """Users filter ConvergenceWarnings by scikit-learn's phrases; the line then says what to change."""
    X, y = multinomial_problem(n=500)
    with pytest.warns(ConvergenceWarning) as record:
        LogisticRegression(solver=solver, max_iter=1).fit(X, y)
    message = str(record[0].message)
    assert message.startswith(phrase) and "\n" not in message
    assert "Increase the number of iterations" in message and "max_iter=1" in message


def test_max_iter_zero_fits_nothing():
    X, y = multinomial_problem(n=200)
    with pytest.warns(ConvergenceWarning):
        model = LogisticRegression(max_iter=0).fit(X, y)
    assert model.n_iter_.tolist() == [0] and model.n_iter_.dtype == np.int32
    assert not model.coef_.any() and not model.intercept_.any()


@pytest.mark.parametrize("problem", [binary_problem, multinomial_problem])
def test_warm_start_continues_exactly(problem):
    X, y = problem(n=600)
    full = LogisticRegression(solver="newton", max_iter=4, tol=1e-14)
    with pytest.warns(ConvergenceWarning):
        full.fit(X, y)
    half = LogisticRegression(solver="newton", max_iter=2, warm_start=True, tol=1e-14)
    with pytest.warns(ConvergenceWarning):
        half.fit(X, y)
        half.fit(X, y)
    np.testing.assert_allclose(half.coef_, full.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(half.intercept_, full.intercept_, rtol=1e-12, atol=1e-14)


def test_warm_start_from_the_optimum_does_nothing():
    X, y = multinomial_problem(n=600)
    model = LogisticRegression(solver="lbfgs", warm_start=True).fit(X, y)
    coef = model.coef_.copy()
    model.fit(X, y)
    assert model.n_iter_[0] == 0
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-14, atol=1e-15)  # re-centring over classes: 1 ulp


def test_unscaled_data_converges_without_warnings():
    # Columns on scales 1e-3 .. 1e3: sklearn's lbfgs warns here at default settings.
    rng = np.random.default_rng(0)
    scales = np.logspace(-3, 3, 8)
    X = rng.normal(size=(3000, 8)) * scales + rng.normal(size=8) * scales
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-((X / scales) @ rng.normal(size=8))))).astype(int)
    ref = SkLogisticRegression(solver="newton-cholesky", tol=1e-10, max_iter=1000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for solver in ["newton", "lbfgs"]:
            model = LogisticRegression(solver=solver).fit(X, y)
            # compared per standardised feature: coef * scale, relative to the largest
            err = np.abs((model.coef_ - ref.coef_) * scales).max() / np.abs(ref.coef_ * scales).max()
            assert err < 1e-5


def test_probabilities_and_log_probabilities():
    X, y = multinomial_problem(n=400)
    model = LogisticRegression().fit(X, y)
    P = model.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1.0)
    np.testing.assert_allclose(np.log(P), model.predict_log_proba(X), rtol=1e-10)
    np.testing.assert_array_equal(model.classes_[P.argmax(1)], model.predict(X))
    assert model.decision_function(X).shape == (400, 4)
    Xb, yb = binary_problem(n=100)
    mb = LogisticRegression().fit(Xb, yb)
    assert mb.decision_function(Xb).shape == (100,)
    np.testing.assert_allclose(mb.predict_proba(Xb)[:, 1], 1 / (1 + np.exp(-mb.decision_function(Xb))))


def test_pipeline_grid_search_clone():
    X, y = binary_problem(n=300)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression()), {"logisticregression__C": [0.1, 1.0]}, cv=3
    ).fit(X, y)
    assert search.best_score_ > 0.6
    assert clone(LogisticRegression(C=3.0)).get_params()["C"] == 3.0


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "X, y, kwargs, error, match",
    [
        ([[np.nan], [1.0]], [0, 1], {}, ValueError, "Input X contains NaN"),
        ([[np.inf], [1.0]], [0, 1], {}, ValueError, "Input X contains infinity"),
        ([[1.0], [2.0]], [1, 1], {}, ValueError, "only one class"),
        ([[1.0], [2.0], [3.0]], [0, 1], {}, ValueError, "inconsistent numbers of samples"),
        ([["a"], ["b"]], [0, 1], {}, ValueError, "could not convert string to float"),
        ([[1.0], [2.0]], [0.5, 1.5], {}, ValueError, "Unknown label type"),
        ([[1.0], [2.0]], [0, 1], {"sample_weight": [-1.0, 1.0]}, ValueError, "Negative values"),
        ([[1.0], [2.0]], [0, 1], {"sample_weight": [1.0, 1.0, 1.0]}, ValueError, "sample_weight.shape"),
        ([[1.0], [2.0]], [0, 1], {"sample_weight": [0.0, 0.0]}, ValueError, "at least one non-zero"),
    ],
)
def test_bad_input_is_named(X, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        LogisticRegression().fit(X, y, **kwargs)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"C": 0.0}, "'C' parameter"),
        ({"C": -1.0}, "'C' parameter"),
        ({"solver": "magic"}, "'solver' parameter"),
        ({"penalty": "l3"}, "'penalty' parameter"),
        ({"max_iter": -1}, "'max_iter' parameter"),
        ({"dtype": "float16"}, "dtype must be"),
        ({"optimizer": "nope", "solver": "sgd"}, "unknown optimizer"),
    ],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises((InvalidParameterError, ValueError), match=match):
        LogisticRegression(**params).fit(*binary_problem(n=50))


def test_predict_checks():
    with pytest.raises(NotFittedError):
        LogisticRegression().predict([[1.0]])
    model = LogisticRegression().fit(*binary_problem(n=50, d=2))
    with pytest.raises(ValueError, match="X has 3 features, but LogisticRegression is expecting 2"):
        model.predict(np.zeros((1, 3)))


@CUDA
def test_cuda_fit_matches_cpu():
    X, y = multinomial_problem(n=2000)
    cpu = LogisticRegression(device="cpu").fit(X, y)
    gpu = LogisticRegression(device="cuda").fit(X, y)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-6)
    gpu_t = LogisticRegression(device="cuda").fit(torch.tensor(X, device="cuda"), y)
    np.testing.assert_allclose(gpu_t.predict_proba(torch.tensor(X, device="cuda")), cpu.predict_proba(X), rtol=1e-6)
    for solver in ["lbfgs", "sgd"]:
        LogisticRegression(device="cuda", solver=solver, max_iter=20).fit(X, y)


def test_cuda_requested_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        LogisticRegression(device="cuda").fit(*binary_problem(n=50))


@pytest.mark.parametrize(
    "y",
    [
        np.array([3, 1, 3, 7]),
        np.array([True, False, True]),
        np.array([True, True]),
        np.array([-128, 127, -5], dtype=np.int8),  # the offset range overflows int8
        np.array([2**63 + 5, 2**63 + 1], dtype=np.uint64),  # beyond int64
        np.array([10**9, 0, 10**9]),  # range too wide for a table: the sort path
        np.random.default_rng(0).integers(0, 10, 1000),
        np.array(["b", "a", "b"]),
        np.array([0.0, 1.0, 1.0]),
    ],
)
def test_encode_labels_matches_numpy_unique(y):
    from torchlogit._labels import encode_labels

    classes, idx = encode_labels(y)
    expected_classes, expected_idx = np.unique(y, return_inverse=True)
    assert classes.dtype == expected_classes.dtype
    np.testing.assert_array_equal(classes, expected_classes)
    np.testing.assert_array_equal(idx, expected_idx)


def test_encode_labels_rejects_continuous_targets_as_scikit_learn_does():
    from torchlogit._labels import encode_labels

    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        encode_labels(np.array([0.5, 1.5]))


def test_finite_values_whose_sum_overflows_are_accepted():
    """Finiteness is checked through one sum; a sum that overflows on finite data must not be an error."""
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32), [0, 0, 1, 1])
    big = np.full((4, 1), 3e38, dtype=np.float32)  # finite; their float32 sum is inf
    with np.errstate(over="ignore"):
        assert np.isinf(big.sum(dtype=np.float32))
    proba = model.predict_proba(big)
    assert proba.shape == (4, 2)
    bad = big.copy()
    bad[2, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        model.predict_proba(bad)


def test_partial_fit_continues_a_fitted_model():
    """scikit-learn's contract: partial_fit on a fitted model (by fit, or loaded) continues from its coef_."""
    X, y = binary_problem(n=200, d=3)
    model = LogisticRegression(solver="sgd", max_iter=5, random_state=0).fit(X, y)
    fitted = model.coef_.copy()
    model.set_params(learning_rate=1e-9)
    model.partial_fit(X, y)  # no classes needed: the model already has classes_
    np.testing.assert_allclose(model.coef_, fitted, rtol=1e-6)
    # a fit after partial_fit calls replaces the model; the next partial_fit starts from that fit
    model.set_params(learning_rate=0.01, max_iter=20)
    refit = model.fit(X, y).coef_.copy()
    model.set_params(learning_rate=1e-9)
    model.partial_fit(X, y)
    np.testing.assert_allclose(model.coef_, refit, rtol=1e-6)


def test_partial_fit_weighs_classes():
    """class_weight acts in partial_fit as in fit: each row's weight times its class's; 'balanced' is refused."""
    X, y = binary_problem(n=100, d=2)
    weighted = LogisticRegression(solver="sgd", class_weight={0: 0.25, 1: 2.0}, random_state=0)
    plain = LogisticRegression(solver="sgd", random_state=0)
    weighted.partial_fit(X, y, classes=[0, 1])
    plain.partial_fit(X, y, classes=[0, 1], sample_weight=np.where(y == 0, 0.25, 2.0))
    np.testing.assert_allclose(weighted.coef_, plain.coef_, rtol=1e-12)
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported for partial_fit"):
        LogisticRegression(solver="sgd", class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not in class_weight|not found in classes|not in classes"):
        LogisticRegression(solver="sgd", class_weight={7: 1.0}).partial_fit(X, y, classes=[0, 1])


def test_sgd_accepts_a_numpy_random_state():
    """random_state may be a numpy RandomState (scikit-learn's convention): equal states, equal fits."""
    X, y = binary_problem(n=100, d=2)
    for method in ("fit", "partial_fit"):
        coefs = []
        for _ in range(2):
            model = LogisticRegression(solver="sgd", max_iter=3, random_state=np.random.RandomState(3))
            getattr(model, method)(X, y, **({"classes": [0, 1]} if method == "partial_fit" else {}))
            coefs.append(model.coef_)
        np.testing.assert_array_equal(coefs[0], coefs[1])


def test_partial_fit_accepts_a_later_chunk_of_another_float_dtype():
    X, y = binary_problem(n=100, d=2)
    model = LogisticRegression(solver="sgd", random_state=0)
    model.partial_fit(X[:50].astype(np.float32), y[:50], classes=[0, 1])
    model.partial_fit(X[50:], y[50:])  # float64: computed in the model's float32
    assert model.coef_.dtype == np.float32 and np.isfinite(model.coef_).all()
