"""Model files: safetensors + JSON, atomic, and every damaged file is refused clearly."""

import errno
import hashlib
import json
import struct
from pathlib import Path

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

    monkeypatch.setattr("torchlogit._atomic.os.replace", crash)
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
    for name, match in [
        ("x.csv", "not a torchlogit model"),
        ("other.st", "no torchlogit metadata"),
        ("missing.st", "no such model file"),
    ]:
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
    model, _ = _fit()
    model.set_params(device="cuda").save(tmp_path / "m.st")  # as if trained on a GPU
    model = load(tmp_path / "m.st")
    assert model.device == "auto"
    model.predict(np.zeros((2, 3)))


@pytest.mark.parametrize("device", ["mps", "xpu", "cuda:7"])
def test_a_model_of_a_gpu_this_machine_lacks_falls_back(tmp_path, device):
    """Trained on a Mac's GPU, another vendor's, or the 8th CUDA GPU: predicts here (was a RuntimeError in predict)."""
    model, X = _fit()
    model.set_params(device=device).save(tmp_path / "m.st")
    again = load(tmp_path / "m.st")
    if again.device == device:
        pytest.skip(f"this machine has {device}")
    assert again.device == "auto"
    np.testing.assert_array_equal(again.predict(X), model.set_params(device="auto").predict(X))


def test_saved_file_has_ordinary_permissions(tmp_path):
    import os

    model, _ = _fit()
    model.save(tmp_path / "m.st")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.st").stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------- integrity: every edit is refused
# The layout the module docstring of torchlogit._io documents: compact JSON header, __metadata__ first,
# the digest right after this prefix, computed over the file with its 64 digits read as '0's.
PREFIX = b'{"__metadata__":{"torchlogit_sha256":"'


def _split(data):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _build(header, body, resign=False):
    """A file laid out as save_model writes it; resign: recompute the digest, as someone forging a file would."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    data = struct.pack("<Q", len(text)) + text + body
    return _resign(data) if resign else data


def _resign(data):
    at = 8 + len(PREFIX)
    assert data[8:at] == PREFIX
    digest = hashlib.sha256(data[:at] + b"0" * 64 + data[at + 64 :]).hexdigest().encode()
    return data[:at] + digest + data[at + 64 :]


def _edit_meta(data, edit, resign=False):
    header, body = _split(data)
    meta = json.loads(header["__metadata__"]["torchlogit"])
    edit(meta)
    header["__metadata__"]["torchlogit"] = json.dumps(meta)
    return _build(header, body, resign)


def _save(tmp_path, model, name="m.st"):
    model.save(tmp_path / name)
    data = (tmp_path / name).read_bytes()
    assert _edit_meta(data, lambda m: None) == data and _resign(data) == data  # the helpers rebuild it exactly
    return tmp_path / name, data


def _refused(path, data, match="checksum mismatch"):
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match=match) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    return str(info.value)


def _binary_labelled():
    X, y = binary_problem(n=200, d=3)
    return LogisticRegression().fit(X, np.array(["no", "yes"])[y])


def _regressor_with_names():
    import pandas as pd

    X, y = binary_problem(n=100, d=3)
    return Ridge(alpha=2.0).fit(pd.DataFrame(X, columns=["hours", "sleep", "age"]), y.astype(float))


def _swap(key):
    return lambda m: m[key].__setitem__("values", m[key]["values"][::-1])


@pytest.mark.parametrize(
    "make, edit",
    [
        (_binary_labelled, _swap("classes")),  # the two classes swapped: every prediction flips
        (lambda: _fit()[0], lambda m: m["classes"].update(values=[7, 8, 9])),  # relabelled
        (lambda: _fit(["cat", "dog", "emu"])[0], lambda m: m["classes"].update(values=["cat", "emu", "dog"])),
        (_regressor_with_names, lambda m: m.update(feature_names=["sleep", "hours", "age"])),  # reordered
        (_regressor_with_names, lambda m: m.update(intercept_scalar=False)),
        (lambda: _fit()[0], lambda m: m["params"].update(C=2.0)),
        (lambda: _fit()[0], lambda m: m.update(loss_curve=[1.0])),
    ],
)
def test_edited_metadata_is_refused(tmp_path, make, edit):
    path, data = _save(tmp_path, make())
    _refused(path, _edit_meta(data, edit))


@pytest.mark.parametrize(
    "old, new",
    [
        (b'"dtype":"F64","shape":[3,3]', b'"dtype":"I64","shape":[3,3]'),  # same bytes read as integers
        (b'"shape":[3,3]', b'"shape":[1,9]'),  # same bytes, another shape
        (b'"shape":[3,3]', b'"shape":[9]  '),  # the spaces keep the header's length
        (b'\\"format\\": \\"', b'\\"format\\" :\\"'),  # even JSON whitespace: no byte is left unchecked
    ],
)
def test_edited_tensor_header_is_refused(tmp_path, old, new):
    path, data = _save(tmp_path, _fit()[0])
    assert data.count(old) == 1 and len(old) == len(new)
    _refused(path, data.replace(old, new))


def test_random_byte_flips_are_all_refused(tmp_path):
    model, X = _fit(["cat", "dog", "emu"])
    path, data = _save(tmp_path, model)
    (n,) = struct.unpack("<Q", data[:8])
    rng = np.random.default_rng(12)
    where = []
    for _ in range(200):
        flipped = bytearray(data)
        i = int(rng.integers(len(data)))
        flipped[i] ^= int(rng.integers(1, 256))
        _refused(path, bytes(flipped), match=None)
        where.append(i)
    # the flips landed everywhere: length, header (metadata and the digest itself) and tensor bytes
    assert min(where) < 8 and max(where) >= 8 + n and any(8 + len(PREFIX) <= i < 8 + len(PREFIX) + 64 for i in where)


def test_every_single_bit_flip_is_refused(tmp_path):
    path, data = _save(tmp_path, _binary_labelled())
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            flipped = bytearray(data)
            flipped[i] ^= bit
            path.write_bytes(bytes(flipped))
            with pytest.raises(ModelFileError):
                load(path)


def _forge_tensor(data, name, dtype, shape):
    header, body = _split(data)
    header[name].update(dtype=dtype, shape=shape)
    return _build(header, body, resign=True)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["classes"].update(values=[0, 1, 2, 3]), r"do not fit 3 features and 4 classes"),
        (lambda m: m["classes"].update(values=[0, 1]), r"do not fit 3 features and 2 classes"),  # binary: 1 row
        (_swap("classes"), "not distinct and sorted"),
        (lambda m: m["classes"].update(values=[0, 0, 1]), "not distinct and sorted"),
        (lambda m: m["classes"].update(values=[0, "1", 2]), "labels of type int"),
        (lambda m: m["classes"].update(type="complex"), "unknown class label type"),
        (lambda m: m.pop("classes"), "do not match a LogisticRegression"),
        (lambda m: m.update(intercept_scalar=True), "do not match a LogisticRegression"),
        (lambda m: m.update(estimator="Ridge"), "do not match (a )?Ridge"),
        (lambda m: m.update(estimator="os.system"), "unknown estimator"),
        (lambda m: m.update(n_features_in=4), r"do not fit 4 features"),
        (lambda m: m.update(n_features_in=True), "'n_features_in' has an invalid value"),
        (lambda m: m.update(feature_names=["a", "b"]), "2 feature names for 3 features"),
        (lambda m: m.update(feature_names=[1, 2, 3]), "'feature_names' has an invalid value"),
        (
            lambda m: m.update(feature_names=["a", "b", "a"]),
            "feature name 'a' appears more than once",
        ),  # found by fuzzing
        (lambda m: m.update(n_iter=["many"]), "'n_iter' has an invalid value"),
        (lambda m: m.update(loss_curve="low"), "'loss_curve' has an invalid value"),
        (lambda m: m.update(solver=3), "'solver' has an invalid value"),
        (lambda m: m.update(torchlogit_version=None), "'torchlogit_version' has an invalid value"),
        (lambda m: m.update(extra=1), r"\['extra'\] are unexpected"),
        (lambda m: m.pop("n_iter"), r"\['n_iter'\] are missing"),
        (lambda m: m.update(params=[]), "'params' has an invalid value"),
        (lambda m: m["params"].update(C=-1.0), "parameters do not match LogisticRegression"),
        (lambda m: m["params"].update(solver="magic"), "parameters do not match LogisticRegression"),
        (lambda m: m["params"].update(alpha=1.0), "parameters do not match LogisticRegression"),
        (lambda m: m["params"].update(dtype="float16"), "'dtype' has an invalid value"),
        (lambda m: m["params"].update(device="warp-drive"), "'device' has an invalid value"),
        # devices torch names but no model is trained on: they loaded, then predict failed (found by fuzzing)
        (lambda m: m["params"].update(device="meta"), "'device' has an invalid value 'meta'"),
        (lambda m: m["params"].update(device="hpu"), "'device' has an invalid value 'hpu'"),
        (lambda m: m["params"].update(class_weight={"__pairs__": [[0]]}), "'class_weight' has an invalid value"),
        (lambda m: m.update(convergence={"solver": "lbfgs"}), "'convergence' has an invalid value"),
        (lambda m: m["convergence"].update(n_iter=-1), "'convergence' has an invalid value"),
        (lambda m: m["convergence"].update(duality_gap="small"), "'convergence' has an invalid value"),
    ],
)
def test_forged_metadata_is_refused(tmp_path, edit, match):
    """A file edited on purpose, digest recomputed: still refused at load, never accepted or failing later."""
    path, data = _save(tmp_path, _fit()[0])
    _refused(path, _edit_meta(data, edit, resign=True), match)


@pytest.mark.parametrize(
    "name, dtype, shape, match",
    [
        ("coef", "I64", [3, 3], "dtype 'I64'"),
        ("coef", "F16", [3, 3], "dtype 'F16'"),
        ("coef", "F64", [1, 9], r"coef \(1, 9\) and intercept \(3,\) do not fit"),
        ("coef", "F64", [9], r"do not fit 3 features"),
        ("intercept", "F64", [3, 1], r"do not fit 3 features"),
        ("coef", "F64", [3, 4], "offsets .* do not match its shape"),
        ("coef", "F32", [3, 3], "offsets .* do not match its shape"),
    ],
)
def test_forged_tensor_header_is_refused(tmp_path, name, dtype, shape, match):
    path, data = _save(tmp_path, _fit()[0])
    _refused(path, _forge_tensor(data, name, dtype, shape), match)


def test_version_1_files_are_refused(tmp_path):
    """Version 1 hashed the tensors only, so its metadata cannot be trusted: refused, with what to do."""
    from safetensors.torch import save as st_save

    model, _ = _fit()
    tensors = {"coef": torch.from_numpy(model.coef_), "intercept": torch.from_numpy(model.intercept_)}
    path, data = _save(tmp_path, model)
    meta = json.loads(_split(data)[0]["__metadata__"]["torchlogit"])
    digest = hashlib.sha256(b"".join(n.encode() + tensors[n].numpy().tobytes() for n in sorted(tensors)))
    meta.update(format_version=1, sha256=digest.hexdigest())
    message = _refused(path, st_save(tensors, metadata={"torchlogit": json.dumps(meta)}), "format version 1")
    assert "train the model again" in message


def test_other_safetensors_readers_open_the_file(tmp_path):
    from safetensors import safe_open

    model, _ = _fit()
    path, _ = _save(tmp_path, model)
    with safe_open(path, framework="np") as fh:
        np.testing.assert_array_equal(fh.get_tensor("coef"), model.coef_)
        np.testing.assert_array_equal(fh.get_tensor("intercept"), model.intercept_)
        assert json.loads(fh.metadata()["torchlogit"])["classes"]["values"] == [0, 1, 2]


def test_float32_model_keeps_its_dtype(tmp_path):
    X, y = binary_problem(n=200, d=3)
    model = LogisticRegression().fit(X.astype(np.float32), y)
    path, data = _save(tmp_path, model)
    assert b'"dtype":"F32"' in data
    again = load(path)
    assert again.coef_.dtype == np.float32
    np.testing.assert_array_equal(again.predict_proba(X.astype(np.float32)), model.predict_proba(X.astype(np.float32)))


def test_save_refuses_a_model_load_would_refuse(tmp_path):
    model, _ = _fit()
    model.coef_ = model.coef_[:, :2]  # set by hand, no longer fits n_features_in_
    with pytest.raises(ModelFileError, match=r"m.st: not saved: coef \(3, 2\)"):
        model.save(tmp_path / "m.st")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", ["predict", "evaluate", "summary"])
@pytest.mark.parametrize(
    "tamper",
    [
        lambda data: _edit_meta(data, _swap("classes")),
        lambda data: data.replace(b'"dtype":"F64"', b'"dtype":"I64"', 1),
        lambda data: _edit_meta(data, lambda m: m.update(n_features_in=2), resign=True),
    ],
)
def test_cli_refuses_a_tampered_model_with_exit_4(tmp_path, capsys, verb, tamper):
    from torchlogit.cli import main

    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,0\n2,1\n3,0\n4,1\n5,1\n0,0\n")
    model = tmp_path / "m.st"
    assert main(["train", str(csv), "--target", "y", "--model-out", str(model)]) == 0
    model.write_bytes(tamper(model.read_bytes()))
    capsys.readouterr()
    code = main([verb, str(model), str(csv)] + ([] if verb == "predict" else ["--target", "y"]))
    err = capsys.readouterr().err
    assert code == 4, err
    assert len(err.strip().splitlines()) == 1 and f"{model}: " in err and "Traceback" not in err


# ---------------------------------------------------------------- atomic writes: errors and signals
def test_write_errors_name_the_users_path(tmp_path, monkeypatch):
    from torchlogit._atomic import OutputError, atomic_write_bytes

    cases = [
        (tmp_path / "nowhere" / "m.st", errno.ENOENT, "folder '.*nowhere' does not exist"),
        (tmp_path, errno.EISDIR, "it is a folder"),
        (tmp_path / "f.txt" / "m.st", errno.ENOTDIR, "is not a folder"),
    ]
    (tmp_path / "f.txt").write_text("x")
    for path, code, match in cases:
        with pytest.raises(OutputError, match=match) as info:
            atomic_write_bytes(path, b"data")
        assert str(info.value).startswith(f"{path}: cannot write: ") and ".tmp" not in str(info.value)
        assert info.value.errno == code

    def read_only(*args, dir=None, **kwargs):  # root may write anywhere, so simulate a read-only folder
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".m.st.x1y2.tmp"))

    monkeypatch.setattr("torchlogit._atomic.tempfile.mkstemp", read_only)
    with pytest.raises(OutputError, match="no permission to write in folder") as info:
        atomic_write_bytes(tmp_path / "m.st", b"data")
    assert str(info.value).startswith(f"{tmp_path / 'm.st'}: cannot write: ") and ".tmp" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


_KILLED_WHILE_WRITING = """
import os, signal, sys
from torchlogit._atomic import atomic_write_bytes

if sys.argv[3] == "SIG_DFL":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as under some process managers: the signal just kills
real_fsync = os.fsync

def fsync_then_signal(fd):  # the signal comes after the data is on disk, before the rename
    real_fsync(fd)
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))

os.fsync = fsync_then_signal
atomic_write_bytes(sys.argv[1], b"new contents")
print("not reached")
"""


@pytest.mark.parametrize("sig, handler", [("SIGTERM", "as started"), ("SIGINT", "as started"), ("SIGINT", "SIG_DFL")])
def test_signal_while_writing_leaves_no_temporary(tmp_path, sig, handler):
    import signal
    import subprocess
    import sys

    target = tmp_path / "m.st"
    target.write_bytes(b"old contents")
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_WRITING, str(target), sig, handler],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -getattr(signal, sig), done.stderr  # the process still ends by the signal
    assert "not reached" not in done.stdout
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["m.st"]


def test_signal_handlers_restored_and_threads_work(tmp_path):
    import signal
    import threading

    from torchlogit._atomic import atomic_write_bytes

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    atomic_write_bytes(tmp_path / "a", b"a")
    assert {s: signal.getsignal(s) for s in before} == before
    errors = []
    worker = threading.Thread(target=lambda: _catch(errors, atomic_write_bytes, tmp_path / "b", b"b"))
    worker.start()
    worker.join()
    assert errors == [] and (tmp_path / "b").read_bytes() == b"b"


def _catch(errors, f, *args):
    try:
        f(*args)
    except Exception as exc:  # noqa: BLE001 - reported to the main thread
        errors.append(exc)


def test_the_convergence_record_round_trips_and_is_optional(tmp_path):
    """model.convergence_ (solver, iterations, duality gap) is stored; a file saved before it existed still loads."""
    model = _fit()[0]
    path, data = _save(tmp_path, model)
    assert load(path).convergence_ == model.convergence_ and model.convergence_.duality_gap is not None
    path.write_bytes(_edit_meta(data, lambda m: m.pop("convergence"), resign=True))
    older = load(path)
    assert not hasattr(older, "convergence_")
    older.save(path)  # and saving it again writes no record it does not have
    assert not hasattr(load(path), "convergence_")
