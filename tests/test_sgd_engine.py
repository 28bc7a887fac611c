"""One sgd engine (solvers/sgd.py) under fit, partial_fit and fit_stream, and its proximal step for L1.

The three callers draw the same batches from the same seeded generator and
take the same steps, so where their contracts coincide their coefficients are
equal bit for bit:

- one epoch of ``fit`` = one ``partial_fit`` call on the same rows (with a
  penalty; ``partial_fit``'s penalty counts the rows seen, so later calls aim at
  ``C * k``: several epochs coincide only without a penalty);
- ``fit`` = ``fit_stream`` on the same float32 rows in one Parquet row group
  read into one shuffle buffer (a single fragment's order ``randperm(1)``
  draws nothing from the generator; with several fragments or buffers the
  stream shuffles within buffers and cannot match an in-memory permutation).

prox-SGD is approximate: it is tested against ``solver='prox-newton'``'s exact
L1 optimum with the tolerances measured below, and, with the whole data as
one batch (proximal gradient descent, no noise), to the optimum itself.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer

from torchlogit import LogisticRegression
from torchlogit.solvers import choose
from torchlogit.stream import fit_stream

SGD = dict(solver="sgd", batch_size=16, learning_rate=0.05, random_state=3, tol=None)
# fit_stream has no l1_ratio: its penalty='l1' meets the default l1_ratio=0 and warns as scikit-learn does
STREAM_L1 = pytest.mark.filterwarnings("ignore:Inconsistent values:UserWarning")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def problem(kind, n=300, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    if kind == "binary":
        y = (X[:, 0] - X[:, 1] + rng.logistic(size=n) > 0).astype(np.int64)
    else:
        y = np.argmax(X[:, :3] + rng.gumbel(size=(n, 3)), axis=1)
    return X, y


def as_fit_reports(model, l1):
    """A partial_fit model's coefficients as fit reports a multinomial one: intercepts summing to zero over classes,
    and (without an L1 part, whose zeros the shift would move) coefficients too."""
    if model.coef_.shape[0] == 1:
        return model.coef_, model.intercept_
    W, b = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
    W = W if l1 else W - W.mean(0)
    return W.astype(np.float32), (b - b.mean()).astype(np.float32)


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("l1_ratio", [0.0, 0.5, 1.0])
def test_one_epoch_of_fit_is_one_partial_fit_call(kind, l1_ratio):
    X, y = problem(kind)
    params = dict(SGD, C=0.02, l1_ratio=l1_ratio)
    fitted = LogisticRegression(max_iter=1, **params).fit(X, y)
    partial = LogisticRegression(**params).partial_fit(X, y, classes=np.unique(y))
    coef, intercept = as_fit_reports(partial, l1_ratio > 0)
    np.testing.assert_array_equal(fitted.coef_, coef)  # bit for bit
    np.testing.assert_array_equal(fitted.intercept_, intercept)
    assert fitted.loss_curve_ == partial.loss_curve_
    if l1_ratio:
        assert (fitted.coef_ == 0).any()  # the proximal step leaves exact zeros


def test_epochs_of_fit_are_partial_fit_calls_without_a_penalty():
    X, y = problem("binary")
    fitted = LogisticRegression(penalty=None, max_iter=4, **SGD).fit(X, y)
    partial = LogisticRegression(penalty=None, **SGD)
    for _ in range(4):
        partial.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_array_equal(fitted.coef_, partial.coef_)
    np.testing.assert_array_equal(fitted.intercept_, partial.intercept_)
    assert fitted.loss_curve_ == partial.loss_curve_


def write_parquet(path, X, y):
    table = pa.table({**{f"x{j}": X[:, j] for j in range(X.shape[1])}, "label": y})
    pq.write_table(table, path, row_group_size=len(X))  # one fragment
    return path


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("penalty", ["l2", "l1"])
@STREAM_L1
def test_fit_and_fit_stream_take_the_same_steps(tmp_path, kind, penalty):
    X, y = problem(kind)
    path = write_parquet(tmp_path / "d.parquet", X, y)
    common = dict(batch_size=16, learning_rate=0.05, random_state=3, C=0.02)
    streamed = fit_stream(path, "label", solver="sgd", epochs=3, penalty=penalty, batch_rows=64, **common)
    fitted = LogisticRegression(solver="sgd", max_iter=3, tol=None, l1_ratio=float(penalty == "l1"), **common)
    fitted.fit(X, y)
    np.testing.assert_array_equal(streamed.coef_, fitted.coef_)  # bit for bit
    np.testing.assert_array_equal(streamed.intercept_, fitted.intercept_)
    np.testing.assert_allclose(streamed.loss_curve_, fitted.loss_curve_, rtol=1e-12)
    if penalty == "l1":
        assert (streamed.coef_ == 0).any()


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_prox_sgd_on_one_batch_is_proximal_gradient_and_reaches_the_exact_optimum(cancer, l1_ratio):
    """batch_size = n: no sampling noise, the iteration is ISTA, which converges to the exact L1 / EN optimum."""
    X, y = cancer
    exact = LogisticRegression(l1_ratio=l1_ratio, C=0.05, solver="prox-newton", tol=1e-10).fit(X, y)
    ista = LogisticRegression(
        l1_ratio=l1_ratio, C=0.05, solver="sgd", batch_size=len(X), learning_rate=0.25, max_iter=12000, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(ista.coef_, exact.coef_, atol=1e-5)
    np.testing.assert_allclose(ista.intercept_, exact.intercept_, atol=1e-5)
    np.testing.assert_array_equal(ista.coef_ == 0, exact.coef_ == 0)  # the same support, exact zeros
    assert ista.convergence_.duality_gap < 1e-6  # measured: 1.2e-7 (elastic net), objective 0.28


def test_minibatch_prox_sgd_is_near_the_exact_l1_optimum(cancer):
    """Mini-batches of 64, 1000 epochs at learning rate 0.02 (measured: objective 0.36 % above the optimum,
    duality gap 3.6e-3, coefficients 49 % off in norm on these collinear features, 11 of 25 zeros exact)."""
    X, y = cancer
    exact = LogisticRegression(l1_ratio=1.0, C=0.05, solver="prox-newton", tol=1e-10).fit(X, y)
    sgd = LogisticRegression(
        l1_ratio=1.0, C=0.05, solver="sgd", batch_size=64, learning_rate=0.02, max_iter=1000, random_state=0
    ).fit(X, y)
    assert sgd.objective_ - exact.objective_ < 1e-2 * exact.objective_
    assert sgd.convergence_.duality_gap < 1e-2
    zero = exact.coef_[0] == 0
    assert (sgd.coef_[0][~zero] != 0).all()  # the exact support is found
    assert (sgd.coef_[0][zero] == 0).sum() >= 0.4 * zero.sum()  # many of the exact zeros are exact zeros
    assert (sgd.coef_ == 0).sum() > 0 and sgd.intercept_[0] != 0  # the intercept is never thresholded


def test_annealed_prox_sgd_finds_most_exact_zeros(cancer):
    """A falling learning rate (warm_start between fits) leaves less noise: more of the exact zeros are exact."""
    X, y = cancer
    exact = LogisticRegression(l1_ratio=1.0, C=0.05, solver="prox-newton", tol=1e-10).fit(X, y)
    model = LogisticRegression(l1_ratio=1.0, C=0.05, solver="sgd", batch_size=32, random_state=0, warm_start=True)
    for lr in (0.05, 0.01, 0.002):
        model.set_params(learning_rate=lr, max_iter=300).fit(X, y)
    zero = exact.coef_[0] == 0
    assert (model.coef_[0][zero] == 0).sum() > zero.sum() / 2  # measured: 14 of 25
    assert model.objective_ - exact.objective_ < 5e-3 * exact.objective_  # measured: 0.20 %


@STREAM_L1
def test_sgd_is_deterministic_given_random_state(tmp_path):
    X, y = problem("binary")
    path = write_parquet(tmp_path / "d.parquet", X, y)

    def fits(seed):
        params = dict(SGD, random_state=seed, l1_ratio=1.0, C=0.2)
        a = LogisticRegression(max_iter=3, **params).fit(X, y).coef_
        b = LogisticRegression(**params).partial_fit(X, y, classes=[0, 1]).coef_
        c = fit_stream(path, "label", solver="sgd", penalty="l1", C=0.2, epochs=2, random_state=seed).coef_
        return a, b, c

    first, again, other = fits(1), fits(1), fits(2)
    for x, z, w in zip(first, again, other):
        np.testing.assert_array_equal(x, z)
        assert not np.array_equal(x, w)


@STREAM_L1
def test_an_l1_part_with_an_adaptive_optimizer_is_refused_in_one_line(tmp_path):
    X, y = problem("binary", n=50)
    match = "needs optimizer='sgd'"
    with pytest.raises(ValueError, match=match) as info:
        LogisticRegression(solver="sgd", optimizer="adam", l1_ratio=1.0).fit(X, y)
    assert "\n" not in str(info.value)
    model = LogisticRegression(solver="sgd", optimizer="adam", l1_ratio=0.5)
    with pytest.raises(ValueError, match=match):
        model.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=match):
        fit_stream(write_parquet(tmp_path / "d.parquet", X, y), "label", solver="sgd", optimizer="adam", penalty="l1")
    # L2 with adam is unchanged; torch.optim.SGD without momentum takes the proximal step as plain sgd does
    LogisticRegression(solver="sgd", optimizer="adam", max_iter=2).fit(X, y)
    plain = LogisticRegression(solver="sgd", l1_ratio=1.0, max_iter=2, random_state=0).fit(X, y)
    torch_sgd = LogisticRegression(solver="sgd", optimizer="SGD", l1_ratio=1.0, max_iter=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(plain.coef_, torch_sgd.coef_)


def test_sgd_is_a_prox_solver_in_the_registry():
    assert choose("sgd", 10, penalty_kind="l1") == "sgd"
    assert choose("sgd", 10, penalty_kind="elasticnet") == "sgd"


@STREAM_L1
def test_l1_stream_keeps_an_uncentred_multinomial_optimum(tmp_path):
    """As fit does for an L1 part: the softmax's shift would move the exact zeros, so it is not applied."""
    X, y = problem("multinomial")
    model = fit_stream(write_parquet(tmp_path / "d.parquet", X, y), "label", solver="sgd", penalty="l1", C=0.05)
    assert (model.coef_ == 0).any()
    assert (np.argmax(X @ model.coef_.T + model.intercept_, axis=1) == y).mean() > 0.5


@STREAM_L1
def test_l1_stream_resumes_bit_for_bit(tmp_path, monkeypatch):
    """A run stopped mid-epoch (an error at one optimizer step, the checkpoint of the step before on disk)."""
    import torchlogit.stream as stream

    X, y = problem("binary", n=500)
    path = write_parquet(tmp_path / "d.parquet", X, y)
    kwargs = dict(solver="sgd", penalty="l1", C=0.2, epochs=3, batch_size=16, random_state=7, buffer_rows=200)
    reference = fit_stream(path, "label", **kwargs)
    real, count = stream.make_optimizer, [0]

    def failing(*args):
        opt = real(*args)
        step = opt.step

        def counted():
            count[0] += 1
            if count[0] == 50:
                raise RuntimeError("stopped")
            step()

        opt.step = counted
        return opt

    monkeypatch.setattr(stream, "make_optimizer", failing)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="stopped"):
        fit_stream(path, "label", checkpoint=ckpt, checkpoint_every=0.0, **kwargs)
    monkeypatch.setattr(stream, "make_optimizer", real)
    resumed = fit_stream(path, "label", resume=ckpt, **kwargs)
    np.testing.assert_array_equal(resumed.coef_, reference.coef_)
    np.testing.assert_array_equal(resumed.intercept_, reference.intercept_)
    assert resumed.loss_curve_ == reference.loss_curve_
