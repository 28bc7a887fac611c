"""The command line: each verb end to end, and every bad input as one line + exit code."""

import json
import subprocess
import sys

import numpy as np
import pytest

from torchlogit import load
from torchlogit.cli import main


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_replays_the_lecture(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path))
    assert code == 0
    assert "epoch  1000" in out and "P(pass | 4 hours)" in out
    assert "perfectly separated" in out and "prediction at 4 hours: 8.0" in out
    width, height = png_size(tmp_path / "probability_of_pass.png")
    assert 600 <= width <= 800 and 400 <= height <= 560  # 6 x 4 inches at 120 dpi, tight box


def test_train_evaluate_predict_plot(tmp_path, capsys):
    model = tmp_path / "bc.safetensors"
    code, out, _ = run(capsys, "train", "breast-cancer", "--model-out", str(model))
    assert code == 0 and "converged" in out and "train accuracy" in out
    code, out, _ = run(capsys, "evaluate", str(model), "breast-cancer", "--json")
    result = json.loads(out)
    assert code == 0 and result["accuracy"] > 0.95 and 0.99 < result["roc_auc"] <= 1.0
    assert np.array(result["confusion_matrix"]).sum() == 569
    code, _, _ = run(capsys, "predict", str(model), "breast-cancer", "--proba", "--out", str(tmp_path / "p.csv"))
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert code == 0 and lines[0] == '"proba_0","proba_1"' and len(lines) == 570
    for kind in ["roc", "calibration", "confusion", "loss"]:
        code, _, err = run(
            capsys, "plot", str(model), "breast-cancer", "--kind", kind, "--out", str(tmp_path / f"{kind}.png")
        )
        assert code == 0, err
        width, height = png_size(tmp_path / f"{kind}.png")
        assert width >= 300 and height >= 300


def test_csv_with_one_hot_and_probability_plot(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("hours,group,passed\n1,a,0\n2,b,0\n3,a,1\n4,b,1\n2.5,a,1\n1.5,b,0\n")
    code, _, err = run(capsys, "train", str(csv), "--target", "passed", "--model-out", str(tmp_path / "m"))
    assert code == 3 and "column 'group' is not numeric" in err and "--one-hot" in err
    code, _, _ = run(capsys, "train", str(csv), "--target", "passed", "--one-hot", "--model-out", str(tmp_path / "m"))
    assert code == 0
    assert list(load(tmp_path / "m").feature_names_in_) == ["hours", "group=a", "group=b"]
    code, out, _ = run(capsys, "predict", str(tmp_path / "m"), str(csv))
    assert code == 0 and out.splitlines()[0] == '"prediction"'
    run(capsys, "train", "hours", "--model-out", str(tmp_path / "h"))
    code, _, _ = run(
        capsys, "plot", str(tmp_path / "h"), "hours", "--kind", "probability", "--out", str(tmp_path / "h.png")
    )
    assert code == 0 and (tmp_path / "h.png").exists()


def test_parquet_input(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    pq.write_table(pa.table({"x": x, "y": (x + rng.normal(size=200) > 0).astype(int)}), tmp_path / "d.parquet")
    code, out, _ = run(
        capsys, "train", str(tmp_path / "d.parquet"), "--target", "y", "--model-out", str(tmp_path / "m")
    )
    assert code == 0
    code, out, _ = run(capsys, "evaluate", str(tmp_path / "m"), str(tmp_path / "d.parquet"), "--target", "y", "--json")
    assert json.loads(out)["n_samples"] == 200


@pytest.mark.parametrize("verb", ["demo", "train", "evaluate", "predict", "plot", "summary"])
def test_every_command_has_help_with_an_example(capsys, verb):
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0 and "Example: torchlogit " + verb in " ".join(out.split())


def test_sgd_training_from_the_cli(tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "train",
        "iris",
        "--solver",
        "sgd",
        "--optimizer",
        "adam",
        "--learning-rate",
        "0.05",
        "--epochs",
        "30",
        "--random-state",
        "0",
        "--model-out",
        str(tmp_path / "i"),
    )
    assert code == 0 and "sgd: 30 iterations" in out
    assert len(load(tmp_path / "i").loss_curve_) == 30


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "missing.csv", "--target", "y", "--model-out", "m"], 3, "no such file"),
        (["train", "{csv}", "--target", "nope", "--model-out", "m"], 3, "target column 'nope' not found"),
        (["train", "{csv}", "--target", "y", "--features", "x,zz", "--model-out", "m"], 3, "column 'zz' not found"),
        (["train", "{csv}", "--target", "y", "--C", "-1", "--model-out", "m"], 1, "'C' parameter"),
        (["train", "{csv}", "--target", "y", "--solver", "magic", "--model-out", "m"], 1, "'solver' parameter"),
        (["evaluate", "{csv}", "{csv}", "--target", "y"], 4, "not a torchlogit model"),
        (["evaluate", "{model}", "breast-cancer"], 3, "not found"),
        (["plot", "{model}", "{csv}", "--target", "y", "--kind", "pie", "--out", "p.png"], 1, "unknown --kind"),
        (["train", "{badcsv}", "--target", "y", "--model-out", "m"], 3, "missing value at row 2"),
        (["train"], 2, ""),
    ],
)
def test_bad_input_one_line_no_traceback(tmp_path, capsys, args, code, message):
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,0\n2,0\n3,1\n4,1\n")
    (tmp_path / "bad.csv").write_text("x,y\n1,0\n,1\n")
    model = tmp_path / "m.st"
    main(["train", str(csv), "--target", "y", "--model-out", str(model)])
    capsys.readouterr()
    args = [a.format(csv=csv, model=model, badcsv=tmp_path / "bad.csv") for a in args]
    got, out, err = run(capsys, *args)
    assert got == code
    assert message in err
    assert "Traceback" not in err + out
    if code in (1, 3, 4):
        assert len(err.strip().splitlines()) == 1


def test_failed_train_leaves_existing_model_alone(tmp_path, capsys):
    model = tmp_path / "m.st"
    main(["train", "hours", "--model-out", str(model)])
    before = model.read_bytes()
    code, _, _ = run(capsys, "train", "missing.csv", "--target", "y", "--model-out", str(model))
    assert code == 3 and model.read_bytes() == before


def test_python_dash_m_is_the_same_command():
    done = subprocess.run([sys.executable, "-m", "torchlogit", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout and "Exit codes" in done.stdout


def test_summary_table_json_and_the_separation_message(tmp_path, capsys):
    model = tmp_path / "iris.safetensors"
    assert run(capsys, "train", "iris", "--model-out", str(model))[0] == 0
    code, out, _ = run(capsys, "summary", str(model), "iris")
    assert code == 0 and "MNLogit Regression Results" in out and "y=1" in out and "not classical Wald inference" in out
    code, out, _ = run(capsys, "summary", str(model), "iris", "--json", "--baseline", "none", "--cov-type", "HC0")
    result = json.loads(out)
    assert code == 0 and result["baseline"] is None and np.array(result["params"]).shape == (3, 5)
    assert result["cov_type"] == "HC0" and result["names"][0] == "const" and 0 < result["prsquared"] < 1
    code, _, err = run(capsys, "summary", str(model), "iris", "--baseline", "7")
    assert code == 1 and "--baseline '7' is not a class" in err
    separated = tmp_path / "h0.safetensors"
    run(capsys, "train", "hours", "--penalty", "none", "--model-out", str(separated))
    code, _, err = run(capsys, "summary", str(separated), "hours")
    assert code == 3 and err.count("\n") == 1 and "complete separation" in err and "'hours'" in err


def test_probability_plot_shades_the_confidence_band(tmp_path, capsys):
    model = tmp_path / "h.safetensors"
    run(capsys, "train", "hours", "--model-out", str(model))
    code, out, _ = run(
        capsys, "plot", str(model), "hours", "--kind", "probability", "--out", str(tmp_path / "band.png")
    )
    assert code == 0 and "no confidence band" not in out
    separated = tmp_path / "h0.safetensors"
    run(capsys, "train", "hours", "--penalty", "none", "--model-out", str(separated))
    code, out, _ = run(
        capsys, "plot", str(separated), "hours", "--kind", "probability", "--out", str(tmp_path / "b0.png")
    )
    assert code == 0 and "no confidence band: complete separation" in out
    assert png_size(tmp_path / "band.png") == png_size(tmp_path / "b0.png")


def write_bad_tables(folder):
    """The files of issue 12's sixth item, each with what is wrong with it."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "dup.csv").write_text("a,a,y\n1,2,0\n2,3,1\n3,1,0\n")
    (folder / "inf.csv").write_text("x,y\n1,0\n2,inf\n3,1\n")
    (folder / "gz.csv").write_bytes(gzip.compress(b"x,y\n1,0\n2,1\n" * 50))
    (folder / "quoted.csv").write_text('x,y\n1,0\n"1,5",1\n3,1\n')
    good = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    for name, second in [
        ("lacks", good.rename_columns(["z", "y"])),
        ("strings", good.set_column(0, "x", pa.array(["1", "2", "x", "4"]))),
    ]:
        (folder / name).mkdir()
        pq.write_table(good, folder / name / "part-0.parquet")
        pq.write_table(second, folder / name / "part-1.parquet")
    (folder / "truncated").mkdir()
    pq.write_table(good, folder / "truncated" / "part-0.parquet")
    (folder / "truncated" / "part-1.parquet").write_bytes((folder / "truncated" / "part-0.parquet").read_bytes()[:300])
    (folder / "empty").mkdir()
    (folder / "readme").mkdir()
    pq.write_table(good, folder / "readme" / "part-0.parquet")
    (folder / "readme" / "README.txt").write_text("how this was made")


@pytest.mark.parametrize(
    "data, stream, message",
    [
        ("dup.csv", False, "dup.csv: column 'a' appears 2 times; rename one of them"),
        ("dup.csv", True, "dup.csv: column 'a' appears 2 times; rename one of them"),
        ("inf.csv", False, "inf.csv: target column 'y' holds inf at row 2"),
        ("inf.csv", True, "inf.csv: target column 'y' holds inf at row 2"),
        ("gz.csv", False, "gz.csv: is gzip-compressed but named .csv; rename it to gz.csv.gz"),
        ("quoted.csv", False, "quoted.csv: column 'x' is not numeric: row 2 holds '1,5'"),
        ("quoted.csv", True, "quoted.csv: column 'x' is not numeric (string): row 2 holds '1,5'"),
        ("lacks", True, "part-1.parquet: column 'x' not found; columns are z, y"),
        ("strings", True, "part-1.parquet: column 'x' is not numeric (string): row 3 holds 'x'"),
        ("truncated", True, "part-1.parquet: cannot read as parquet: "),
        ("empty", True, "empty: the folder holds no data files (.parquet, .csv)"),
        ("readme", True, "README.txt: not a data file (.parquet, .csv, .csv.gz)"),
    ],
)
def test_bad_tables_name_file_column_and_row(tmp_path, capsys, data, stream, message):
    write_bad_tables(tmp_path)
    args = ["train", str(tmp_path / data), "--target", "y", "--model-out", str(tmp_path / "m")] + ["--stream"] * stream
    code, out, err = run(capsys, *args)
    assert code == 3, err
    assert message in err and str(tmp_path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err and not (tmp_path / "m").exists()


def test_a_one_row_csv_names_file_column_and_row(tmp_path, capsys):
    (tmp_path / "one.csv").write_text("x,y\n1,1\n")
    code, _, err = run(capsys, "train", str(tmp_path / "one.csv"), "--target", "y")
    assert code == 3 and "one.csv: target column 'y' has the single class 1 in its 1 row" in err


def test_a_bool_target_is_false_true_in_memory_streamed_and_saved(tmp_path, capsys):
    (tmp_path / "b.csv").write_text("x,y\n" + "".join(f"{i},{str(i % 3 == 0).lower()}\n" for i in range(30)))
    for extra in ([], ["--stream"]):
        model = tmp_path / f"m{len(extra)}.safetensors"
        code, _, err = run(capsys, "train", str(tmp_path / "b.csv"), "--target", "y", "--model-out", str(model), *extra)
        assert code == 0, err
        loaded = load(model)
        assert loaded.classes_.tolist() == [False, True] and loaded.classes_.dtype == bool
        code, out, _ = run(capsys, "predict", str(model), str(tmp_path / "b.csv"))
        assert code == 0 and set(out.split()[1:]) <= {"true", "false"}  # CSV spelling of bools
        code, out, _ = run(capsys, "evaluate", str(model), str(tmp_path / "b.csv"), "--target", "y", "--json")
        assert code == 0 and json.loads(out)["n_samples"] == 30


def test_spark_output_folder_trains_and_reports_the_files_read(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "out").mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    pq.write_table(
        pa.table({"x": x, "y": (x + rng.normal(size=200) > 0).astype(int)}), tmp_path / "out" / "part-0.parquet"
    )
    (tmp_path / "out" / "_SUCCESS").write_text("")
    (tmp_path / "out" / ".part-0.parquet.crc").write_bytes(b"crc")
    code, out, err = run(capsys, "train", str(tmp_path / "out"), "--target", "y", "--stream")
    assert code == 0 and "converged" in out, err
    assert "read 1 data file (part-0.parquet); skipped 2 (.part-0.parquet.crc, _SUCCESS)" in out
