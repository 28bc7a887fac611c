"""Training on data larger than memory: Parquet or CSV read in record batches.

    from torchlogit.stream import fit_stream
    model = fit_stream("data/", target="y")              # exact: L-BFGS, one pass per evaluation
    model = fit_stream("big.csv", target="y", solver="sgd", epochs=3)   # the lecture's loop

Only a bounded number of rows is ever held: one record batch (``batch_rows``),
the sgd shuffle buffer (``buffer_rows``), and a sample of at most ~10 d rows
for the preconditioner. The exact mode computes the same objective as
``LogisticRegression.fit`` (see :mod:`torchlogit._loss`), summed over the
stream in float64, so it reaches the same optimum as the in-memory fit.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._atomic import check_writable as output_ok
from ._checkpoint import (
    Checkpointer,
    generator_state,
    load_checkpoint,
    optimizer_state,
    restore_generator,
    restore_optimizer,
)
from ._fit import Standardizer, fit_problem, sgd_forward_backward
from ._labels import label_indices
from ._logistic import LogisticRegression, coefficients
from ._loss import POINTWISE, LinearModelLoss
from ._problem import StreamProblem
from .data import (
    DataError,
    arrow_message,
    check_unique,
    column_kind,
    csv_header,
    file_format,
    first_non_finite,
    first_non_number,
)
from .solvers import SOLVERS, IterInfo, make_optimizer
from .solvers.sgd import EpochSums, Rows, proximal_step, sgd_epoch

f64 = torch.float64


class StreamSource:
    """Record batches (X float32 (m, d), y (m,)) of a Parquet file, a folder of them, or a CSV file.

    A folder is listed as pyarrow's dataset discovery does: files under it at
    any depth, skipping names that start with '_' or '.' (Spark's _SUCCESS,
    .crc checksums); ``files`` are the data files read, ``skipped`` the others.
    Every file's own schema is checked up front, so that a file that lacks a
    column, or holds strings where numbers are needed, is named before training.

    ``shard=(rank, world)`` keeps every world-th fragment (Parquet row group
    or file), starting at ``rank``: how distributed training splits the data.
    """

    def __init__(self, source, target, features=None, batch_rows=65536, shard=(0, 1)):
        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        self.source, self.batch_rows, self.shard, self.target = str(path), batch_rows, shard, target
        self.files, self.skipped, self.format = _list_data_files(path)
        self.features = list(features) if features else None
        self._explicit = bool(features)
        self.target_kind = None
        self._parts = [self._open(file) for file in self.files]  # one dataset per file: each keeps its own types
        self._passes = 0  # complete passes: a read error after the first means a file changed meanwhile

    def _open(self, file):
        import pyarrow as pa
        import pyarrow.dataset as ds

        if self.format == "csv":  # pyarrow refuses a repeated CSV column without naming it
            check_unique(csv_header(file) or [], file)
        try:
            part = ds.dataset(str(file), format=self.format)
            schema = part.schema
            names = schema.names  # decoded only now: names that are not UTF-8 fail here
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{file}: cannot read as {self.format}: {arrow_message(exc)}") from None
        except UnicodeDecodeError:
            raise DataError(f"{file}: cannot read as {self.format}: its column names are not UTF-8 text") from None
        check_unique(names, file)
        self._check_columns(file, schema, part)
        return part

    def _check_columns(self, file, schema, part):
        from .data import column_list

        names = schema.names
        if self.target not in names:
            raise DataError(f"{file}: target column {self.target!r} not found; columns are {column_list(names)}")
        if self.features is None:  # the first file decides; every other file must have the same columns
            self.features = [c for c in names if c != self.target]
            if not self.features:
                raise DataError(f"{file}: no feature columns left after removing the target {self.target!r}")
        for name in self.features:
            if name not in names:
                raise DataError(f"{file}: column {name!r} not found; columns are {column_list(names)}")
            kind = schema.field(name).type
            if column_kind(kind) not in ("number", "bool"):
                raise DataError(f"{file}: column {name!r} is not numeric ({kind}){_first_string(part, name)}")
        extra = [c for c in names if c != self.target and c not in self.features]
        if extra and not self._explicit:
            raise DataError(
                f"{file}: column {extra[0]!r} is not in {self.files[0]}; choose the columns with features= (--features)"
            )
        arrow_type = schema.field(self.target).type
        kind = column_kind(arrow_type)
        if kind is None:
            raise DataError(f"{file}: target column {self.target!r} has unsupported type {arrow_type}")
        if self.target_kind is None:
            self.target_kind = kind
        elif kind != self.target_kind:
            raise DataError(
                f"{file}: target column {self.target!r} holds {kind} values, "
                f"but {self.files[0]} holds {self.target_kind} values"
            )

    def schema(self):
        """What every rank must agree on: the feature columns in order, the target and its kind, a file."""
        return {"features": list(self.features), "target": [self.target, self.target_kind], "file": str(self.files[0])}

    def _units(self):
        """(file, first row in the file, fragment) of this shard: Parquet row groups, whole CSV files."""
        import pyarrow as pa

        units = []
        for file, part in zip(self.files, self._parts):
            try:
                for frag in part.get_fragments():
                    if self.format != "parquet":
                        units.append((file, 0, frag))
                        continue
                    start = 0
                    for piece in frag.split_by_row_group():
                        units.append((file, start, piece))
                        start += piece.row_groups[0].num_rows
            except (pa.ArrowException, OSError) as exc:
                raise DataError(self._unreadable(file, exc)) from None
        rank, world = self.shard
        return units[rank::world]

    def fragments(self):
        """The units of shuffling and sharding: row groups of Parquet files, whole CSV files."""
        return [frag for _, _, frag in self._units()]

    def _unreadable(self, file, exc, names=None):
        changed = "; it changed or was truncated during training" if self._passes else ""
        return f"{file}: cannot be read: {arrow_message(exc, names)}{changed}"

    def _record_batches(self, file, frag, columns):
        """pyarrow's record batches of one fragment; its read errors become a DataError naming the file."""
        import pyarrow as pa

        try:
            names = frag.physical_schema.names
            it = iter(frag.to_batches(columns=columns, batch_size=self.batch_rows))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(self._unreadable(file, exc)) from None
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise DataError(self._unreadable(file, exc, names)) from None
            yield batch

    def batches(self, order=None):
        """Yield (X, y, first_row) per record batch, fragments in ``order`` (indices) or file order."""
        units = self._units()
        order = range(len(units)) if order is None else order
        columns = self.features + [self.target]
        for i in order:
            file, start, frag = units[i]
            offset = 0
            for batch in self._record_batches(file, frag, columns):
                if batch.num_rows == 0:
                    continue
                row = start + offset + 1  # the batch's first row in its file, counted from 1
                X = np.empty((batch.num_rows, len(self.features)), dtype=np.float32)
                for j, name in enumerate(self.features):
                    col = batch.column(j)
                    if col.null_count:
                        k = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                        raise DataError(f"{file}: column {name!r} has a missing value at row {row + k}")
                    with np.errstate(over="ignore"):  # a float64 beyond float32's range: named just below
                        X[:, j] = col.to_numpy(zero_copy_only=False)
                if not np.isfinite(X).all():  # inf, nan, or a float64 beyond float32's range
                    k, j = (int(v[0]) for v in np.nonzero(~np.isfinite(X)))
                    raise DataError(
                        f"{file}: column {self.features[j]!r} holds {batch.column(j)[k].as_py()} "
                        f"at row {row + k}; features must be finite float32 numbers"
                    )
                y = batch.column(len(self.features))
                if y.null_count:
                    k = int(np.flatnonzero(y.is_null().to_numpy(zero_copy_only=False))[0])
                    raise DataError(f"{file}: target column {self.target!r} has a missing value at row {row + k}")
                y = y.to_numpy(zero_copy_only=False)
                bad = first_non_finite(y)
                if bad is not None:
                    raise DataError(f"{file}: target column {self.target!r} holds {bad[1]} at row {row + bad[0]}")
                yield X, y, offset
                offset += batch.num_rows
        self._passes += 1


def _list_data_files(path):
    """(data files, skipped files, format) of a file or a folder, listed as pyarrow's discovery lists them."""
    if path.is_file():
        files, skipped = [path], []
    else:
        files, skipped = [], []
        for p in sorted(path.rglob("*")):
            if p.is_file():
                hidden = any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
                (skipped if hidden else files).append(p)
    if not files:
        also = f" (skipped {len(skipped)} whose names start with '_' or '.')" if skipped else ""
        raise DataError(f"{path}: the folder holds no data files (.parquet, .csv){also}")
    formats = {}
    for p in files:
        fmt = file_format(p)
        if fmt is None:
            raise DataError(
                f"{p}: not a data file (.parquet, .csv, .csv.gz); move it out of the folder "
                "or start its name with '_' so that it is skipped"
            )
        formats.setdefault(fmt, p)
    if len(formats) > 1:
        raise DataError(
            f"{path}: holds both CSV ({formats['csv'].name}) and Parquet ({formats['parquet'].name}) "
            "files; keep one format per folder"
        )
    return files, skipped, next(iter(formats))


def _first_string(part, name):
    """': row R holds V': the first value of a string column that is not a number (the error path only)."""
    offset, first = 0, None
    try:
        for batch in part.to_batches(columns=[name]):
            values = batch.column(0).to_pylist()
            found = first_non_number(values)
            if found is not None:
                return f": row {offset + found[0] + 1} holds {found[1]!r}"
            first = first if first is not None or not values else values[0]
            offset += batch.num_rows
        if first is not None:  # every value reads as a number: numbers stored as text
            return f": numbers stored as text (row 1 holds {first!r})"
    except Exception:  # only a detail of a message already on its way: its absence is no new error
        pass
    return ""


@dataclass
class _Summary:
    """What the first pass learns: rows, classes, column moments, a row sample."""

    n: int  # rows in all shards
    local_n: int  # rows in this process's shard
    classes: np.ndarray
    mu: torch.Tensor  # (d,) float64 column means (0 without an intercept)
    var: torch.Tensor  # (d,) float64 column variances around mu
    sample: torch.Tensor


def _first_pass(stream, classes, fit_intercept, sample_bytes=32 << 20, reduce=None):
    d = len(stream.features)
    keep = max(1, min(10 * d, sample_bytes // (4 * d)))
    if reduce is not None:  # before any collective whose size depends on the columns: all ranks read the same ones
        reduce.same_schema(stream.schema())
    n, m1, m2, labels, sample, kept = 0, torch.zeros(d, dtype=f64), torch.zeros(d, dtype=f64), set(), [], 0
    for X, y, _ in stream.batches():
        Xt = torch.from_numpy(X)
        n += len(X)
        m1 += Xt.sum(0, dtype=f64)
        m2 += (Xt.to(f64) ** 2).sum(0)  # one batch in float64 at a time
        if classes is None:
            labels.update(np.unique(y).tolist())
        if kept < keep:
            sample.append(Xt[: keep - kept].clone())
            kept += len(sample[-1])
    local_n = n
    sample = torch.cat(sample) if sample else torch.zeros(0, d)
    if reduce is not None:  # distributed: every rank ends with the totals, and rank 0's sample
        n, m1, m2, labels = reduce.stats(n, m1, m2, labels)
        sample = reduce.same_sample(sample)
    if n == 0:
        raise DataError(f"{stream.source}: no rows")
    if classes is None and len(labels) == 1:
        raise DataError(
            f"{stream.source}: target column {stream.target!r} has the single class {next(iter(labels))!r} "
            f"in its {n} row{'s' if n > 1 else ''}; training needs at least two classes"
        )
    classes = np.unique(np.asarray(sorted(labels) if classes is None else classes))
    mu = m1 / n if fit_intercept else torch.zeros(d, dtype=f64)
    var = (m2 / n - mu * (2 * m1 / n - mu)).clamp_min(0.0)  # E[(x - mu)^2]
    return _Summary(n, local_n, classes, mu, var, sample)


def _targets(y, classes, binary, source):
    idx, unknown = label_indices(classes, y)
    if unknown is not None:
        raise DataError(f"{source}: label {unknown!r} is not one of the classes {classes.tolist()}")
    return torch.from_numpy(idx.astype(np.float32)) if binary else torch.from_numpy(idx.astype(np.int64))


def fit_stream(
    source,
    target,
    *,
    features=None,
    classes=None,
    penalty="l2",
    C=1.0,
    l1_ratio=None,
    fit_intercept=True,
    solver="auto",
    tol=None,
    max_iter=1000,
    epochs=5,
    batch_size=256,
    learning_rate=0.01,
    optimizer="sgd",
    batch_rows=65536,
    buffer_rows=65536,
    random_state=None,
    callback=None,
    shard=(0, 1),
    reduce=None,
    checkpoint=None,
    checkpoint_every=60.0,
    resume=None,
):
    """Fit a LogisticRegression on a stream; returns the fitted estimator.

    ``penalty`` 'l2', 'l1', 'elasticnet' (with ``l1_ratio``, the L1 share) or
    None, strength 1 / ``C``, as in :class:`LogisticRegression`. solver
    'auto' (default): the exact optimum, by 'lbfgs' for a smooth penalty and
    'prox-newton' with an L1 part, each function evaluation one pass over the
    stream (prox-newton adds one for its working set's Hessian). solver 'sgd': ``epochs`` passes of mini-batch SGD
    (``batch_size`` rows, ``learning_rate``, a ``torch.optim`` ``optimizer``)
    through a shuffle buffer of ``buffer_rows`` rows; fragment order and
    buffer shuffles are seeded by ``random_state``. ``callback(info)`` gets an
    IterInfo after every iteration (epoch for sgd) with ``rows_per_s`` set.
    ``shard`` and ``reduce`` are the hooks of :mod:`torchlogit.distributed`.

    ``checkpoint``: a file to which the fit's state is written every
    ``checkpoint_every`` seconds, after SIGINT/SIGTERM (then the signal takes
    its course) and at the end. ``resume``: such a file, written by a run on
    the same data with the same parameters (``epochs`` and ``max_iter`` may
    grow); sgd then continues bit for bit, lbfgs from its last iterate.
    """
    if solver not in ("auto", "lbfgs", "prox-newton", "sgd"):
        raise ValueError(f"fit_stream supports solver 'lbfgs' (exact) or 'sgd', not {solver!r}")
    stream = StreamSource(source, target, features, batch_rows, shard)
    info = _first_pass(stream, None if classes is None else list(classes), fit_intercept, reduce=reduce)
    K = len(info.classes)
    if K < 2:
        raise DataError(f"{stream.source}: the target has a single class {info.classes.tolist()}")
    binary = K == 2
    k = 1 if binary else K
    d = len(stream.features)
    loss = LinearModelLoss(POINTWISE["binary" if binary else "multinomial"], d, k, fit_intercept)
    # the estimator's own checks: penalty='l1' must not quietly fit another model; a named penalty
    # implies its l1_ratio (elastic net needs one), so no 'inconsistent values' warning for the plain names
    if l1_ratio is None and penalty != "elasticnet":
        l1_ratio = 1.0 if penalty == "l1" else 0.0
    template = LogisticRegression(penalty=penalty, C=C, l1_ratio=l1_ratio, fit_intercept=fit_intercept)
    template._validate_params()
    template._check_penalty_params()
    pen = template._make_penalty(info.n)
    # the exact solver: lbfgs for a smooth penalty, prox-newton with an L1 part (refused by name, as in fit)
    if solver in ("lbfgs", "prox-newton") and (solver == "lbfgs") != pen.smooth:
        raise ValueError(f"fit_stream: solver={solver!r} does not fit penalty {pen.name!r}; use solver='auto'")
    if solver == "auto":
        solver = "lbfgs" if pen.smooth else "prox-newton"
    w0 = torch.zeros(loss.n_params, dtype=f64)
    if reduce is not None and (checkpoint is not None or resume is not None):
        raise ValueError("checkpoints are not supported with distributed training")
    run = {
        "files": [[str(p), p.stat().st_size] for p in stream.files],
        "target": stream.target,
        "features": list(stream.features),
        "classes": info.classes.tolist(),
        "penalty": penalty,
        "C": C,
        "l1_ratio": l1_ratio,
        "fit_intercept": fit_intercept,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "optimizer": str(optimizer),
        "random_state": random_state,
        "buffer_rows": buffer_rows,
        "batch_rows": batch_rows,
    }
    resumed = None if resume is None else load_checkpoint(resume, solver, run)
    if checkpoint is not None:
        output_ok(checkpoint)
    writer = Checkpointer(checkpoint, solver, run, checkpoint_every) if checkpoint is not None else None
    start = time.perf_counter()
    with writer or contextlib.nullcontext() as checkpoints:
        res, rows_seen = _solve_stream(
            stream,
            loss,
            info,
            binary,
            pen,
            w0,
            solver,
            tol,
            max_iter,
            epochs,
            batch_size,
            learning_rate,
            optimizer,
            buffer_rows,
            random_state,
            callback,
            reduce,
            checkpoints,
            resumed,
        )
    model = LogisticRegression(
        penalty=penalty,
        C=C,
        l1_ratio=l1_ratio,
        fit_intercept=fit_intercept,
        solver=solver,
        tol=tol,
        max_iter=epochs if solver == "sgd" else max_iter,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        random_state=random_state,
    )
    model.feature_names_in_ = np.asarray(stream.features, dtype=object)
    model._refuse_non_finite(res.x, loss, torch.float32)  # sgd can overflow float32, as in fit
    coef, intercept = coefficients(loss, res.x, np.float32, center_weights=not pen.l1)  # as fit's
    res.duality_gap = None  # not computed on a stream (it would take another pass)
    model._record_fit(
        solver, res, tol, {"coef_": coef, "intercept_": intercept, "classes_": info.classes, "n_features_in_": d}
    )
    model.separation_ = None
    model.stream_files_ = [str(p) for p in stream.files]  # what was read: a folder's files, less the skipped ones
    model.stream_skipped_ = [str(p) for p in stream.skipped]  # names starting with '_' or '.' (_SUCCESS, .crc)
    model.stream_rows_per_s_ = rows_seen / max(time.perf_counter() - start, 1e-9)
    if solver != "sgd" and not res.converged:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(
            f"fit_stream did not converge in {res.n_iter} iterations: {res.message}; "
            f"max|gradient| {res.grad_max:.3g}. Increase max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return model


def _solve_stream(
    stream,
    loss,
    info,
    binary,
    pen,
    w0,
    solver,
    tol,
    max_iter,
    epochs,
    batch_size,
    learning_rate,
    optimizer,
    buffer_rows,
    random_state,
    callback,
    reduce,
    checkpoints,
    resumed,
):
    if solver != "sgd":
        return _exact(
            stream,
            loss,
            info,
            binary,
            pen,
            w0,
            SOLVERS[solver].default_tol if tol is None else tol,
            max_iter,
            callback,
            reduce,
            checkpoints,
            resumed,
        )
    return _sgd(
        stream,
        loss,
        info,
        binary,
        pen,
        w0,
        epochs,
        batch_size,
        learning_rate,
        optimizer,
        buffer_rows,
        random_state,
        callback,
        reduce,
        checkpoints,
        resumed,
    )


def _exact(stream, loss, info, binary, pen, w0, tol, max_iter, callback, reduce, checkpoints=None, resume=None):
    """``fit``'s exact solver (``_fit.fit_problem``) on a :class:`StreamProblem`: every pass reads the stream.

    L-BFGS for a smooth penalty (f and its gradient one pass each); with an
    L1 part, prox-newton, its working set's Hessian one more pass (summed
    over the ranks when distributed). The standardisation comes from the
    first pass's moments.

    A checkpoint holds the last iterate and the iterations done; resuming
    starts L-BFGS again from that iterate (its curvature memory is rebuilt
    in a few iterations), so it reaches the same optimum within tol.
    """
    done, history = 0, []
    if resume is not None:
        w0 = torch.from_numpy(resume.tensors["theta"])
        done, history = resume.state["n_iter"], list(resume.state["history"])
    std = Standardizer.from_moments(info.mu, info.var, loss.n_outputs, loss.fit_intercept)
    rows = [0]

    def one_pass():  # (X (m, d) float32, targets, weights 1 / n) blocks
        for X, y, _ in stream.batches():
            rows[0] += len(X)
            yield (
                torch.from_numpy(X),
                _targets(y, info.classes, binary, stream.source),
                torch.full((len(X),), 1.0 / info.n, dtype=torch.float32),
            )

    sample = info.sample
    weights = torch.full((len(sample),), 1.0 / max(len(sample), 1), dtype=torch.float32)
    problem = StreamProblem(
        loss,
        pen,
        one_pass,
        reduce=None if reduce is None else reduce.total,
        sample=(sample, weights) if len(sample) > 1 else None,
    )
    clock = [time.perf_counter(), 0]  # time and rows at the previous iteration

    def report(it):  # the solver's IterInfo (x in theta) plus the stream's throughput since the last one
        now = time.perf_counter()
        it.rows_per_s = (rows[0] - clock[1]) / max(now - clock[0], 1e-9)
        clock[0], clock[1] = now, rows[0]
        history.append(it.fun)
        it.iteration += done
        if checkpoints is not None and checkpoints.due():
            checkpoints.write({"n_iter": it.iteration, "history": history}, {"theta": it.x.numpy().copy()})
        if callback is not None:
            return callback(it)

    solver = "lbfgs" if pen.smooth else "prox-newton"
    res = fit_problem(
        problem, solver=solver, w0=w0, tol=tol, max_iter=max(0, max_iter - done), callback=report, std=std
    )
    res.n_iter, res.history = res.n_iter + done, history
    if checkpoints is not None:
        checkpoints.write({"n_iter": res.n_iter, "history": history}, {"theta": res.x.numpy().copy()})
    return res, rows[0]


def _sgd(
    stream,
    loss,
    info,
    binary,
    pen,
    w0,
    epochs,
    batch_size,
    learning_rate,
    optimizer,
    buffer_rows,
    random_state,
    callback,
    reduce,
    checkpoints=None,
    resume=None,
):
    """Mini-batch SGD through a seeded shuffle buffer: the engine of :mod:`torchlogit.solvers.sgd` over a stream.

    An epoch is a seeded order of the fragments, read in chunks of about
    ``buffer_rows`` rows, each shuffled by one ``randperm`` of the generator
    (see :func:`_minibatches`). So a position in the run is (epoch, fragment
    order, chunk, step) plus the generator's state before that chunk's
    ``randperm``: what a checkpoint stores, with the parameters, the
    optimizer's state and the epoch's running sums. ``checkpoints`` (a
    :class:`torchlogit._checkpoint.Checkpointer`) writes them; ``resume`` (a
    Checkpoint) continues one, bit for bit. An L1 part of ``pen`` is applied
    by a proximal step after each update (plain SGD only).
    """
    from .nn import LinearModel
    from .solvers import Result

    model = LinearModel(loss.n_features, loss.n_outputs, bias=loss.fit_intercept)
    params = list(model.parameters())
    W, b = model.linear.weight, model.linear.bias
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(w0.to(torch.float32), params)
    opt = make_optimizer(optimizer, params, learning_rate)
    prox = proximal_step(pen, W, opt)
    step = sgd_forward_backward(loss.pointwise, W, b, pen.l2)
    gen = torch.Generator().manual_seed(int(random_state) if random_state is not None else 0)
    n_frags = len(stream.fragments())
    # Distributed: every rank takes the same number of steps (each one an all-reduce), the most the
    # smallest shard allows; a rank's leftover rows wait for the next epoch's shuffle.
    steps = None if reduce is None else reduce.min_int(info.local_n // batch_size)
    sync_grads = None if reduce is None else (lambda: reduce.average_grads(params))
    history, rows, first_epoch, at = [], 0, 1, None
    if resume is not None:
        at = resume.state
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(resume.tensors["params"]), params)
        restore_optimizer(opt, at["optimizer"], resume.tensors)
        history, rows, first_epoch = list(at["history"]), at["rows"], at["epoch"]
        if at["finished"]:
            first_epoch, at = epochs + 1, None

    def snapshot(epoch, order, position, sums, finished=False):
        plain, tensors = optimizer_state(opt)
        tensors["params"] = torch.nn.utils.parameters_to_vector(params).detach().numpy().copy()
        tensors["generator"] = position["before"]
        state = {
            "epoch": epoch,
            "order": order,
            "chunk": position["chunk"],
            "step": position["step"],
            "total": float(sums.total),
            "count": sums.rows,
            "done": sums.steps,
            "history": history,
            "rows": rows,
            "finished": finished,
            "optimizer": plain,
        }
        return state, tensors

    def forward_backward(batch):  # a Rows of the shuffle buffer, each row weighing 1 / B
        return step(batch.X, batch.y, 1.0 / len(batch))

    for epoch in range(first_epoch, epochs + 1):
        if at is not None:  # the epoch a checkpoint stopped in
            order, restart = at["order"], (at["chunk"], at["step"], resume.tensors["generator"])
            sums = EpochSums(torch.tensor(at["total"], dtype=f64), at["count"], at["done"])
            at = None
        else:
            order, restart = torch.randperm(n_frags, generator=gen).tolist(), None
            sums = EpochSums.zeros()
        position = {}  # the batch being trained on: chunk, step + 1, generator state before the chunk's shuffle
        batches = _minibatches(
            stream, order, info, binary, buffer_rows, batch_size, gen, sums, steps, restart, position, checkpoints
        )

        def after_step(sums, epoch=epoch, order=order, position=position):
            if checkpoints.due():
                checkpoints.write(*snapshot(epoch, order, position, sums))

        tick = time.perf_counter()
        sgd_epoch(
            batches,
            forward_backward,
            opt,
            prox=prox,
            sync_grads=sync_grads,
            after_step=None if checkpoints is None else after_step,
            sums=sums,
        )
        rows += sums.rows
        history.append(sums.mean)
        if callback is not None:
            rate = sums.rows / max(time.perf_counter() - tick, 1e-9)
            callback(IterInfo(epoch, history[-1], float("nan"), rows_per_s=rate))
    if checkpoints is not None:  # the finished run: resuming it returns this model at once
        last = {"chunk": 0, "step": 0, "before": generator_state(gen)}
        checkpoints.write(*snapshot(epochs, [], last, EpochSums.zeros(), finished=True))
    x = torch.nn.utils.parameters_to_vector(params).detach().to(f64)
    return Result(x, history[-1], float("nan"), epochs, True, f"{epochs} epochs done", history), rows


def _minibatches(stream, order, info, binary, buffer_rows, batch_size, gen, sums, steps, restart, position, states):
    """One epoch's mini-batches (:class:`Rows`): each chunk of :func:`_shuffled` cut by one ``randperm`` of ``gen``.

    ``restart`` = (chunk, step, generator state) of a checkpoint: chunks
    before it are read again but not trained on, and its chunk's shuffle is
    drawn again from the saved state. ``steps``: stop once ``sums.steps``
    reaches it (distributed training; the remaining chunks' shuffles are still
    drawn). ``position`` is kept at the batch last yielded, for a checkpoint;
    ``states`` (the checkpointer, or None): whether to record generator states.
    """
    resume_chunk, resume_step, resume_state = restart if restart is not None else (-1, 0, None)
    for chunk, (Xb, yb) in enumerate(_shuffled(stream, order, info, binary, buffer_rows, gen)):
        if chunk < resume_chunk:
            continue  # done before the checkpoint: read again, not trained on
        first_step = 0
        if chunk == resume_chunk:
            restore_generator(gen, resume_state)
            first_step = resume_step
        before = generator_state(gen) if states is not None else None
        for s, idx in enumerate(torch.randperm(len(Xb), generator=gen).split(batch_size)):
            if s < first_step:
                continue
            if steps is not None and sums.steps >= steps:
                break
            position.update(chunk=chunk, step=s + 1, before=before)
            yield Rows(Xb[idx], yb[idx])


def _shuffled(stream, order, info, binary, buffer_rows, gen):
    """(X, y) chunks of about ``buffer_rows`` rows: record batches gathered, then shuffled together."""
    held, size = [], 0
    for X, y, _ in stream.batches(order):
        held.append((torch.from_numpy(X), _targets(y, info.classes, binary, stream.source)))
        size += len(X)
        if size >= buffer_rows:
            yield torch.cat([h[0] for h in held]), torch.cat([h[1] for h in held])
            held, size = [], 0
    if held:
        yield torch.cat([h[0] for h in held]), torch.cat([h[1] for h in held])
