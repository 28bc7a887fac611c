"""Model files: safetensors + JSON, atomic, and every damaged file is refused clearly."""

import json
import struct

import numpy as np
import pytest
import torch

from conftest import CUDA
from test_parity import binary_problem, multinomial_problem
from torchlogit import LinearRegression, LogisticRegression, ModelFileError, Ridge, load


def _fit(labels=None):
    X, y = multinomial_problem(n=300, d=3, k=3)
    if labels is not None:
        y = np.array(labels)[y]
    return LogisticRegression(C=0.5).fit(X, y), X


@pytest.mark.parametrize("labels", [None, ["cat", "dog", "emu"], [10, 20, 30]])
def test_round_trip_predictions_identical(tmp_path, labels):
    model, X = _fit(labels)
    path = tmp_path / "m.safetensors"
    model.save(path)
    again = load(path)
    assert type(again) is LogisticRegression and again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.loss_curve_ == model.loss_curve_ and again.solver_ == model.solver_


def test_round_trip_regressors_and_feature_names(tmp_path):
    import pandas as pd

    X, y = binary_problem(n=100, d=2)
    for model in [LinearRegression(), Ridge(alpha=2.0)]:
        df = pd.DataFrame(X, columns=["hours", "sleep"])
        model.fit(df, y.astype(float))
        model.save(tmp_path / "r.st")
        again = load(tmp_path / "r.st")
        assert list(again.feature_names_in_) == ["hours", "sleep"] and again.get_params() == model.get_params()
        np.testing.assert_array_equal(again.predict(df), model.predict(df))


def test_no_pickle_in_the_file(tmp_path):
    model, _ = _fit()
    model.save(tmp_path / "m.st")
    data = (tmp_path / "m.st").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])  # plain JSON, then raw numbers
    assert set(header) == {"coef", "intercept", "__metadata__"}
    assert b"\x80\x04" not in data[: 8 + n] and b"pickle" not in data


def test_save_is_atomic(tmp_path, monkeypatch):
    model, _ = _fit()
    path = tmp_path / "m.st"
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("torchlogit._io.os.replace", crash)
    with pytest.raises(OSError):
        LogisticRegression(C=9.0).fit(*binary_problem(n=50)).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.st"]  # no temporary left behind


def _saved(tmp_path):
    model, _ = _fit()
    model.save(tmp_path / "m.st")
    return tmp_path / "m.st", (tmp_path / "m.st").read_bytes()


def test_truncated_file(tmp_path):
    path, data = _saved(tmp_path)
    for cut in [4, 50, len(data) - 5]:
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|too short|corrupt"):
            load(path)


def test_tampered_tensor_bytes(tmp_path):
    path, data = _saved(tmp_path)
    tampered = bytearray(data)
    tampered[-3] ^= 0xFF
    path.write_bytes(bytes(tampered))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(path)


def _rewrite_metadata(path, data, edit):
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["torchlogit"])
    edit(meta)
    header["__metadata__"]["torchlogit"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])


def test_newer_format_version(tmp_path):
    path, data = _saved(tmp_path)
    _rewrite_metadata(path, data, lambda m: m.update(format_version=99))
    with pytest.raises(ModelFileError, match="newer than this torchlogit reads"):
        load(path)


def test_not_a_model(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    save_file({"w": torch.zeros(2)}, tmp_path / "other.st")
    for name, match in [("x.csv", "not a torchlogit model"), ("other.st", "no torchlogit metadata"),
                        ("missing.st", "no such model file")]:  # fmt: skip
        with pytest.raises(ModelFileError, match=match):
            load(tmp_path / name)


@CUDA
def test_gpu_model_loads_on_cpu(tmp_path):
    model = LogisticRegression(device="cuda").fit(*binary_problem(n=200))
    model.save(tmp_path / "g.st")
    cpu = load(tmp_path / "g.st", device="cpu")
    X, _ = binary_problem(n=200)
    np.testing.assert_allclose(cpu.predict_proba(X), model.predict_proba(X), rtol=1e-6)


def test_cuda_model_falls_back_when_no_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    path, data = _saved(tmp_path)
    _rewrite_metadata(path, data, lambda m: m["params"].update(device="cuda"))
    model = load(path)
    assert model.device == "auto"
    model.predict(np.zeros((2, 3)))


def test_saved_file_has_ordinary_permissions(tmp_path):
    import os

    model, _ = _fit()
    model.save(tmp_path / "m.st")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.st").stat().st_mode & 0o777 == 0o666 & ~umask
