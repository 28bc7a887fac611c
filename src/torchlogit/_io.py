"""Model files: tensors in safetensors, everything else as JSON metadata. No pickle.

Layout of a file (the safetensors format)::

    8 bytes   little-endian u64: N, the header length
    N bytes   JSON header: tensor names, dtypes, shapes, byte offsets, and
              "__metadata__": {"torchlogit": "<our JSON, see ``_metadata``>"}
    ...       raw tensor bytes (coef, intercept)

Loading parses JSON and raw numbers only, so a file never runs code. The
metadata carries a SHA-256 of the tensor bytes, so a truncated or edited file
is refused with a clear message. Writes go to a temporary file in the same
folder that is renamed over the target: a crash mid-save leaves the old file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT = "torchlogit-model"
FORMAT_VERSION = 1
_LABEL_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


class ModelFileError(ValueError):
    """A file that is not a readable torchlogit model (missing, truncated, tampered, newer)."""


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp creates 0600; give the file the mode a plain open() would (or the old file's)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable_params(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, (torch.device, torch.dtype)) or (isinstance(value, type) and issubclass(value, np.generic)):
            value = str(value).replace("torch.", "").replace("<class 'numpy.", "").rstrip("'>")
        elif isinstance(value, dict):  # class_weight: labels may be ints, so keep pairs
            value = {"__pairs__": [[_label_to_json(k), float(v)] for k, v in value.items()]}
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = None  # e.g. a RandomState instance: not reproducible from a file
        out[key] = value
    return out


def _label_to_json(label):
    if isinstance(label, (np.generic,)):
        label = label.item()
    if not isinstance(label, (str, int, float, bool)):
        raise ModelFileError(f"class label {label!r} of type {type(label).__name__} cannot be stored; use str or int labels")
    return label


def _params_from_json(params: dict) -> dict:
    return {
        k: ({_k: v for _k, v in v["__pairs__"]} if isinstance(v, dict) and "__pairs__" in v else v)
        for k, v in params.items()
    }


def _digest(tensors: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def _metadata(model, tensors) -> dict:
    from . import __version__

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torchlogit_version": __version__,
        "estimator": type(model).__name__,
        "params": _jsonable_params(model.get_params()),
        "n_features_in": int(model.n_features_in_),
        "feature_names": [str(f) for f in getattr(model, "feature_names_in_", [])] or None,
        "n_iter": [int(i) for i in np.atleast_1d(getattr(model, "n_iter_", []))],
        "solver": getattr(model, "solver_", None),
        "objective": getattr(model, "objective_", None),
        "loss_curve": [float(v) for v in getattr(model, "loss_curve_", [])],
        "intercept_scalar": not hasattr(model, "classes_"),
        "sha256": _digest(tensors),
    }
    if hasattr(model, "classes_"):
        labels = [_label_to_json(c) for c in model.classes_]
        kinds = {type(c).__name__ for c in labels}
        if len(kinds) != 1:
            raise ModelFileError(f"class labels of mixed types {sorted(kinds)} cannot be stored")
        meta["classes"] = {"type": kinds.pop(), "values": labels}
    return meta


def save_model(model, path) -> None:
    """Store a fitted estimator at ``path`` (atomic; see the module docstring)."""
    from safetensors.torch import save as st_save
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    tensors = {
        "coef": torch.from_numpy(np.ascontiguousarray(np.atleast_1d(model.coef_))),
        "intercept": torch.from_numpy(np.ascontiguousarray(np.atleast_1d(model.intercept_))),
    }
    meta = _metadata(model, tensors)
    data = st_save(tensors, metadata={"torchlogit": json.dumps(meta)})
    atomic_write_bytes(path, data)


def _read_header(data: bytes, path) -> tuple[dict, int]:
    if len(data) < 8:
        raise ModelFileError(f"{path}: not a torchlogit model (file too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ModelFileError(f"{path}: not a torchlogit model, or truncated (header runs past the end of the file)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: not a torchlogit model (no safetensors header)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a torchlogit model (malformed header)")
    return header, 8 + n


def read_metadata(path) -> dict:
    """The JSON metadata of a model file, checked for format and version."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    data = path.read_bytes()
    header, _ = _read_header(data, path)
    raw = (header.get("__metadata__") or {}).get("torchlogit")
    if raw is None:
        raise ModelFileError(f"{path}: a safetensors file, but not a torchlogit model (no torchlogit metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelFileError(f"{path}: the torchlogit metadata is not valid JSON (file edited?)") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a torchlogit model (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {version} is newer than this torchlogit reads "
            f"({FORMAT_VERSION}); upgrade torchlogit"
        )
    return meta


def load_model(path, device=None):
    """Read a model saved by :func:`save_model`. Returns the fitted estimator.

    ``device``: where the loaded model computes; None keeps the saved setting,
    except that a model trained on a GPU falls back to 'auto' on a machine
    without one.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from ._linear import LinearRegression, Ridge
    from ._logistic import LogisticRegression

    estimators = {cls.__name__: cls for cls in (LogisticRegression, LinearRegression, Ridge)}
    path = Path(path)
    meta = read_metadata(path)
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: truncated or corrupt tensor data ({exc})") from None
    if set(tensors) != {"coef", "intercept"} or _digest(tensors) != meta.get("sha256"):
        raise ModelFileError(f"{path}: checksum mismatch: the file was modified or damaged after saving")
    cls = estimators.get(meta.get("estimator"))
    if cls is None:
        raise ModelFileError(f"{path}: unknown estimator {meta.get('estimator')!r}")
    params = _params_from_json(meta["params"])
    if device is not None:
        params["device"] = device
    elif str(params.get("device", "auto")).startswith("cuda") and not torch.cuda.is_available():
        params["device"] = "auto"
    try:
        model = cls(**params)
    except TypeError as exc:
        raise ModelFileError(f"{path}: parameters do not match {cls.__name__} ({exc})") from None

    coef, intercept = tensors["coef"].numpy(), tensors["intercept"].numpy()
    model.coef_ = coef
    model.intercept_ = float(intercept[0]) if meta.get("intercept_scalar") else intercept
    model.n_features_in_ = int(meta["n_features_in"])
    if meta.get("feature_names"):
        model.feature_names_in_ = np.array(meta["feature_names"], dtype=object)
    if "classes" in meta:
        kind = _LABEL_TYPES.get(meta["classes"]["type"])
        if kind is None:
            raise ModelFileError(f"{path}: unknown class label type {meta['classes']['type']!r}")
        values = [kind(v) for v in meta["classes"]["values"]]
        model.classes_ = np.array(values, dtype=object if kind is str else None)
        if kind is str:
            model.classes_ = model.classes_.astype(str)
    model.n_iter_ = np.array(meta.get("n_iter") or [0], dtype=np.int32)
    model.solver_ = meta.get("solver")
    model.objective_ = meta.get("objective")
    model.loss_curve_ = list(meta.get("loss_curve") or [])
    return model
