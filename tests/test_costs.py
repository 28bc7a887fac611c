"""solver='auto' from costs measured on the machine (torchlogit._costs), never from a constant tuned on one CPU."""

import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from torchlogit import LogisticRegression, _costs, _measured
from torchlogit._costs import Line, Rates
from torchlogit.solvers import LBFGS_ITERATIONS, NEWTON_ITERATIONS, choose


def test_the_rule_weighs_iterations_times_their_cost():
    assert choose("auto", 50, lambda: (1.0, LBFGS_ITERATIONS / NEWTON_ITERATIONS)) == "newton"  # a tie: newton
    assert choose("auto", 50, lambda: (1.0, 1.01 * LBFGS_ITERATIONS / NEWTON_ITERATIONS)) == "lbfgs"
    assert choose("auto", 50) == "lbfgs"  # costs unknown
    assert choose("auto", 1001, lambda: (1.0, 0.0)) == "lbfgs"  # above the memory bound, whatever the costs
    called = []
    assert choose("lbfgs", 50, lambda: called.append(1)) == "lbfgs" and not called  # named: nothing measured
    assert choose("auto", 50, lambda: called.append(1), penalty_kind="l1") == "prox-newton" and not called


def _machine(monkeypatch, lbfgs, newton):
    """This process's measured rates replaced by the given Lines, for every dtype and device."""
    monkeypatch.setattr(_costs, "rates", lambda *a, **k: Rates(lbfgs, newton))


def test_estimator_follows_the_measured_costs(monkeypatch):
    X, y = load_digits(return_X_y=True)  # 1797 x 64, 10 classes: p = 650, the Hessian ~ n p^2 (1 + 1/k)
    X = X / 16.0
    # a GEMM 100x cheaper per unit than a pass: digits still goes to L-BFGS (its Hessian is p ~ 650 passes)
    _machine(monkeypatch, Line(1e-4, 1e-9), Line(1e-4, 1e-11))
    assert LogisticRegression(max_iter=300).fit(X, y).solver_ == "lbfgs"
    # a machine where per-iteration overheads dominate small problems: 200 x 5 binary goes to Newton
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(200, 5))
    ys = (Xs[:, 0] + rng.logistic(size=200) > 0).astype(int)
    assert LogisticRegression().fit(Xs, ys).solver_ == "newton"
    # and where a Newton iteration is costlier than LBFGS_ITERATIONS / NEWTON_ITERATIONS L-BFGS ones: L-BFGS
    _machine(monkeypatch, Line(1e-4, 1e-9), Line(1e-3, 1e-9))
    assert LogisticRegression().fit(Xs, ys).solver_ == "lbfgs"


def test_estimate_counts_the_work_of_each_iteration(monkeypatch):
    from torchlogit._loss import POINTWISE, LinearModelLoss

    _machine(monkeypatch, Line(0.0, 1.0), Line(0.0, 1.0))
    binary = LinearModelLoss(POINTWISE["binary"], 9, 1, True)
    X = torch.zeros(100, 9)
    assert _costs.estimate(binary, X) == (100 * 10, 100 * 10 * 10 + 10**3 / 3)
    multi = LinearModelLoss(POINTWISE["multinomial"], 9, 4, True)  # p = 40: K class blocks and one (K d1)^2 GEMM
    assert _costs.estimate(multi, X) == (100 * 40, 100 * 40 * 40 * 1.25 + 40**3 / 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_probe_measures_positive_costs_and_keeps_them_per_machine(tmp_path, monkeypatch, dtype):
    monkeypatch.delenv("TORCHLOGIT_SOLVER_COSTS")  # the suite's fixed table (conftest): here, the real probe
    monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path))
    _costs.rates.cache_clear()
    try:
        r = _costs.rates(dtype, "cpu")
        for line in (r.lbfgs, r.newton):
            assert math.isfinite(line.fixed) and line.fixed >= 0 and 0 < line.per_unit < 1e-3
        stored = json.loads((tmp_path / "costs.json").read_text())
        (key,) = stored
        assert str(dtype) in key and "torch " + torch.__version__ in key
        # a later process reads the file instead of probing again: the same rates, so the same choices
        _costs.rates.cache_clear()
        monkeypatch.setattr(_costs, "measure", lambda *a: pytest.fail("probed again despite the cache file"))
        assert _costs.rates(dtype, "cpu") == r
    finally:
        _costs.rates.cache_clear()


def test_a_damaged_or_unwritable_cache_only_means_measuring_again(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHLOGIT_SOLVER_COSTS")
    _costs.rates.cache_clear()
    monkeypatch.setattr(_costs, "measure", lambda *a: Rates(Line(1.0, 2.0), Line(3.0, 4.0)))
    try:
        for text in ("not json", "[1, 2]", '{"x": 1}'):
            (tmp_path / "costs.json").write_text(text)
            monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path))
            _costs.rates.cache_clear()
            assert _costs.rates(torch.float64, "cpu") == Rates(Line(1.0, 2.0), Line(3.0, 4.0))
        key = next(iter(json.loads((tmp_path / "costs.json").read_text()).keys() - {"x"}))
        (tmp_path / "costs.json").write_text(json.dumps({key: {"lbfgs": {"fixed": "a"}}}))
        _costs.rates.cache_clear()
        assert _costs.rates(torch.float64, "cpu") == Rates(Line(1.0, 2.0), Line(3.0, 4.0))
        (tmp_path / "file").write_text("")
        monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path / "file" / "below"))  # cannot be a folder
        _costs.rates.cache_clear()
        assert _costs.rates(torch.float64, "cpu") == Rates(Line(1.0, 2.0), Line(3.0, 4.0))
    finally:
        _costs.rates.cache_clear()


def test_a_fixed_table_replaces_the_probe(monkeypatch):
    monkeypatch.setattr(_costs, "measure", lambda *a: pytest.fail("probed despite TORCHLOGIT_SOLVER_COSTS"))
    monkeypatch.setenv("TORCHLOGIT_SOLVER_COSTS", '{"lbfgs": [1, 2], "newton": [3, 4]}')
    _costs.rates.cache_clear()
    try:
        assert _costs.rates(torch.float64, "cpu") == Rates(Line(1.0, 2.0), Line(3.0, 4.0))
        monkeypatch.setenv("TORCHLOGIT_SOLVER_COSTS", '{"lbfgs": [1]}')
        _costs.rates.cache_clear()
        with pytest.raises(ValueError, match="TORCHLOGIT_SOLVER_COSTS"):
            _costs.rates(torch.float64, "cpu")
    finally:
        _costs.rates.cache_clear()


def test_the_forward_layout_is_measured_once_per_shape_and_kept(tmp_path, monkeypatch):
    from torchlogit import _measured

    monkeypatch.delenv("TORCHLOGIT_SOLVER_COSTS")
    monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path))
    _measured._logits_layout.cache_clear()
    try:
        X, W = torch.randn(300, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
        b = torch.randn(3, dtype=torch.float64)
        for bias in (b, None):  # every layout is the same product
            ref = X @ W.T + (0 if bias is None else bias)
            for product in _measured.LOGITS.values():
                torch.testing.assert_close(product(X, W, W.T.contiguous(), bias), ref)
        assert _measured.logits_layout(1000, 10, 3, torch.float32, "cpu") == "addmm"  # small: not timed
        assert not (tmp_path / "costs.json").exists()
        rows = _measured.MEASURE_LOGITS_FROM // 64
        choice = _measured.logits_layout(rows, 64, 4, torch.float32, "cpu")
        assert choice in _measured.LOGITS
        (key,) = [k for k in json.loads((tmp_path / "costs.json").read_text()) if "logits" in k]
        assert f"logits {rows} x 64, k 4" in key
        _measured._logits_layout.cache_clear()
        monkeypatch.setattr(_measured, "_fastest_layout", lambda *a: pytest.fail("timed again despite the cache"))
        assert _measured.logits_layout(rows, 64, 4, torch.float32, "cpu") == choice
    finally:
        _measured._logits_layout.cache_clear()


def test_a_measured_choice_is_the_fastest_and_kept(tmp_path, monkeypatch):
    from torchlogit import _measured

    monkeypatch.setenv("TORCHLOGIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_measured, "_fastest", {})
    assert _measured.fastest("a choice", lambda: {"kernel": 2.0, "torch": 1.0}) == "torch"
    monkeypatch.setattr(_measured, "_fastest", {})  # a new process: read from the file, not timed again
    assert _measured.fastest("a choice", lambda: pytest.fail("timed again")) == "torch"
    key = next(k for k in json.loads((tmp_path / "costs.json").read_text()) if k.endswith("a choice"))
    (tmp_path / "costs.json").write_text(json.dumps({key: "damaged"}))
    monkeypatch.setattr(_measured, "_fastest", {})
    assert _measured.fastest("a choice", lambda: {"kernel": 1.0, "torch": 2.0}) == "kernel"


def test_cpus_sharing_a_model_name_are_kept_apart():
    # a cloud VM reports "AMD EPYC" for an AVX2 Zen 2 and an AVX-512 Zen 5: their measurements must not mix
    def info(family, model, flags):
        first = f"processor\t: 0\nmodel name\t: AMD EPYC\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        return first + f"stepping\t: 0\nflags\t\t: fpu sse4_2 {flags}\n\nprocessor\t: 1\nmodel name\t: other\n"

    zen2 = _measured._describe_cpu(info(23, 49, "avx avx2 fma"))
    zen5 = _measured._describe_cpu(info(26, 2, "avx avx2 fma avx512f"))
    assert zen2 == "AMD EPYC (cpu family 23 model 49 stepping 0, avx2)"
    assert zen5 == "AMD EPYC (cpu family 26 model 2 stepping 0, avx512f)"
    assert _measured._describe_cpu("model name\t: Some CPU\n") == "Some CPU (no simd flags)"
    with pytest.raises(ValueError):
        _measured._describe_cpu("processor\t: 0\n")
