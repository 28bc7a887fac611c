"""svmlight/libsvm files: read as CSR (never densified) by the library and every CLI verb, fits equal to
scikit-learn's loader followed by LogisticRegression, every bad file one error line naming file and line."""

import bz2
import gzip

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file, load_svmlight_file

from torchlogit import LogisticRegression, load
from torchlogit.cli import main
from torchlogit.data import DataError, SparseTable, read_table


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err, *parts):
    """The run failed with exactly one 'error:' line holding every part, and no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], (part, lines[0])


def sparse_problem(n=240, d=60, density=0.1, seed=0):
    """A binary problem with a sparse X (n, d) whose labels depend on a few columns."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, dtype=np.float64)
    w = np.zeros(d)
    w[: min(8, d)] = rng.normal(scale=3.0, size=min(8, d))
    y = (X @ w + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


@pytest.fixture
def svm_file(tmp_path):
    X, y = sparse_problem()
    path = tmp_path / "train.svm"
    dump_svmlight_file(X, y, str(path), zero_based=False)
    return path


def test_train_equals_sklearn_loader_then_fit(tmp_path, capsys, svm_file):
    code, out, err = run(capsys, "train", svm_file, "--model-out", tmp_path / "m.safetensors")
    assert code == 0, err
    assert "data: 240 examples x 60 features" in out and "(sparse)" in out
    X, y = load_svmlight_file(str(svm_file))
    reference = LogisticRegression().fit(X, y)
    model = load(tmp_path / "m.safetensors")
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-6)
    assert model.classes_.tolist() == [0, 1]  # labels written as 0/1 come back as integers


@pytest.mark.parametrize("suffix, opener", [(".svm.gz", gzip.open), (".libsvm.bz2", bz2.open), (".svmlight", open)])
def test_compressed_and_other_suffixes(tmp_path, capsys, svm_file, suffix, opener):
    path = tmp_path / f"data{suffix}"
    with opener(path, "wb") as fh:
        fh.write(svm_file.read_bytes())
    code, _, err = run(capsys, "train", path, "--model-out", tmp_path / "m.safetensors")
    assert code == 0, err
    X, y = load_svmlight_file(str(svm_file))
    np.testing.assert_allclose(load(tmp_path / "m.safetensors").coef_, LogisticRegression().fit(X, y).coef_, atol=1e-6)


def test_zero_based_when_the_header_says_so(tmp_path):
    X, y = sparse_problem(n=40, d=5)
    path = tmp_path / "z.svm"
    dump_svmlight_file(X, y, str(path), zero_based=True, comment="written by scikit-learn")
    table = read_table(path)
    assert isinstance(table, SparseTable) and table.zero_based and table.X.shape == (40, 5)
    np.testing.assert_allclose(table.X.toarray(), X.toarray(), rtol=1e-15)  # %.16g in the file


def test_the_estimator_and_every_verb_get_csr_never_a_dense_array(tmp_path, capsys, svm_file, monkeypatch):
    # X (240, 60) turned dense anywhere on the way fails; scikit-learn's metrics may densify their own
    # (n, 1) label indicators
    for cls in (sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.csc_array, sp.coo_matrix, sp.coo_array):
        for method in ("toarray", "todense"):
            original = getattr(cls, method)

            def no_dense(self, *args, _original=original, **kwargs):
                assert self.shape[1] < 60, f"a sparse {self.shape} matrix was densified"
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(cls, method, no_dense)
    seen = []
    for name in ("fit", "predict", "predict_proba", "summary"):
        original = getattr(LogisticRegression, name)

        def spy(self, X, *args, _original=original, _name=name, **kwargs):
            seen.append((_name, type(X)))
            return _original(self, X, *args, **kwargs)

        monkeypatch.setattr(LogisticRegression, name, spy)
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", svm_file, "--model-out", model)[0] == 0
    assert run(capsys, "predict", model, svm_file, "--proba", "--out", tmp_path / "p.csv")[0] == 0
    assert run(capsys, "evaluate", model, svm_file, "--json")[0] == 0
    assert run(capsys, "summary", model, svm_file)[0] == 0
    for kind in ("roc", "calibration", "confusion"):
        code, _, err = run(capsys, "plot", model, svm_file, "--kind", kind, "--out", tmp_path / f"{kind}.png")
        assert code == 0, err
    assert {name for name, _ in seen} == {"fit", "predict", "predict_proba", "summary"}
    assert all(issubclass(kind, (sp.spmatrix, sp.sparray)) for _, kind in seen), seen
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 241


def test_reading_keeps_csr_of_the_asked_dtype(svm_file):
    table = read_table(svm_file)
    assert sp.issparse(table.X) and table.X.format == "csr" and table.X.dtype == np.float64
    wider = table.matrix(100)
    assert wider.format == "csr" and wider.shape == (240, 100)
    assert np.shares_memory(wider.data, table.X.data)  # padding shares the arrays: no copy, no dense matrix


@pytest.mark.parametrize(
    "text, where",
    [
        ("1 1:0.5 3:1\n0 abc\n", "line 2: 'abc' is not index:value"),
        ("1 1:0.5\nyes 2:1\n", "line 2: the label 'yes' is not a number"),
        ("# one-based\n1 1:0.5\n0 0:1\n", "line 3: feature index 0, but indices start at 1"),
        ("1 1:0.5\n\n0 2:x\n", "line 3: the value 'x' of feature 2 is not a number"),
        ("1 3:0.5 2:1\n0 2:1\n", "line 1: feature indices must increase along a line: 2 comes after 3"),
        ("1 1.5:2\n0 2:1\n", "line 1: the index '1.5' of '1.5:2' is not a whole number"),
        ("1 1:2\n0 -4:1\n", "line 2: feature index -4 is negative"),
        ("1,2 1:2\n0 2:1\n", "multi-label files are not supported"),
        ("1 1:2\nnan 2:1\n", "line 2: label nan is not a finite number"),
        ("1 1:2\n# note\n0 2:1e999\n", "line 3: feature 2 holds inf; features must be finite"),
        ("", "holds no examples"),
        ("# nothing but a comment\n\n", "holds no examples"),
        ("1 1:2\n1 2:1\n", "all 2 of its examples have the label 1; training needs at least two classes"),
    ],
)
def test_bad_files_one_line_naming_file_and_line(tmp_path, capsys, text, where):
    path = tmp_path / "bad.svm"
    path.write_text(text)
    code, _, err = run(capsys, "train", path, "--model-out", tmp_path / "m.safetensors")
    assert code == 3
    one_error_line(err, str(path), where)
    assert not (tmp_path / "m.safetensors").exists()


def test_missing_damaged_and_folder(tmp_path, capsys):
    code, _, err = run(capsys, "train", tmp_path / "missing.svm")
    assert code == 3
    one_error_line(err, "missing.svm: no such file")
    (tmp_path / "damaged.svm.gz").write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    code, _, err = run(capsys, "train", tmp_path / "damaged.svm.gz")
    assert code == 3
    one_error_line(err, "damaged.svm.gz: cannot be read")
    (tmp_path / "folder.svm").mkdir()
    code, _, err = run(capsys, "train", tmp_path / "folder.svm")
    assert code == 3
    one_error_line(err, "folder.svm: is a folder")
    with pytest.raises(DataError, match="missing.svm: no such file"):
        read_table(tmp_path / "missing.svm")


@pytest.mark.parametrize(
    "option, message",
    [
        (["--target", "y"], "no named columns; its target is the label that starts each line (drop --target y)"),
        (["--features", "a,b"], "numbered features only; drop --features"),
        (["--one-hot"], "numbered features only; drop --one-hot"),
        (["--stream"], "--stream reads CSV or Parquet; an svmlight file is read whole"),
    ],
)
def test_table_options_refused(tmp_path, capsys, svm_file, option, message):
    code, _, err = run(capsys, "train", svm_file, *option)
    assert code == 3
    one_error_line(err, str(svm_file), message)


def test_l1_gives_exact_zeros_and_prints_their_count(tmp_path, capsys, svm_file):
    model = tmp_path / "l1.safetensors"
    code, out, err = run(capsys, "train", svm_file, "--penalty", "l1", "--C", "0.5", "--model-out", model)
    assert code == 0, err
    coef = load(model).coef_
    nonzero = int(np.count_nonzero(coef))
    assert 0 < nonzero < coef.size
    assert f"{nonzero} of {coef.size} coefficients non-zero" in out and "prox-newton" in out
    X, y = load_svmlight_file(str(svm_file))
    reference = LogisticRegression(penalty="l1", C=0.5, l1_ratio=1.0).fit(X, y)
    np.testing.assert_allclose(coef, reference.coef_, atol=1e-6)
    np.testing.assert_array_equal(coef == 0, reference.coef_ == 0)


@pytest.mark.parametrize("options", [["--l1-ratio", "0.5"], ["--penalty", "elasticnet", "--l1-ratio", "0.5"]])
def test_l1_ratio_is_an_elastic_net(tmp_path, capsys, svm_file, options):
    model = tmp_path / "en.safetensors"
    code, out, err = run(capsys, "train", svm_file, *options, "--C", "0.5", "--model-out", model)
    assert code == 0, err
    X, y = load_svmlight_file(str(svm_file))
    reference = LogisticRegression(penalty="elasticnet", C=0.5, l1_ratio=0.5).fit(X, y)
    np.testing.assert_allclose(load(model).coef_, reference.coef_, atol=1e-6)
    assert "coefficients non-zero" in out


def test_l2_prints_no_count(tmp_path, capsys, svm_file):
    code, out, _ = run(capsys, "train", svm_file, "--penalty", "l2", "--l1-ratio", "0")
    assert code == 0 and "non-zero" not in out.split("\n", 1)[1]  # the data line counts stored values


@pytest.mark.parametrize(
    "options, message",
    [
        (["--penalty", "l2", "--l1-ratio", "0.5"], "--penalty l2 is --l1-ratio 0, not 0.5"),
        (["--penalty", "l1", "--l1-ratio", "0.2"], "--penalty l1 is --l1-ratio 1, not 0.2"),
        (["--penalty", "none", "--l1-ratio", "0.2"], "--penalty none takes no --l1-ratio"),
        (["--penalty", "elasticnet"], "--penalty elasticnet needs --l1-ratio"),
        (["--penalty", "lasso"], "--penalty must be l2, l1, elasticnet or none, got 'lasso'"),
        (["--l1-ratio", "1.5"], "--l1-ratio must be between 0 and 1, got 1.5"),
        (["--l1-ratio", "nan"], "--l1-ratio must be between 0 and 1, got nan"),
        (["--penalty", "l1", "--solver", "lbfgs"], "Solver lbfgs supports only 'l2' or None penalties"),
    ],
)
def test_penalty_options_refused(capsys, svm_file, options, message):
    code, _, err = run(capsys, "train", svm_file, *options)
    assert code == 1
    one_error_line(err, message)


@pytest.mark.parametrize(
    "options", [["--penalty", "l1", "--solver", "lbfgs"], ["--l1-ratio", "0.5", "--solver", "lbfgs"]]
)
def test_stream_with_an_l1_part_is_one_error_line(tmp_path, capsys, options):
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,0\n2,0\n3,1\n4,1\n2.5,0\n1.5,1\n")
    code, _, err = run(capsys, "train", csv, "--target", "y", "--stream", *options)
    assert code == 1
    one_error_line(err, "'l1'" if "--penalty" in options else "'elasticnet'")


def test_stream_elastic_net_with_sgd(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("x,z,y\n1,0,0\n2,1,0\n3,0,1\n4,1,1\n2.5,0,0\n1.5,1,1\n")
    model = tmp_path / "m.safetensors"
    code, _, err = run(
        capsys, "train", csv, "--target", "y", "--stream", "--l1-ratio", "0.5", "--solver", "sgd", "--model-out", model
    )
    assert code == 0, err
    from torchlogit import load

    assert load(model).get_params()["l1_ratio"] == 0.5


def test_predict_pads_fewer_columns_and_refuses_more(tmp_path, capsys, svm_file):
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", svm_file, "--model-out", model)[0] == 0
    X, y = load_svmlight_file(str(svm_file))
    few = tmp_path / "few.svm"
    dump_svmlight_file(X[:, :20], y, str(few), zero_based=False)
    code, out, err = run(capsys, "predict", model, few, "--proba")
    assert code == 0, err
    expected = load(model).predict_proba(sp.hstack([X[:, :20], sp.csr_matrix((X.shape[0], 40))]).tocsr())
    got = np.array([line.split(",") for line in out.splitlines()[1:]], dtype=float)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert run(capsys, "evaluate", model, few)[0] == 0
    more = tmp_path / "more.svm"
    more.write_text("1 1:0.5 60:1\n0 2:1\n1 3:1 61:2 70:0.25\n")
    for verb in ("predict", "evaluate", "summary"):
        code, _, err = run(capsys, verb, model, more)
        assert code == 3
        one_error_line(err, str(more), "line 3 has feature index 70, but the model has 60 features (indices 1 to 60)")


def test_verbs_refuse_target_for_an_svmlight_file(tmp_path, capsys, svm_file):
    model = tmp_path / "m.safetensors"
    run(capsys, "train", svm_file, "--model-out", model)
    code, _, err = run(capsys, "evaluate", model, svm_file, "--target", "label")
    assert code == 3
    one_error_line(err, "drop --target label")


def test_probability_plot_of_a_one_feature_file(tmp_path, capsys):
    path = tmp_path / "hours.svm"
    path.write_text("0 1:1\n0 1:2\n1 1:3\n1 1:2.5\n0 1:1.5\n1 1:4\n")
    assert run(capsys, "train", path, "--model-out", tmp_path / "m")[0] == 0
    code, _, err = run(capsys, "plot", tmp_path / "m", path, "--kind", "probability", "--out", tmp_path / "p.png")
    assert code == 0, err
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
