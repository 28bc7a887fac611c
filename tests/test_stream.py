"""Streaming fits over Parquet/CSV record batches, partial_fit, and a memory cap the data exceeds."""

import gzip
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
    with pytest.raises(DataError, match="h.parquet: column 'x0' has a missing value at row 2$"):  # rows count from 1
        fit_stream(tmp_path / "h.parquet", "label")
    with pytest.raises(ValueError, match="solver 'lbfgs' \\(exact\\) or 'sgd'"):
        fit_stream(tmp_path / "d.parquet", "label", solver="newton")
    with pytest.raises(ValueError, match="solver='lbfgs' does not fit penalty 'l1'; use solver='auto'"):
        fit_stream(tmp_path / "d.parquet", "label", penalty="l1", solver="lbfgs")
    with pytest.raises(ValueError, match="solver='prox-newton' does not fit penalty 'l2'"):
        fit_stream(tmp_path / "d.parquet", "label", solver="prox-newton")
    with pytest.raises(ValueError, match="l1_ratio must be specified when penalty is elasticnet"):  # once fitted L2
        with pytest.warns(FutureWarning, match="l1_ratio=None"):
            fit_stream(tmp_path / "d.parquet", "label", penalty="elasticnet", solver="sgd")


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
    control = subprocess.run(
        [sys.executable, "-c", CAPPED, str(big), str(cap), "in-memory", str(X.nbytes)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert control.returncode != 0 and "MemoryError" in control.stderr, control.stderr[-500:]
    res = subprocess.run(
        [sys.executable, "-c", CAPPED, str(big), str(cap), "stream", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    ref = LogisticRegression(C=1.0, tol=1e-7).fit(X, y)
    assert rel(out["coef"], ref.coef_.ravel()) < 1e-4 and rel(out["intercept"], ref.intercept_) < 1e-4


def parts(folder, *tables):
    """A folder of Parquet files part-0, part-1, ... holding ``tables``."""
    folder.mkdir()
    for i, t in enumerate(tables):
        pq.write_table(t, folder / f"part-{i}.parquet")
    return folder


def test_a_file_that_lacks_a_column_or_holds_strings_is_named(tmp_path):
    X, y = make_data(n=100)
    good = table(X, y)
    lacks = parts(tmp_path / "lacks", good, good.drop_columns(["x2"]))
    with pytest.raises(
        DataError, match=r"lacks/part-1\.parquet: column 'x2' not found; columns are x0, x1, x3, label$"
    ):
        fit_stream(lacks, "label")
    text = good.set_column(1, "x1", pa.array(["1", "1,5"] + ["2"] * 98))
    strings = parts(tmp_path / "strings", good, text)
    with pytest.raises(
        DataError, match=r"strings/part-1\.parquet: column 'x1' is not numeric \(string\): row 2 holds '1,5'$"
    ):
        fit_stream(strings, "label")
    extra = parts(tmp_path / "extra", good, good.append_column("x9", pa.array(np.ones(100))))
    with pytest.raises(DataError, match=r"extra/part-1\.parquet: column 'x9' is not in .*part-0\.parquet"):
        fit_stream(extra, "label")
    assert fit_stream(extra, "label", features=["x0", "x3"]).n_features_in_ == 2  # chosen columns: the rest may differ


def test_a_csv_cell_that_is_no_number_past_the_first_block_names_column_and_row(tmp_path):
    rows = [f"{i},{i % 2}" for i in range(200_000)]  # 1.3 MB: pyarrow infers int64 from the first block (1 MB)
    rows[190_000] = "abc,1"
    (tmp_path / "big.csv").write_text("x,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(
        DataError,
        match=r"big\.csv: cannot be read: column 'x', row 190001: CSV conversion error to int64: invalid value 'abc'$",
    ):
        fit_stream(tmp_path / "big.csv", "label", max_iter=2)


def test_a_truncated_or_replaced_parquet_file_is_named(tmp_path):
    X, y = make_data(n=3000)
    folder = tmp_path / "t"
    folder.mkdir()
    for i in range(3):
        pq.write_table(table(X, y).slice(1000 * i, 1000), folder / f"part-{i}.parquet", row_group_size=250)
    whole = (folder / "part-1.parquet").read_bytes()
    (folder / "part-1.parquet").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"t/part-1\.parquet: cannot read as parquet: "):
        fit_stream(folder, "label")
    (folder / "part-1.parquet").write_bytes(whole)
    replaced = table(X[:10], y[:10]).drop_columns(["x3"])

    def replace_after_the_first_iteration(info):  # another job rewrites the file while we train
        pq.write_table(replaced, folder / "part-1.parquet")

    with pytest.raises(
        DataError, match=r"t/part-1\.parquet: cannot be read: .*; it changed or was truncated during training$"
    ):
        fit_stream(folder, "label", callback=replace_after_the_first_iteration)


def test_spark_output_is_read_as_pyarrow_discovers_it(tmp_path):
    X, y = make_data(n=400)
    folder = tmp_path / "spark"
    folder.mkdir()
    for i in range(2):
        pq.write_table(table(X, y).slice(200 * i, 200), folder / f"part-{i:05d}-abc.snappy.parquet")
        (folder / f".part-{i:05d}-abc.snappy.parquet.crc").write_bytes(b"\x00crc")
    (folder / "_SUCCESS").write_text("")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "part-9.parquet").write_bytes(b"half")
    model = fit_stream(folder, "label", C=0.5, tol=1e-8)
    assert [p.rsplit("/", 1)[1] for p in model.stream_files_] == [
        "part-00000-abc.snappy.parquet",
        "part-00001-abc.snappy.parquet",
    ]
    assert rel(model.coef_, LogisticRegression(C=0.5, tol=1e-8).fit(X, y).coef_) < 1e-4  # all rows, and only those
    (folder / "README.txt").write_text("written by the nightly job")
    with pytest.raises(
        DataError, match=r"spark/README\.txt: not a data file \(\.parquet, \.csv, \.csv\.gz\); move it out"
    ):
        fit_stream(folder, "label")


def test_an_empty_folder_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: the folder holds no data files \(\.parquet, \.csv\)$"):
        fit_stream(tmp_path / "empty", "label")
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(
        DataError, match=r"no data files \(\.parquet, \.csv\) \(skipped 1 whose names start with '_' or '\.'\)$"
    ):
        fit_stream(tmp_path / "empty", "label")


def test_stream_target_errors_name_file_column_and_row(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "label": [0.0, np.inf, 1.0]}), tmp_path / "inf.parquet")
    with pytest.raises(DataError, match=r"inf\.parquet: target column 'label' holds inf at row 2$"):
        fit_stream(tmp_path / "inf.parquet", "label")
    (tmp_path / "one.csv").write_text("x,label\n1,1\n")
    with pytest.raises(
        DataError, match=r"one\.csv: target column 'label' has the single class 1 in its 1 row; training"
    ):
        fit_stream(tmp_path / "one.csv", "label")
    (tmp_path / "z.csv").write_bytes(gzip.compress(b"x,label\n1,0\n2,1\n"))
    with pytest.raises(DataError, match=r"z\.csv: is gzip-compressed but named \.csv"):
        fit_stream(tmp_path / "z.csv", "label")
    (tmp_path / "z.csv").rename(tmp_path / "z.csv.gz")
    assert fit_stream(tmp_path / "z.csv.gz", "label").classes_.tolist() == [0, 1]
    (tmp_path / "dup.csv").write_text("a,a,label\n1,2,0\n2,1,1\n")
    with pytest.raises(DataError, match=r"dup\.csv: column 'a' appears 2 times"):
        fit_stream(tmp_path / "dup.csv", "label")


def test_a_bool_target_has_classes_false_true_in_memory_and_streamed(tmp_path):
    (tmp_path / "b.csv").write_text("x,label\n" + "".join(f"{i},{str(i % 3 == 0).lower()}\n" for i in range(30)))
    streamed = fit_stream(tmp_path / "b.csv", "label")
    from torchlogit.data import read_table

    t = read_table(tmp_path / "b.csv", "label")
    X, _ = t.features()
    in_memory = LogisticRegression().fit(X, t.target_values())
    assert streamed.classes_.tolist() == in_memory.classes_.tolist() == [False, True]
    assert streamed.classes_.dtype == in_memory.classes_.dtype == bool


def test_stream_inputs_found_by_fuzzing_are_one_line_data_errors(tmp_path):
    """tests/test_fuzz.py found each: a traceback, a warning before the error, or a message over two lines."""
    import warnings

    def refused(path, target, match):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the error alone: no RuntimeWarning printed before it
            with pytest.raises(DataError, match=match) as info:
                fit_stream(path, target, max_iter=3)
        assert len(str(info.value).splitlines()) == 1

    (tmp_path / "latin1.csv").write_bytes("caf\xe9,y\n1,0\n".encode("latin-1"))
    refused(tmp_path / "latin1.csv", "y", r"latin1\.csv: cannot read as csv: its column names are not UTF-8 text$")
    (tmp_path / "nl.csv").write_text('"a\nb",x\n1,0\n')
    refused(tmp_path / "nl.csv", "y", r"target column 'y' not found; columns are 'a\\nb', x$")
    (tmp_path / "only.csv").write_text("y\n0\n1\n")  # was ZeroDivisionError in the first pass
    refused(tmp_path / "only.csv", "y", r"only\.csv: no feature columns left after removing the target 'y'$")
    (tmp_path / "big.csv").write_text("x,y\n0,0\n3.4028235677973366e+38,1\n")  # finite in float64, not in float32
    refused(tmp_path / "big.csv", "y", r"column 'x' holds 3\.4028235677973366e\+38 at row 2; features must be finite")


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["l1", "elasticnet"])
def test_exact_l1_stream_reaches_the_in_memory_optimum(tmp_path, kind, l1_ratio):
    """prox-newton on a stream (once refused, before that fitted as L2): the in-memory fit's coefficients and
    support, its working set's Hessian summed over record batches."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = (load_breast_cancer if kind == "binary" else load_digits)(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    pq.write_table(table(X, y), tmp_path / "d.parquet", row_group_size=100)
    C = 0.1 if kind == "binary" else 0.05
    memory = LogisticRegression(l1_ratio=l1_ratio, C=C, tol=1e-8).fit(X, y)
    streamed = fit_stream(
        tmp_path / "d.parquet", "label", penalty="elasticnet", l1_ratio=l1_ratio, C=C, tol=1e-8, batch_rows=128
    )
    assert streamed.solver_ == "prox-newton" and streamed.convergence_.converged
    assert 0 < (memory.coef_ != 0).sum() < memory.coef_.size  # a sparse model: the comparison means something
    np.testing.assert_array_equal(streamed.coef_ == 0, memory.coef_ == 0)
    np.testing.assert_allclose(streamed.coef_, memory.coef_, atol=1e-5 * np.abs(memory.coef_).max())
