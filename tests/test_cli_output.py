"""The CLI checks where it will write before it works, and Ctrl-C is quiet at any moment (issue 12, item 5)."""

import importlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchlogit.cli import main

train_module = importlib.import_module("torchlogit.cli.train")  # the package's `train` is the verb function


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def model(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    assert run(capsys, "train", "hours", "--model-out", str(path))[0] == 0
    return path


def _bad_destinations(tmp_path):
    """(path, what the message says): a missing folder, a folder in the way, a file used as a folder."""
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "a-folder").mkdir()
    return [
        (tmp_path / "missing" / "out.bin", "does not exist"),
        (tmp_path / "a-folder", "it is a folder"),
        (tmp_path / "file.txt" / "out.bin", "is not a folder"),
    ]


def _only_one_line_naming(err, path, reason):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: cannot write") and reason in lines[0], err
    assert ".tmp" not in err


def test_train_refuses_a_bad_model_out_before_reading_data_or_fitting(tmp_path, capsys, monkeypatch):
    fits = []
    monkeypatch.setattr(train_module.LogisticRegression, "fit", lambda *a, **k: fits.append(1))
    for path, reason in _bad_destinations(tmp_path):
        # the data file does not exist either: exit 8 (not 3) shows the output was checked first
        code, _, err = run(capsys, "train", str(tmp_path / "no-such.csv"), "--target", "y", "--model-out", str(path))
        assert code == 8
        _only_one_line_naming(err, path, reason)
        code, _, err = run(capsys, "train", "hours", "--stream", "--target", "pass", "--model-out", str(path))
        assert code == 8
    assert fits == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "file.txt"]  # nothing left behind


@pytest.mark.parametrize("verb", ["predict", "plot"])
def test_predict_and_plot_refuse_a_bad_out_before_reading_the_model(tmp_path, capsys, verb):
    for path, reason in _bad_destinations(tmp_path):
        # the model file does not exist: exit 8 (not 4) shows the output was checked first
        code, _, err = run(capsys, verb, str(tmp_path / "no-model.safetensors"), "hours", "--out", str(path))
        assert code == 8
        _only_one_line_naming(err, path, reason)


def test_demo_refuses_an_out_folder_it_cannot_create(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    code, out, err = run(capsys, "demo", "--out", str(tmp_path / "file.txt"))
    assert code == 8 and out == "" and "file.txt" in err and len(err.strip().splitlines()) == 1


def test_a_read_only_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """Root may write anywhere, so the operating system's refusal is simulated where the write would start."""

    def read_only(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", f"{dir}/.x.tmp")

    monkeypatch.setattr("torchlogit._atomic.tempfile.mkstemp", read_only)
    code, _, err = run(capsys, "train", "hours", "--model-out", str(tmp_path / "m.safetensors"))
    assert code == 8
    _only_one_line_naming(err, tmp_path / "m.safetensors", "no permission to write in folder")


def test_a_good_destination_is_left_as_it_was_by_the_check(tmp_path, capsys, model):
    out = tmp_path / "p.csv"
    out.write_text("old")
    code, _, err = run(capsys, "predict", str(model), "hours", "--out", str(out))
    assert code == 0, err
    assert out.read_text().startswith('"prediction"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "p.csv"]  # no probe left


def _until_torch_loads(pid, timeout=60.0):
    """Wait until the process has begun to load torch (its library mapped), which the CLI does only after its
    quiet SIGINT handler is in place: a signal before that would land in the interpreter's own start-up (seen
    once on a loaded machine, at 0.05 s), which no program can catch. Without /proc, return at once."""
    maps = Path(f"/proc/{pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                return
        except OSError:
            return  # no /proc, or the process has ended: the caller's timing applies as it is
        time.sleep(0.002)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 0.8, 1.5, 3.0])
def test_ctrl_c_is_quiet_at_start_up_and_during_training(delay):
    """SIGINT while torch loads (``delay`` after it begins to, the first second or two) or while training:
    exit 130, nothing printed."""
    command = [sys.executable, "-m", "torchlogit", "train", "breast-cancer", "--solver", "sgd", "--max-iter", "100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _until_torch_loads(process.pid)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()[-2000:]
    assert err == b"", err.decode()[-2000:]
