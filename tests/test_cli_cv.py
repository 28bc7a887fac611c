"""train --cv and plot --kind path|cv: the choice printed, the refit saved, the table beside it, bad input refused."""

import json
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from torchlogit import LogisticRegressionCV, load
from torchlogit.cli import main


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One train --cv run (elastic net, 1se), shared by the tests that read its output."""
    folder = tmp_path_factory.mktemp("cv")
    model = folder / "bc.safetensors"
    args = ["train", "breast-cancer", "--cv", "3", "--Cs", "6", "--l1-ratios", "0.2,0.8", "--selection", "1se"]
    code = main([*args, "--model-out", str(model)])
    return code, model


def test_train_cv_prints_the_choice_and_saves_the_refit(trained, capsys):
    code, _ = trained
    assert code == 0
    model_path = trained[1]
    model = load(model_path)
    assert type(model).__name__ == "LogisticRegression"  # the file format stores LogisticRegression only
    table = json.loads(model_path.with_suffix(".cv.json").read_text())
    assert model.C == table["chosen_C"] == table["one_se_C"] and model.l1_ratio == table["l1_ratio"]
    # the same choice from the library, and the same refit coefficients
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LogisticRegressionCV(
            Cs=6, cv=3, l1_ratios=(0.2, 0.8), scoring="neg_log_loss", selection="1se", use_legacy_attributes=False
        ).fit(X, y)
    assert ref.C_ == model.C and ref.l1_ratio_ == model.l1_ratio
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-8)
    assert table["C"] == sorted(table["C"]) and len(table["mean"]) == len(table["sem"]) == 6


def test_summary_line_has_c_score_and_standard_error(tmp_path, capsys):
    code, out, err = run(capsys, "train", "breast-cancer", "--cv", "3", "--Cs", "5")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("chosen C"))
    assert re.search(r"chosen C [\d.e+-]+ \(best mean\): CV log-loss [\d.]+ ± [\d.]+ \(standard error over 3", line)
    assert "l1_ratio" not in line  # one mix: nothing to choose
    assert "model not saved" in out


@pytest.mark.parametrize("kind", ["cv", "path"])
def test_plots_of_the_choice(trained, tmp_path, capsys, kind):
    out_file = tmp_path / f"{kind}.png"
    code, out, err = run(capsys, "plot", str(trained[1]), "breast-cancer", "--kind", kind, "--out", str(out_file))
    assert code == 0, err
    assert png_ok(out_file) and f"wrote {out_file}" in out


def test_plot_path_without_a_table_uses_a_default_grid(tmp_path, capsys):
    model = tmp_path / "plain.safetensors"
    assert run(capsys, "train", "breast-cancer", "--model-out", str(model))[0] == 0
    code, _, err = run(capsys, "plot", str(model), "breast-cancer", "--kind", "path", "--out", str(tmp_path / "p.png"))
    assert code == 0, err
    code, _, err = run(capsys, "plot", str(model), "breast-cancer", "--kind", "cv", "--out", str(tmp_path / "c.png"))
    assert code == 4 and err.count("error:") == 1 and "train --cv" in err


@pytest.mark.parametrize(
    "extra, code, words",
    [
        (["--cv", "1"], 1, "at least 2 folds"),
        (["--cv", "3", "--Cs", "0"], 1, "--Cs"),
        (["--cv", "3", "--selection", "best"], 1, "min or 1se"),
        (["--cv", "3", "--l1-ratios", "0.5,x"], 1, "--l1-ratios"),
        (["--cv", "3", "--l1-ratios", "0.5,1.5"], 1, "between 0 and 1"),
        (["--cv", "3", "--l1-ratios", "0.5", "--penalty", "l1"], 1, "contradicts"),
        (["--cv", "3", "--penalty", "elasticnet"], 1, "--l1-ratios"),
        (["--cv", "3", "--l1-ratio", "0.5"], 1, "--l1-ratios"),
        (["--cv", "3", "--solver", "sgd"], 1, "exact solver"),
        (["--cv", "3", "--stream", "--target", "y"], 1, "--stream"),
        (["--cv", "3", "--model-out", "/nonexistent-folder/m.safetensors"], 8, "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(capsys, extra, code, words):
    got, out, err = run(capsys, "train", "breast-cancer", *extra)
    assert got == code and err.count("error:") == 1 and words in err, err
    assert "cross-validation" not in out  # refused before any fit


def test_table_output_checked_before_the_fit(tmp_path, capsys):
    """MODEL.cv.json is written too: a folder in its way is refused before any work (exit 8)."""
    model = tmp_path / "m.safetensors"
    (tmp_path / "m.cv.json").mkdir()
    got, out, err = run(capsys, "train", "breast-cancer", "--cv", "3", "--model-out", str(model))
    assert got == 8 and err.count("error:") == 1 and "m.cv.json" in err and "cross-validation" not in out
    assert not model.exists()


def test_the_pictures_mark_the_choice_and_draw_the_table(trained):
    """What the two pictures draw, read back from their figures: the CV table's means (as log-loss) with
    the chosen C starred and the rule's C marked; the path's lines through the refit's coefficients at
    the chosen C (the path on all rows at that C is the refit), a dashed line at it."""
    import matplotlib.pyplot as plt

    from torchlogit import plotting

    model_path = trained[1]
    model, table = load(model_path), json.loads(model_path.with_suffix(".cv.json").read_text())
    fig = plotting.cv_table_scores(table)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    mean = next(line for label, line in lines.items() if label.startswith("mean"))
    order = np.argsort(table["C"])
    np.testing.assert_allclose(mean.get_ydata(), -np.asarray(table["mean"])[order])
    star = next(line for label, line in lines.items() if label.startswith("chosen C"))
    assert star.get_xdata()[0] == table["chosen_C"] and star.get_marker() == "*"
    rule = next(line for label, line in lines.items() if label.startswith("one-standard-error"))
    assert rule.get_xdata()[0] == table["one_se_C"]
    plt.close(fig)

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    fig = plotting.model_coefficient_path(model, X, y, table)
    ax = fig.axes[0]
    marked = [line for line in ax.get_lines() if line.get_label().startswith("chosen C")]
    assert len(marked) == 1 and marked[0].get_xdata()[0] == model.C
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == len(table["C"])]
    assert len(curves) == X.shape[1]  # one line per feature
    at = int(np.argmin(np.abs(np.asarray(sorted(table["C"])) - model.C)))
    drawn = np.sort([line.get_ydata()[at] for line in curves])
    expected = np.sort(model.coef_.ravel() * X.to_numpy().std(axis=0))
    np.testing.assert_allclose(drawn, expected, rtol=1e-4, atol=1e-4)
    plt.close(fig)


def test_train_cv_on_a_user_csv_with_its_target_column(tmp_path, capsys):
    """train FILE.csv --target COL --cv: the same choice and refit as the library on the same table, and
    the pictures drawn from the saved model with the same --target."""
    import pandas as pd

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    table = X.iloc[:, :8].assign(diagnosis=np.where(y == 1, "benign", "malignant"))
    csv = tmp_path / "cancer.csv"
    table.to_csv(csv, index=False)
    model_path = tmp_path / "m.safetensors"
    code, out, err = run(
        capsys, "train", str(csv), "--target", "diagnosis", "--cv", "3", "--Cs", "5", "--model-out", str(model_path)
    )
    assert code == 0, err
    model = load(model_path)
    assert list(model.classes_) == ["benign", "malignant"]
    ref = LogisticRegressionCV(Cs=5, cv=3, scoring="neg_log_loss", use_legacy_attributes=False, l1_ratios=(0.0,))
    ref.fit(pd.read_csv(csv).drop(columns="diagnosis"), pd.read_csv(csv)["diagnosis"])
    assert model.C == ref.C_
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-8)
    assert f"chosen C {model.C:.4g}" in out
    for kind in ("cv", "path"):
        picture = tmp_path / f"{kind}.png"
        code, _, err = run(
            capsys, "plot", str(model_path), str(csv), "--target", "diagnosis", "--kind", kind, "--out", str(picture)
        )
        assert code == 0 and png_ok(picture), err
