"""The fused numba kernels agree with the torch path they replace (float64 reference)."""

import numpy as np
import pytest
import torch

from torchlogit import LogisticRegression, _kernels
from torchlogit._fit import Standardizer
from torchlogit._loss import POINTWISE, LinearModelLoss

pytestmark = pytest.mark.skipif(not _kernels._kernels(), reason="numba is not installed: the torch path is used")


@pytest.fixture
def kernels_for_small_data(monkeypatch):
    """Small test data takes the kernel path too."""
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)


def _problem(n, d, scale, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(d, generator=g, dtype=dtype) * scale / d**0.5
    y = (torch.rand(n, generator=g) < 0.5).to(dtype)
    s = (torch.rand(n, generator=g) / n).to(dtype)  # unequal weights
    return X, w, y, s


# relative accuracy asked of the objective and of the gradient, per dtype
TOLERANCE = {torch.float32: (1e-6, 1e-5), torch.float64: (1e-13, 1e-12)}  # |z| ~ 300: z itself rounds at ~1e-14


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, d, scale", [(5000, 7, 1.0), (4099, 100, 5.0), (300, 3, 300.0), (10_000, 1, 0.0)])
def test_binary_kernel_matches_float64_torch(n, d, scale, dtype):
    """Logits up to |z| ~ 1e3 (exp underflows), d not a multiple of the unrolling, ragged tiles."""
    X, w, y, s = _problem(n, d, scale, dtype=dtype)
    b = 0.25
    f, g = _kernels.binary_loss_gradient(X, w, b, y, s)
    Xd, sd, yd = X.double(), s.double(), y.double()
    z = Xd @ w.double() + b
    f_ref = (torch.nn.functional.softplus(z) - yd * z) @ sd
    r = sd * (torch.sigmoid(z) - yd)
    g_ref = torch.cat([Xd.T @ r, r.sum()[None]])
    f_tol, g_tol = TOLERANCE[dtype]
    assert abs(f - float(f_ref)) <= f_tol * abs(float(f_ref))
    assert float((g - g_ref).abs().max()) <= g_tol * float(g_ref.abs().max()) + 1e-15
    assert g.dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binary_kernel_is_exact_where_loss_and_residual_are_tiny(dtype):
    """Each row alone: z = 0, +-1e-3, +-20, +-40, +-90, +-700 and y = 0, 1.

    Loss softplus(-m) and residual -+sigmoid(-m) with margin m = +-z are compared
    with their exact float64 values: for a well-fitted row (m >> 0) both are
    tiny, where forms like softplus(z) - y z cancel.
    """
    rtol = 1e-6 if dtype == torch.float32 else 1e-13  # exp(-|z|) carries the rounding of |z| log2(e): ~|z| eps
    for z in (0.0, 1e-3, -1e-3, 20.0, -20.0, 40.0, -40.0, 90.0, -90.0, 700.0, -700.0):
        if dtype == torch.float32 and abs(z) == 700.0:
            continue  # beyond float32's range
        for label in (0.0, 1.0):
            X = torch.tensor([[z]], dtype=dtype)
            one = torch.ones(1, dtype=dtype)
            f, g = _kernels.binary_loss_gradient(X, one, 0.0, torch.tensor([label], dtype=dtype), one)
            margin = z if label == 1.0 else -z
            loss = np.logaddexp(0.0, -margin) if margin < 30 else np.exp(-margin)  # log1p(e) = e to 1e-13 there
            residual = (1.0 if label == 0.0 else -1.0) / (1.0 + np.exp(margin))
            if dtype == torch.float32 and margin > 87:  # exp(-margin) below float32's smallest normal
                assert 0 <= f <= 2e-38 and abs(g[1].item()) <= 2e-38
                continue
            np.testing.assert_allclose(f, loss, rtol=rtol)
            np.testing.assert_allclose(g[1].item(), residual, rtol=rtol)


def test_binary_kernel_does_not_depend_on_the_thread_count():
    import numba

    X, w, y, s = _problem(50_000, 20, 2.0)
    results = []
    for threads in (1, 2):
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            if threads <= numba.config.NUMBA_NUM_THREADS:
                results.append(_kernels.binary_loss_gradient(X, w, 0.1, y, s))
        finally:
            torch.set_num_threads(torch_threads)
    for f, g in results[1:]:
        assert f == results[0][0] and torch.equal(g, results[0][1])


@pytest.mark.parametrize("n, p", [(1, 1), (63, 5), (4099, 21), (20_000, 7), (3000, 66)])
def test_weighted_gram_matches_torch_and_is_symmetric(n, p):
    """A^T diag(h) A: ragged tiles and chunks, p not a multiple of the 4 x 4 blocks, one row."""
    g = torch.Generator().manual_seed(n + p)
    A = torch.randn(n, p, generator=g, dtype=torch.float64) * torch.logspace(-3, 3, p, dtype=torch.float64)
    h = torch.rand(n, generator=g, dtype=torch.float64)
    H = _kernels.weighted_gram(A, h)
    assert torch.equal(H, H.T)
    scale = (A.abs() * h.sqrt()[:, None]).T.square().sum(1).sqrt()  # |H_jk| <= scale_j scale_k (Cauchy-Schwarz)
    err = (H - (A * h[:, None]).T @ A).abs() / (scale[:, None] * scale)
    assert float(err.max()) < 1e-14


def test_weighted_gram_does_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(0)
    A, h = (
        torch.randn(50_000, 21, generator=g, dtype=torch.float64),
        torch.rand(50_000, generator=g, dtype=torch.float64),
    )
    results = _on_one_and_two_threads(lambda: _kernels.weighted_gram(A, h))
    assert all(torch.equal(H, results[0]) for H in results[1:])


def _on_one_and_two_threads(call):
    """call()'s results with torch (and so numba, which follows it) on one thread, then two where numba has them."""
    import numba

    results = []
    torch_threads = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            if threads <= numba.config.NUMBA_NUM_THREADS:
                results.append(call())
        finally:
            torch.set_num_threads(torch_threads)
    return results


@pytest.mark.parametrize("n, p, scale", [(1, 1, 1.0), (4099, 21, 3.0), (700, 66, 30.0)])
def test_design_newton_terms_match_torch(n, p, scale):
    """f, g and H of a float64 design from one kernel: ragged tiles, p not a multiple of 4, logits up to ~1e2."""
    g = torch.Generator().manual_seed(n + p)
    A = torch.randn(n, p, generator=g, dtype=torch.float64)
    phi = torch.randn(p, generator=g, dtype=torch.float64) * scale / p**0.5
    y = (torch.rand(n, generator=g) < 0.5).double()
    s = torch.rand(n, generator=g, dtype=torch.float64) / n
    f, grad, H = _kernels.design_newton_terms(A, phi, y, s)
    z = A @ phi
    prob = torch.sigmoid(z)
    softplus = torch.logaddexp(torch.zeros_like(z), z)  # (torch's softplus returns z itself beyond z = 20)
    assert f == pytest.approx(float((softplus - y * z) @ s), rel=1e-13)
    torch.testing.assert_close(grad, A.T @ (s * (prob - y)), rtol=1e-12, atol=1e-16)
    H_ref = (A * (s * prob * (1 - prob))[:, None]).T @ A
    assert torch.equal(H, H.T)
    torch.testing.assert_close(H, H_ref, rtol=1e-12, atol=1e-16)


def test_design_newton_terms_do_not_depend_on_the_thread_count():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(50_000, 21, generator=g, dtype=torch.float64)
    phi, y = torch.randn(21, generator=g, dtype=torch.float64), (torch.rand(50_000, generator=g) < 0.3).double()
    s = torch.full((50_000,), 1 / 50_000, dtype=torch.float64)
    results = _on_one_and_two_threads(lambda: _kernels.design_newton_terms(A, phi, y, s))
    for f, grad, H in results[1:]:
        assert f == results[0][0] and torch.equal(grad, results[0][1]) and torch.equal(H, results[0][2])


def test_moments_kernel_matches_torch():
    X, _, _, s = _problem(3000, 9, 1.0)
    X = X * 3 + 7
    c = X[:5].mean(0)
    m1, m2 = _kernels.shifted_moments(X, s, c)
    D = X.double() - c.double()
    np.testing.assert_allclose(m1.numpy(), (s.double() @ D).numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(m2.numpy(), (s.double() @ (D * D)).numpy(), rtol=1e-5)


def test_loss_gradient_takes_the_kernel_and_agrees_with_torch(monkeypatch):
    X, _, y, s = _problem(20_000, 30, 1.0)
    loss = LinearModelLoss(POINTWISE["binary"], 30, 1, True)
    theta = torch.randn(31) * 0.1
    assert _kernels.ready()
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    calls = []
    real = _kernels.binary_loss_gradient
    monkeypatch.setattr(_kernels, "binary_loss_gradient", lambda *a: calls.append(1) or real(*a))
    f_k, g_k = loss.loss_gradient(theta, X, y, s)
    assert calls
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 1 << 62)
    f_t, g_t = loss.loss_gradient(theta, X, y, s)
    assert len(calls) == 1
    np.testing.assert_allclose(float(f_k), float(f_t), rtol=1e-6)
    np.testing.assert_allclose(g_k.numpy(), g_t.numpy(), rtol=1e-4, atol=1e-7)


def test_fit_with_kernels_reaches_the_torch_optimum(monkeypatch):
    X, _, _, _ = _problem(20_000, 12, 1.0, seed=3)
    beta = torch.linspace(-1, 1, 12)
    y = (torch.rand(20_000, generator=torch.Generator().manual_seed(4)) < torch.sigmoid(X @ beta - 0.3)).long()
    X = X * torch.logspace(-2, 2, 12) + 1.0  # unscaled, non-centred columns: the moments matter
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    fused = LogisticRegression(C=0.5, tol=1e-6).fit(X.numpy(), y.numpy())
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 1 << 62)
    plain = LogisticRegression(C=0.5, tol=1e-6).fit(X.numpy(), y.numpy())
    np.testing.assert_allclose(fused.coef_, plain.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fused.intercept_, plain.intercept_, rtol=1e-4, atol=1e-6)
    assert fused.convergence_.converged
    assert fused.objective_ <= plain.objective_ * (1 + 1e-7)


def test_standardizer_moments_with_and_without_the_kernel(monkeypatch):
    X, _, _, s = _problem(10_000, 5, 1.0)
    X = X * torch.tensor([1e-3, 1.0, 1e3, 0.0, 2.0]) + torch.tensor([5.0, -3.0, 1e4, 7.0, 0.0])
    s = s / s.sum()
    out = {}
    for name, threshold in (("kernel", 0), ("torch", 1 << 62)):
        monkeypatch.setattr(_kernels, "MIN_ELEMENTS", threshold)
        out[name] = Standardizer.from_data(X, s, 1, True)
    Xd, sd = X.double(), s.double()
    mu = sd @ Xd
    sigma = (sd @ (Xd - mu) ** 2).sqrt()
    for std in out.values():
        np.testing.assert_allclose(std.mu.numpy(), mu.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std.sigma[[0, 1, 2, 4]].numpy(), sigma[[0, 1, 2, 4]].numpy(), rtol=1e-4)
        assert std.constant.tolist() == [False, False, False, True, False]


def test_fortran_ordered_or_half_precision_data_stay_on_torch(monkeypatch):
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    X = torch.randn(100, 4)
    assert _kernels.applies(X) and _kernels.applies(X.double())
    assert not _kernels.applies(X.T.contiguous().T)  # F-ordered view
    assert not _kernels.applies(X.half())


def test_auto_weighs_a_fused_pass_by_its_own_measured_cost(monkeypatch):
    """A pass through the one-read kernel has its own measured rate (tests/test_costs.py for the rule)."""
    from torchlogit import _costs

    X, _, y, _ = _problem(3000, 5, 1.0)
    seen = []

    def measured(dtype, device, fused=False):  # a machine where the kernel's pass is 100x cheaper than torch's
        seen.append(fused)
        return _costs.Rates(_costs.Line(0.0, 1e-9 if fused else 1e-7), _costs.Line(0.0, 1e-8))

    monkeypatch.setattr(_costs, "rates", measured)
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    assert LogisticRegression().fit(X.numpy(), y.numpy()).solver_ == "lbfgs" and seen[-1] is True
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 1 << 62)
    assert LogisticRegression().fit(X.numpy(), y.numpy()).solver_ == "newton" and seen[-1] is False


def test_warm_up_compiles_both_dtypes():
    from torchlogit import _numba_kernels

    assert _kernels.warm_up()
    kinds = {str(sig[0].dtype) for sig in _numba_kernels.binary_loss_gradient.signatures}
    assert {"float32", "float64"} <= kinds


@pytest.mark.parametrize("threshold", [0, 1 << 62], ids=["kernel", "torch"])
def test_standardizer_recentres_when_the_shift_rows_are_atypical(monkeypatch, threshold):
    """The shift comes from 1000 evenly spaced rows; here exactly those rows are outliers.

    One pass about that shift cancels catastrophically (sigma 2% off with the
    kernel, 95% with torch's float32 products); the second pass about mu keeps
    sigma within 1e-3.
    """
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", threshold)
    n = 2_000_000
    X = 5 + 1e-3 * torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    X[torch.linspace(0, n - 1, 1000).round().long()] = 1e3
    std = Standardizer.from_data(X, torch.full((n,), 1.0 / n), 1, True)
    sigma = X.double().std(0, correction=0)
    np.testing.assert_allclose(std.sigma.numpy(), sigma.numpy(), rtol=1e-3)
    assert not std.constant.any()


def test_a_cold_kernel_cache_is_filled_elsewhere_while_fits_go_on(monkeypatch):
    """No fit waits for numba's compiler: with a cold cache the compile runs in another process, passes go
    to torch, and the kernels are loaded once the cache is filled."""
    import threading
    import time

    monkeypatch.setitem(_kernels._warming, "done", False)
    monkeypatch.setitem(_kernels._warming, "thread", None)
    cache = {"warm": False}
    compiled = threading.Event()

    finish = threading.Event()

    def compile_elsewhere():  # stands for the separate process filling the cache, kernel by kernel
        time.sleep(0.3)
        cache["warm"] = True  # the first kernels' files exist; the others are still compiling
        compiled.set()
        finish.wait(5)

    monkeypatch.setattr(_kernels, "_cache_is_warm", lambda: cache["warm"])
    monkeypatch.setattr(_kernels, "_compile_elsewhere", compile_elsewhere)
    X = torch.zeros(_kernels.MIN_ELEMENTS // 4, 4)
    start = time.perf_counter()
    assert not _kernels.applies(X) and not _kernels.ready()
    assert time.perf_counter() - start < 0.2  # returned at once
    assert compiled.wait(5)
    assert not _kernels.ready()  # the compile has not ended: nothing is compiled a second time here
    finish.set()
    _kernels._warming["thread"].join(5)
    assert _kernels.ready() and _kernels.applies(X)  # the cache is warm now: loaded, and used


def test_a_warm_kernel_cache_is_used_from_the_first_pass(monkeypatch):
    monkeypatch.setitem(_kernels._warming, "done", False)
    monkeypatch.setitem(_kernels._warming, "thread", None)
    monkeypatch.setattr(_kernels, "_cache_is_warm", lambda: True)
    monkeypatch.setattr(_kernels, "_compile_elsewhere", lambda: pytest.fail("compiled despite a warm cache"))
    assert _kernels.ready()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [4, 7, 10])  # classes one at a time; five, then a pair; two blocks of five
def test_the_softmax_kernel_agrees_with_torch(dtype, fit_intercept, k, monkeypatch):
    """One read of X for the multinomial pass: f and its gradient as torch computes them (float64 references)."""
    from torchlogit._loss import MultinomialCrossEntropy

    g = torch.Generator().manual_seed(3)
    n, d = 3001, 37  # n not a multiple of the 64-row tile nor of 4
    X = torch.randn(n, d, generator=g, dtype=dtype) * 3
    y = torch.randint(0, k, (n,), generator=g)
    s = (torch.rand(n, generator=g) / n).to(dtype)
    loss = LinearModelLoss(MultinomialCrossEntropy, d, k, fit_intercept)
    theta = (torch.randn(loss.n_params, generator=g, dtype=torch.float64) * 0.5).to(dtype)
    f_ref, g_ref = loss.loss_gradient(theta.double(), X.double(), y, s.double())  # torch, float64
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    assert loss.reads_once(X)  # the test suite's fixed choices take the kernel wherever it applies
    calls, real = [], _kernels.multinomial_loss_gradient
    monkeypatch.setattr(_kernels, "multinomial_loss_gradient", lambda *a: calls.append(1) or real(*a))
    f_k, g_k = loss.loss_gradient(theta, X, y, s)
    assert calls and g_k.dtype == torch.float64 and g_k.shape == g_ref.shape
    rtol_f, rtol_g = TOLERANCE[dtype]
    assert float(f_k) == pytest.approx(float(f_ref), rel=rtol_f)
    assert float((g_k - g_ref).abs().max()) <= rtol_g * float(g_ref.abs().max())


def test_the_softmax_kernel_holds_where_logits_differ_by_more_than_exp_can_hold(monkeypatch):
    """Logits ~ +-1000 apart (exp(z - max) below float64's smallest normal, the kernel's 2^t clamps at 2^-1022):
    f and the gradient still equal torch's float64 logsumexp and softmax."""
    from torchlogit._loss import MultinomialCrossEntropy

    g = torch.Generator().manual_seed(5)
    n, d, k = 1000, 9, 10
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    s = torch.full((n,), 1.0 / n, dtype=torch.float64)
    loss = LinearModelLoss(MultinomialCrossEntropy, d, k, True)
    theta = torch.randn(loss.n_params, generator=g, dtype=torch.float64) * 300
    f_ref, g_ref = loss.loss_gradient(theta, X, y, s)
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    calls, real = [], _kernels.multinomial_loss_gradient
    monkeypatch.setattr(_kernels, "multinomial_loss_gradient", lambda *a: calls.append(1) or real(*a))
    f_k, g_k = loss.loss_gradient(theta, X, y, s)
    assert calls and float(f_ref) > 100  # most rows far from their class: the large-logit regime
    assert float(f_k) == pytest.approx(float(f_ref), rel=1e-13)
    assert float((g_k - g_ref).abs().max()) <= 1e-12 * float(g_ref.abs().max())


def test_a_multinomial_fit_through_the_kernel_reaches_the_torch_optimum(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 12)).astype(np.float32)
    y = (X[:, :3] @ rng.normal(size=(3, 3)) + rng.gumbel(size=(4000, 3))).argmax(1)
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 1 << 62)
    ref = LogisticRegression(solver="lbfgs", tol=1e-8).fit(X, y)
    monkeypatch.setattr(_kernels, "MIN_ELEMENTS", 0)
    calls, real = [], _kernels.multinomial_loss_gradient
    monkeypatch.setattr(_kernels, "multinomial_loss_gradient", lambda *a: calls.append(1) or real(*a))
    fused = LogisticRegression(solver="lbfgs", tol=1e-8).fit(X, y)
    assert calls
    np.testing.assert_allclose(fused.coef_, ref.coef_, rtol=1e-4, atol=1e-5)
    assert fused.convergence_.objective == pytest.approx(ref.convergence_.objective, rel=1e-7)


@pytest.mark.parametrize("n", [1, 4096, 4097, 8193, 60_000, 200_000, 1_048_577, 10_000_000])
def test_rows_are_split_into_a_power_of_two_of_chunks_none_empty(n):
    """Threads in any power-of-two number share the chunks equally; every chunk has rows; 2,048-4,096 rows each
    up to 256 chunks."""
    rows, chunks = _kernels._chunks(n)
    assert chunks & (chunks - 1) == 0 and chunks <= 256
    assert (chunks - 1) * rows < n <= chunks * rows
    assert chunks == 256 or n <= 4096 or 2048 < rows <= 4096


def test_the_softmax_kernel_gives_the_same_bits_with_its_tiles_touched_first():
    g = torch.Generator().manual_seed(4)
    n, d, k = 3001, 37, 7
    X = torch.randn(n, d, generator=g)
    W, b = 0.3 * torch.randn(k, d, generator=g), torch.randn(k, generator=g)
    y, s = torch.randint(0, k, (n,), generator=g), torch.rand(n, generator=g) / n
    plain = _kernels.multinomial_loss_gradient(X, W, b, y, s, False)
    touched = _kernels.multinomial_loss_gradient(X, W, b, y, s, True)
    assert plain[0] == touched[0] and all(torch.equal(u, v) for u, v in zip(plain[1:], touched[1:]))


def test_whether_touching_pays_is_measured_once_on_the_pass_and_kept(monkeypatch, tmp_path):
    """Outside the test suite's fixed choices the softmax kernel is timed both ways on its own arguments once
    per machine and shape; the answer is kept in the cache file and reused without timing."""
    import json

    from torchlogit import _measured

    monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_measured, "fixed_choices", lambda: False)
    monkeypatch.setattr(_measured, "_fastest", {})
    g = torch.Generator().manual_seed(4)
    n, d, k = 20_000, 30, 5
    X, W, b = torch.randn(n, d, generator=g), 0.1 * torch.randn(k, d, generator=g), torch.zeros(k)
    y, s = torch.randint(0, k, (n,), generator=g), torch.full((n,), 1.0 / n)
    first = _kernels.multinomial_loss_gradient(X, W, b, y, s)
    (entry,) = [v for key, v in json.loads((tmp_path / "costs.json").read_text()).items() if "touched first?" in key]
    assert set(entry) == {"touched first", "as it comes"} and all(t > 0 for t in entry.values())
    calls = []
    monkeypatch.setattr(_measured, "seconds", lambda *a, **kw: calls.append(1) or 1.0)
    again = _kernels.multinomial_loss_gradient(X, W, b, y, s)
    assert not calls and first[0] == again[0] and torch.equal(first[1], again[1])
