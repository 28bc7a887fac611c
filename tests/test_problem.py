"""Data sources: a problem whose rows come in blocks (a stream, the ranks of a distributed fit) is the
same problem as the one holding all rows in memory, through the same ``fit_problem``."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import make_problem

from torchlogit._fit import Standardizer, fit_problem
from torchlogit._loss import POINTWISE, LinearModelLoss
from torchlogit._problem import Problem, StreamProblem
from torchlogit.penalties import L1, L2, ElasticNet, NoPenalty
from torchlogit.stream import fit_stream

PENALTIES = [NoPenalty(), L2(0.05), L1(0.02), ElasticNet(0.04, 0.5)]


def _pair(kind, penalty, blocks=3, halves=False, n=90, d=5, k=3):
    """(Problem, StreamProblem) on the same rows: the stream in ``blocks`` row blocks; with ``halves`` it is
    one of two identical 'ranks', each holding the rows at half their weight, joined by a reduce."""
    X, y, sw = make_problem(kind, n=n, d=d, k=k)
    s = sw / sw.sum()
    loss = LinearModelLoss(POINTWISE[kind], d, k if kind == "multinomial" else 1, True)
    parts = np.array_split(np.arange(n), blocks)
    scale = 0.5 if halves else 1.0

    def passes():
        return [(X[idx], y[idx], s[idx] * scale) for idx in map(torch.from_numpy, parts)]

    stream = StreamProblem(loss, penalty, passes, reduce=(lambda t: 2 * t) if halves else None, dtype=X.dtype)
    return Problem(loss, penalty, X, y, s), stream


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("halves", [False, True], ids=["blocks", "two-ranks"])
@pytest.mark.parametrize("penalty", PENALTIES, ids=lambda p: p.name)
def test_sums_over_blocks_equal_the_in_memory_sums(kind, halves, penalty):
    memory, stream = _pair(kind, penalty, halves=halves)
    theta = 0.3 * torch.randn(memory.datafit.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    f0, g0 = memory.loss_gradient(theta) if penalty.smooth else memory.data_loss_gradient(theta)
    f1, g1 = stream.loss_gradient(theta) if penalty.smooth else stream.data_loss_gradient(theta)
    assert float(f1) == pytest.approx(float(f0), rel=1e-13)
    torch.testing.assert_close(g1, g0, rtol=1e-12, atol=1e-15)
    assert stream.objective(theta) == pytest.approx(memory.objective(theta), rel=1e-13)
    std = Standardizer.from_data(memory.X, memory.s, memory.datafit.n_outputs, True)
    smooth_m, smooth_s = memory.smooth_part(), stream.smooth_part()
    torch.testing.assert_close(
        smooth_s.hessian(theta, std=std), smooth_m.hessian(theta, std=std), rtol=1e-11, atol=1e-14
    )
    cols = torch.tensor([0, 3])
    sub = LinearModelLoss(memory.datafit.pointwise, 2, memory.datafit.n_outputs, True)
    W, b = memory.datafit.unpack(theta)
    theta_ws = torch.cat([W[:, cols].reshape(-1), b])
    H0 = memory.data_hessian(theta_ws, std=std.subset(cols), loss=sub, columns=cols)
    H1 = stream.data_hessian(theta_ws, std=std.subset(cols), loss=sub, columns=cols)
    torch.testing.assert_close(H1, H0, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("penalty", PENALTIES[1:], ids=lambda p: p.name)
def test_fit_problem_on_blocks_reaches_the_in_memory_optimum(kind, penalty):
    memory, stream = _pair(kind, penalty, halves=True)
    solver = "lbfgs" if penalty.smooth else "prox-newton"
    w0 = torch.zeros(memory.datafit.n_params, dtype=torch.float64)
    a = fit_problem(memory, solver=solver, w0=w0, tol=1e-10, max_iter=500)
    std = Standardizer.from_data(memory.X, memory.s, memory.datafit.n_outputs, True)
    b = fit_problem(stream, solver=solver, w0=w0, tol=1e-10, max_iter=500, std=std)
    assert a.converged and b.converged
    torch.testing.assert_close(b.x, a.x, rtol=1e-6, atol=1e-8)
    assert a.duality_gap is not None and b.duality_gap is None  # a stream's certificate would cost two passes


def test_a_stream_callback_sees_theta_like_fit(tmp_path):
    """The callback's ``x`` is in the model's parameters (W, b), not the solver's standardised coordinates."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    y = (X @ [1.0, 0.1, 0.01] + rng.logistic(size=500) > -0.5).astype(int)
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": y}), tmp_path / "d.parquet")
    seen = []
    model = fit_stream(tmp_path / "d.parquet", "y", tol=1e-8, callback=seen.append)
    last = seen[-1].x.numpy()
    np.testing.assert_allclose(last[:3], model.coef_[0], rtol=1e-5)
    np.testing.assert_allclose(last[3], model.intercept_[0], rtol=1e-5)
