"""Streaming fits over Parquet/CSV record batches, partial_fit, and a memory cap the data exceeds."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from torchlogit import LogisticRegression
from torchlogit.data import DataError
from torchlogit.stream import fit_stream


def make_data(n=6000, d=4, K=2, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * np.array([1.0, 10.0, 0.1, 3.0])[:d]).astype(np.float32)
    B = rng.standard_normal((K if K > 2 else 1, d)) / np.array([1.0, 10.0, 0.1, 3.0])[:d]
    Z = X @ B.T
    y = (Z[:, 0] + rng.logistic(size=n) > 0).astype(np.int64) if K == 2 else (Z + rng.gumbel(size=Z.shape)).argmax(1)
    return X, y


def table(X, y):
    return pa.table({**{f"x{j}": X[:, j] for j in range(X.shape[1])}, "label": y})


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b) / np.maximum(np.abs(b), 1e-3)))


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("layout", ["parquet", "folder", "csv"])
def test_exact_stream_reaches_the_in_memory_optimum(tmp_path, K, layout):
    X, y = make_data(K=K)
    t = table(X, y)
    if layout == "parquet":
        source = tmp_path / "d.parquet"
        pq.write_table(t, source, row_group_size=1000)
    elif layout == "folder":
        source = tmp_path / "parts"
        source.mkdir()
        for i in range(3):
            pq.write_table(t.slice(2000 * i, 2000), source / f"part-{i}.parquet", row_group_size=700)
    else:
        source = tmp_path / "d.csv"
        pacsv.write_csv(t, source)
    ref = LogisticRegression(C=0.5, tol=1e-8).fit(X, y)
    model = fit_stream(source, "label", C=0.5, tol=1e-8, batch_rows=512)
    assert rel(model.coef_, ref.coef_) < 1e-4 and rel(model.intercept_, ref.intercept_) < 1e-4
    assert model.objective_ == pytest.approx(ref.objective_, rel=1e-6)
    assert list(model.feature_names_in_) == ["x0", "x1", "x2", "x3"] and model.convergence_.converged
    np.testing.assert_array_equal(model.classes_, ref.classes_)
    frame = t.to_pandas()[list(model.feature_names_in_)]  # the stream's model knows its column names
    assert (model.predict(frame) == ref.predict(X)).mean() > 0.999


def test_sgd_stream_is_seeded_and_learns(tmp_path):
    X, y = make_data(n=8000)
    pq.write_table(table(X, y), tmp_path / "d.parquet", row_group_size=1000)
    Xs = (X - X.mean(0)) / X.std(0)
    pq.write_table(table(Xs.astype(np.float32), y), tmp_path / "s.parquet", row_group_size=1000)
    kwargs = dict(solver="sgd", epochs=4, learning_rate=0.05, batch_size=64, buffer_rows=3000, batch_rows=500)
    a = fit_stream(tmp_path / "s.parquet", "label", random_state=1, **kwargs)
    b = fit_stream(tmp_path / "s.parquet", "label", random_state=1, **kwargs)
    c = fit_stream(tmp_path / "s.parquet", "label", random_state=2, **kwargs)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(a.coef_, c.coef_)
    assert a.loss_curve_[-1] < a.loss_curve_[0]
    exact = LogisticRegression().fit(Xs, y)
    named = table(Xs.astype(np.float32), y).to_pandas()[list(a.feature_names_in_)]
    assert abs(a.score(named, y) - exact.score(Xs, y)) < 0.02
    seen = []
    fit_stream(tmp_path / "s.parquet", "label", random_state=1, callback=seen.append, **kwargs)
    assert [i.iteration for i in seen] == [1, 2, 3, 4] and all(i.rows_per_s > 0 for i in seen)


def test_stream_errors_name_file_and_column(tmp_path):
    X, y = make_data(n=100)
    pq.write_table(table(X, y), tmp_path / "d.parquet")
    with pytest.raises(DataError, match="target column 'y' not found"):
        fit_stream(tmp_path / "d.parquet", "y")
    with pytest.raises(DataError, match="no such file"):
        fit_stream(tmp_path / "nope.parquet", "label")
    bad = table(X, y).append_column("name", pa.array(["a"] * 100))
    pq.write_table(bad, tmp_path / "b.parquet")
    with pytest.raises(DataError, match="column 'name' is not numeric"):
        fit_stream(tmp_path / "b.parquet", "label")
    holes = pa.table({"x0": pa.array([1.0, None, 2.0, 3.0]), "label": [0, 1, 0, 1]})
    pq.write_table(holes, tmp_path / "h.parquet")
    with pytest.raises(DataError, match="missing value in column 'x0' \\(row 1"):
        fit_stream(tmp_path / "h.parquet", "label")
    with pytest.raises(ValueError, match="solver 'lbfgs' \\(exact\\) or 'sgd'"):
        fit_stream(tmp_path / "d.parquet", "label", solver="newton")


def test_partial_fit_follows_sklearns_contract():
    X, y = make_data(n=3000)
    Xs = (X - X.mean(0)) / X.std(0)
    model = LogisticRegression(solver="sgd", learning_rate=0.1, batch_size=64, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(Xs[:100], y[:100])
    for _ in range(20):
        for start in range(0, 3000, 500):
            model.partial_fit(Xs[start : start + 500], y[start : start + 500], classes=[0, 1])
    exact = LogisticRegression().fit(Xs, y)
    assert model.n_iter_[0] == 120 and rel(model.coef_, exact.coef_) < 0.1
    with pytest.raises(ValueError, match="label 7 is not in classes"):
        model.partial_fit(Xs[:3], np.array([0, 1, 7]))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(Xs[:3, :2], y[:3])
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):  # as in scikit-learn: only sgd has it
        LogisticRegression().partial_fit(Xs, y, classes=[0, 1])
    assert not hasattr(LogisticRegression(), "partial_fit") and hasattr(LogisticRegression(solver="sgd"), "partial_fit")


CAPPED = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from torchlogit.stream import fit_stream
    import warnings
    warnings.simplefilter("ignore")
    # warm up on the big file itself, so that the readers' thread pools (each thread's stack is
    # address space) already exist: libraries, thread pools, allocator arenas
    fit_stream(sys.argv[1], "label", max_iter=1, batch_rows=16384)
    def vm(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    cap = int(sys.argv[2])
    limit = vm("VmSize:") + cap
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if sys.argv[3] == "in-memory":  # the control: under the cap, an array the size of the data does not fit
        np.ones(int(sys.argv[4]) // 4, dtype=np.float32)
    model = fit_stream(sys.argv[1], "label", C=1.0, tol=1e-7, batch_rows=16384)
    print(json.dumps({"coef": model.coef_.ravel().tolist(), "intercept": model.intercept_.tolist(),
                      "limit_above_start": cap, "rows_per_s": model.stream_rows_per_s_}))
    """
)


def test_streaming_fit_under_a_memory_cap_smaller_than_the_data(tmp_path):
    """The data (134 MB of float32) is 4x the address space left to the process (32 MiB)."""
    rng = np.random.default_rng(3)
    n, d = 1_680_000, 20
    beta = rng.standard_normal(d) * 0.3
    big = tmp_path / "big.parquet"
    writer = None
    X_all, y_all = [], []
    for _ in range(8):
        X = rng.standard_normal((n // 8, d)).astype(np.float32)
        y = (X @ beta + rng.logistic(size=len(X)) > 0).astype(np.int64)
        t = pa.table({**{f"x{j}": X[:, j] for j in range(d)}, "label": y})
        writer = writer or pq.ParquetWriter(big, t.schema)
        writer.write_table(t, row_group_size=100_000)
        X_all.append(X)
        y_all.append(y)
    writer.close()
    cap = 32 << 20
    X, y = np.concatenate(X_all), np.concatenate(y_all)
    assert X.nbytes >= 4 * cap
    # One malloc arena: otherwise each new reader thread may reserve a fresh 64 MiB of address
    # space, which counts against the cap although hardly any of it is ever used.
    env = dict(os.environ, MALLOC_ARENA_MAX="1")
    control = subprocess.run([sys.executable, "-c", CAPPED, str(big), str(cap), "in-memory", str(X.nbytes)],
                             capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert control.returncode != 0 and "MemoryError" in control.stderr, control.stderr[-500:]
    res = subprocess.run([sys.executable, "-c", CAPPED, str(big), str(cap), "stream", "0"],
                         capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    ref = LogisticRegression(C=1.0, tol=1e-7).fit(X, y)
    assert rel(out["coef"], ref.coef_.ravel()) < 1e-4 and rel(out["intercept"], ref.intercept_) < 1e-4
