"""Model files: tensors in safetensors, everything else as JSON metadata. No pickle.

A model file (format version 2) is a :mod:`torchlogit._safefile` container
(safetensors whose header carries our JSON metadata and a SHA-256 of every
byte of the file) holding two tensors, ``coef`` and ``intercept``, F32 or F64.
The metadata's optional ``convergence`` field records how the fit ended
(``model.convergence_``: solver, iterations, duality gap); files saved before
it was added load without it.
Any change to a saved file, a single flipped bit included, is refused with
:class:`ModelFileError`. The digest detects damage and edits, not forgery:
whoever edits a file on purpose can recompute it. So loading also checks every
field (types, ranges, and that classes, feature names and tensor shapes agree)
and refuses anything ``save_model`` would not have written, again with
``ModelFileError``, so that a bad file never fails later, inside ``predict``.

Version 1 files (torchlogit 0.1.0 before this layout) hashed only the tensor
bytes, so an edited label or dtype in them cannot be told from a genuine one.
They are refused with a message saying to train and save the model again:
accepting them, even with a warning, would break "an edited model file is
always refused", and a warning is easily missed in a batch job.

Loading parses JSON and raw numbers only, so a file never runs code.

Writes go through :func:`torchlogit._atomic.atomic_write_bytes`: the target
is always either the old file or the complete new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._atomic import atomic_write_bytes
from ._convergence import ConvergenceReport
from ._safefile import Invalid as _Invalid
from ._safefile import checked_metadata, encode, read_tensors

FORMAT = "torchlogit-model"
FORMAT_VERSION = 2
_LABEL_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_TENSORS = ("coef", "intercept")
_TENSOR_DTYPES = {"F32", "F64"}
_OLDER = (
    "model file format version {version} is no longer read: its checksum does not cover the metadata, "
    "so an edited file cannot be told from a good one; train the model again and save it with this torchlogit"
)


class ModelFileError(ValueError):
    """A file that is not a readable torchlogit model (missing, truncated, tampered, newer)."""


# ------------------------------------------------------------------ saving
def _jsonable_params(params: dict) -> dict:
    import torch

    out = {}
    for key, value in params.items():
        if isinstance(value, (torch.device, torch.dtype)) or (
            isinstance(value, type) and issubclass(value, np.generic)
        ):
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
        raise ModelFileError(
            f"class label {label!r} of type {type(label).__name__} cannot be stored; use str or int labels"
        )
    return label


def _metadata(model) -> dict:
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
        "objective": None if getattr(model, "objective_", None) is None else float(model.objective_),
        "loss_curve": [float(v) for v in getattr(model, "loss_curve_", [])],
        "intercept_scalar": not hasattr(model, "classes_"),
    }
    report = getattr(model, "convergence_", None)
    if report is not None:  # how the fit ended (duality gap, ...): optional, older version-2 files lack it
        meta["convergence"] = report.to_json()
    if hasattr(model, "classes_"):
        labels = [_label_to_json(c) for c in model.classes_]
        kinds = {type(c).__name__ for c in labels}
        if len(kinds) != 1:
            raise ModelFileError(f"class labels of mixed types {sorted(kinds)} cannot be stored")
        meta["classes"] = {"type": kinds.pop(), "values": labels}
    return meta


def _as_stored(name, value) -> np.ndarray:
    """A fitted array as little-endian float32/float64, the only dtypes a model file holds."""
    if hasattr(value, "toarray"):  # a sparsify()-ed coef_: stored dense (loaded dense, as densify() would)
        value = value.toarray()
    a = np.atleast_1d(np.asarray(value))
    if a.dtype.kind in "biu" or (a.dtype.kind == "f" and a.dtype.itemsize not in (4, 8)):
        a = a.astype(np.float64)  # ints, bools, float16: exact in float64
    if a.dtype.kind != "f":
        raise ModelFileError(f"{name} of dtype {a.dtype} cannot be stored; a model file holds float32 or float64")
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))


def save_model(model, path) -> None:
    """Store a fitted estimator at ``path`` (atomic; see the module docstring)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    meta = _metadata(model)
    tensors = {"coef": _as_stored("coef_", model.coef_), "intercept": _as_stored("intercept_", model.intercept_)}
    data = encode(meta, tensors)
    try:  # never write a file that load_model would refuse (e.g. a coef_ set by hand with the wrong shape)
        _decode(data, {type(model).__name__: type(model)})
    except _Invalid as exc:
        raise ModelFileError(f"{path}: not saved: {exc}") from None
    atomic_write_bytes(path, data)


# ------------------------------------------------------------------ loading
def _checked(data: bytes):
    """(header, metadata, start of tensor data) of a model file whose format, version and digest are right."""
    return checked_metadata(data, FORMAT, FORMAT_VERSION, "model", older=_OLDER)


def _is_int(x) -> bool:
    return type(x) is int


def _is_number(x) -> bool:
    return type(x) in (int, float)


_FIELDS = {  # every metadata field and the test it must pass
    "format": lambda v: v == FORMAT,
    "format_version": lambda v: v == FORMAT_VERSION,
    "torchlogit_version": lambda v: isinstance(v, str),
    "estimator": lambda v: isinstance(v, str),
    "params": lambda v: isinstance(v, dict),
    "n_features_in": lambda v: _is_int(v) and v >= 1,
    "feature_names": lambda v: v is None or (isinstance(v, list) and all(isinstance(s, str) for s in v)),
    "n_iter": lambda v: isinstance(v, list) and all(_is_int(i) and 0 <= i < 2**31 for i in v),
    "solver": lambda v: v is None or isinstance(v, str),
    "objective": lambda v: v is None or _is_number(v),
    "loss_curve": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    "intercept_scalar": lambda v: isinstance(v, bool),
    "classes": lambda v: isinstance(v, dict) and set(v) == {"type", "values"} and isinstance(v["values"], list),
    "convergence": lambda v: ConvergenceReport.from_json(v) is not None,
}
_OPTIONAL = {"classes", "convergence"}  # classes: classifiers only; convergence: files saved since it was added


def _check_fields(meta: dict) -> None:
    unknown = sorted(set(meta) - set(_FIELDS))
    missing = sorted(set(_FIELDS) - set(meta) - _OPTIONAL)
    if unknown or missing:
        raise _Invalid(f"metadata fields {unknown or missing} are {'unexpected' if unknown else 'missing'}")
    for field, ok in _FIELDS.items():
        if field in meta and not ok(meta[field]):
            raise _Invalid(f"metadata field {field!r} has an invalid value {meta[field]!r}"[:200])


def _classes(spec: dict) -> np.ndarray:
    kind = _LABEL_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
    values = spec["values"]
    if kind is None:
        raise _Invalid(f"unknown class label type {spec['type']!r}")
    if len(values) < 2 or not all(type(v) is kind for v in values):
        raise _Invalid(f"classes must be at least 2 labels of type {spec['type']}")
    # classes_ is sorted (np.unique) and predict relies on it; NaN fails this too
    if not all(a < b for a, b in zip(values, values[1:])):
        raise _Invalid("classes are not distinct and sorted")
    if kind is int and not all(-(2**63) <= v < 2**63 for v in values):
        raise _Invalid("an integer class label is out of range")
    return np.array(values, dtype=str if kind is str else None)


def _params(cls, stored: dict, device) -> dict:
    """Constructor arguments from the file, refused unless ``cls`` accepts them."""
    params = {}
    for key, value in stored.items():
        if isinstance(value, dict):  # class_weight, stored as label/weight pairs
            pairs = value.get("__pairs__")
            if (
                set(value) != {"__pairs__"}
                or not isinstance(pairs, list)
                or not all(
                    isinstance(p, list) and len(p) == 2 and type(p[0]) in (str, int, float, bool) and _is_number(p[1])
                    for p in pairs
                )
            ):
                raise _Invalid(f"parameter {key!r} has an invalid value")
            value = {label: weight for label, weight in pairs}
        params[key] = value
    if params.get("dtype") not in (None, "float32", "float64"):
        raise _Invalid(f"parameter 'dtype' has an invalid value {params.get('dtype')!r}")
    saved = params.get("device", "auto")
    if isinstance(saved, str) and saved != "auto":  # other types: the estimator's own validation refuses them
        import torch

        try:
            saved_type = torch.device(saved).type
        except (RuntimeError, TypeError, ValueError):
            saved_type = None
        # what a model can have been trained on; 'meta' or 'hpu' would load, then fail inside predict
        if saved_type not in ("cpu", *_ACCELERATORS):
            raise _Invalid(f"parameter 'device' has an invalid value {saved!r}")
        if device is None and not _usable_here(torch.device(saved)):
            params["device"] = "auto"  # a model trained on a GPU still predicts on this machine
    if device is not None:
        params["device"] = device
    return params


_ACCELERATORS = ("cuda", "mps", "xpu")


def _usable_here(dev) -> bool:
    """Whether this machine can compute on torch.device ``dev`` (cuda:1 needs two CUDA GPUs)."""
    import torch

    if dev.type == "cpu":
        return True
    backend = {"cuda": torch.cuda, "xpu": getattr(torch, "xpu", None), "mps": torch.backends.mps}[dev.type]
    if backend is None or not backend.is_available():
        return False
    return dev.index is None or dev.index < getattr(backend, "device_count", lambda: 1)()


def _decode(data: bytes, estimators, device=None):
    """The fitted estimator in a model file's bytes; raises _Invalid.

    ``estimators``: class name -> class, the estimators a file may hold
    (this module knows the format, not the estimators: see :mod:`torchlogit._models`).
    """
    from sklearn.base import ClassifierMixin

    header, meta, start = _checked(data)
    tensors = read_tensors(header, data, start, _TENSORS, _TENSOR_DTYPES)
    _check_fields(meta)
    cls = estimators.get(meta["estimator"])
    if cls is None:
        raise _Invalid(f"unknown estimator {meta['estimator']!r}")
    params = _params(cls, meta["params"], device)
    try:
        model = cls(**params)
        model._validate_params()
    except (TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _Invalid(f"parameters do not match {cls.__name__} ({reason})") from None

    # shapes, classes and feature names must agree with each other and with the estimator
    coef, intercept, d = tensors["coef"], tensors["intercept"], meta["n_features_in"]
    classifier = issubclass(cls, ClassifierMixin)
    if ("classes" in meta) != classifier or meta["intercept_scalar"] == classifier:
        raise _Invalid(f"classes and intercept layout do not match a {cls.__name__}")
    if classifier:
        model.classes_ = _classes(meta["classes"])
        rows = 1 if len(model.classes_) == 2 else len(model.classes_)
        shapes = ((rows, d), (rows,))
    else:
        shapes = ((d,), (1,))
    if (coef.shape, intercept.shape) != shapes:
        raise _Invalid(
            f"coef {coef.shape} and intercept {intercept.shape} do not fit {d} features"
            + (f" and {len(model.classes_)} classes" if classifier else "")
            + f" (expected {shapes[0]} and {shapes[1]})"
        )
    names = meta["feature_names"]
    if names is not None:
        if len(names) != d:
            raise _Invalid(f"{len(names)} feature names for {d} features")
        if len(set(names)) != d:  # scikit-learn's fit refuses repeated names, so save_model never writes them
            raise _Invalid(f"feature name {next(n for n in names if names.count(n) > 1)!r} appears more than once")
        model.feature_names_in_ = np.array(names, dtype=object)

    model.coef_ = coef
    model.intercept_ = float(intercept[0]) if meta["intercept_scalar"] else intercept
    model.n_features_in_ = d
    model.n_iter_ = np.array(meta["n_iter"] or [0], dtype=np.int32)
    model.solver_ = meta["solver"]
    model.objective_ = meta["objective"]
    model.loss_curve_ = list(meta["loss_curve"])
    if "convergence" in meta:
        model.convergence_ = ConvergenceReport.from_json(meta["convergence"])
    return model


def _read_file(path: Path) -> bytes:
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None


def read_metadata(path) -> dict:
    """The JSON metadata of a model file, after checking format, version and digest."""
    path = Path(path)
    try:
        return _checked(_read_file(path))[1]
    except _Invalid as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def load_model(path, estimators, device=None):
    """Read a model saved by :func:`save_model`. Returns the fitted estimator.

    ``device``: where the loaded model computes; None keeps the saved setting,
    except that a model trained on a GPU (cuda, mps, xpu) falls back to 'auto'
    on a machine without that GPU. Any file that was modified after saving, or that ``save_model``
    could not have written, raises :class:`ModelFileError` naming the file.
    """
    path = Path(path)
    try:
        return _decode(_read_file(path), estimators, device)
    except _Invalid as exc:
        raise ModelFileError(f"{path}: {exc}") from None
