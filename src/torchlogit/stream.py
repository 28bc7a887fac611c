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

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._base import ConvergenceReport, label_indices
from ._fit import Standardizer, correlation_preconditioner, sgd_forward_backward
from ._logistic import LogisticRegression, coefficients
from ._loss import POINTWISE, LinearModelLoss
from .data import DataError
from .solvers import SOLVERS, IterInfo, make_optimizer

f64 = torch.float64


class StreamSource:
    """Record batches (X float32 (m, d), y (m,)) of a Parquet file, a folder of them, or a CSV file.

    ``shard=(rank, world)`` keeps every world-th fragment (Parquet row group
    or file), starting at ``rank``: how distributed training splits the data.
    """

    def __init__(self, source, target, features=None, batch_rows=65536, shard=(0, 1)):
        import pyarrow.dataset as ds

        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        fmt = "csv" if files and all(p.suffix.lower() == ".csv" for p in files) else "parquet"
        try:
            self.dataset = ds.dataset([str(p) for p in files], format=fmt)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise DataError(f"{path}: cannot read as {fmt} ({str(exc).splitlines()[0]})") from None
        self.source, self.format, self.batch_rows, self.shard = str(path), fmt, batch_rows, shard
        names = self.dataset.schema.names
        if target not in names:
            raise DataError(f"{path}: target column {target!r} not found; columns are {', '.join(names)}")
        self.target = target
        self.features = list(features) if features else [c for c in names if c != target]
        for name in self.features:
            if name not in names:
                raise DataError(f"{path}: column {name!r} not found; columns are {', '.join(names)}")
            kind = self.dataset.schema.field(name).type
            if not (str(kind).startswith(("int", "uint", "float", "double", "bool", "halffloat"))):
                raise DataError(f"{path}: column {name!r} is not numeric ({kind})")

    def fragments(self):
        """The units of shuffling and sharding: row groups of Parquet files, whole CSV files."""
        frags = []
        for frag in self.dataset.get_fragments():
            frags.extend(frag.split_by_row_group() if self.format == "parquet" else [frag])
        rank, world = self.shard
        return frags[rank::world]

    def batches(self, order=None):
        """Yield (X, y, first_row) per record batch, fragments in ``order`` (indices) or file order."""
        frags = self.fragments()
        order = range(len(frags)) if order is None else order
        columns = self.features + [self.target]
        for i in order:
            offset = 0
            for batch in frags[i].to_batches(columns=columns, batch_size=self.batch_rows):
                if batch.num_rows == 0:
                    continue
                X = np.empty((batch.num_rows, len(self.features)), dtype=np.float32)
                for j, name in enumerate(self.features):
                    col = batch.column(j)
                    if col.null_count:
                        row = offset + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                        raise DataError(f"{self.source}: missing value in column {name!r} (row {row} of fragment {i})")
                    X[:, j] = col.to_numpy(zero_copy_only=False)
                y = batch.column(len(self.features))
                if y.null_count:
                    raise DataError(f"{self.source}: missing value in target column {self.target!r} (fragment {i})")
                yield X, y.to_numpy(zero_copy_only=False), offset
                offset += batch.num_rows


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
    source, target, *, features=None, classes=None, penalty="l2", C=1.0, fit_intercept=True, solver="lbfgs",
    tol=None, max_iter=1000, epochs=5, batch_size=256, learning_rate=0.01, optimizer="sgd",
    batch_rows=65536, buffer_rows=65536, random_state=None, callback=None, shard=(0, 1), reduce=None,
):  # fmt: skip
    """Fit a LogisticRegression on a stream; returns the fitted estimator.

    solver 'lbfgs' (default): the exact optimum, each function evaluation one
    pass over the stream. solver 'sgd': ``epochs`` passes of mini-batch SGD
    (``batch_size`` rows, ``learning_rate``, a ``torch.optim`` ``optimizer``)
    through a shuffle buffer of ``buffer_rows`` rows; fragment order and
    buffer shuffles are seeded by ``random_state``. ``callback(info)`` gets an
    IterInfo after every iteration (epoch for sgd) with ``rows_per_s`` set.
    ``shard`` and ``reduce`` are the hooks of :mod:`torchlogit.distributed`.
    """
    if solver not in ("lbfgs", "sgd"):
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
    l2s = 0.0 if penalty is None or penalty == "none" else 1.0 / (C * info.n)
    w0 = torch.zeros(loss.n_params, dtype=f64)
    start = time.perf_counter()
    if solver == "lbfgs":
        res, rows_seen = _exact(stream, loss, info, binary, l2s, w0, 1e-6 if tol is None else tol, max_iter,
                                callback, reduce)  # fmt: skip
    else:
        res, rows_seen = _sgd(stream, loss, info, binary, l2s, w0, tol, epochs, batch_size, learning_rate, optimizer,
                              buffer_rows, random_state, callback, reduce)  # fmt: skip
    model = LogisticRegression(penalty=penalty, C=C, fit_intercept=fit_intercept, solver=solver, tol=tol,
                               max_iter=max_iter if solver == "lbfgs" else epochs, batch_size=batch_size,
                               learning_rate=learning_rate, optimizer=optimizer, random_state=random_state)  # fmt: skip
    model.coef_, model.intercept_ = coefficients(loss, res.x, np.float32)
    model.classes_, model.n_features_in_ = info.classes, d
    model.feature_names_in_ = np.asarray(stream.features, dtype=object)
    model.n_iter_ = np.array([res.n_iter], dtype=np.int32)
    model.solver_, model.objective_, model.loss_curve_ = solver, res.fun, list(res.history)
    model.convergence_ = ConvergenceReport(solver, bool(res.converged), int(res.n_iter), res.message,
                                           float(res.grad_max), tol, float(res.fun), None)  # fmt: skip
    model.separation_ = None
    model.stream_rows_per_s_ = rows_seen / max(time.perf_counter() - start, 1e-9)
    if solver == "lbfgs" and not res.converged:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"fit_stream did not converge in {res.n_iter} iterations: {res.message}; "
                      f"max|gradient| {res.grad_max:.3g}. Increase max_iter.", ConvergenceWarning, stacklevel=2)  # fmt: skip
    return model


def _exact(stream, loss, info, binary, l2s, w0, tol, max_iter, callback, reduce):
    """L-BFGS in standardised coordinates; f and its gradient summed over one pass each."""
    std = Standardizer.from_moments(info.mu, info.var, loss.n_outputs, loss.fit_intercept)
    rows = [0]

    def fun_and_grad(phi):
        theta = std.to_theta(phi).to(torch.float32)
        f, g = torch.zeros((), dtype=f64), torch.zeros(loss.n_params, dtype=f64)
        for X, y, _ in stream.batches():
            Xt = torch.from_numpy(X)
            s = torch.full((len(X),), 1.0 / info.n, dtype=torch.float32)
            fb, gb = loss.loss_gradient(theta, Xt, _targets(y, info.classes, binary, stream.source), s)
            f, g = f + fb, g + gb
            rows[0] += len(X)
        if reduce is not None:
            f, g = reduce.sum(f, g)
        if l2s:
            W, _ = loss.unpack(theta.to(f64))
            f = f + 0.5 * l2s * (W * W).sum()
            g[: W.numel()] += l2s * W.reshape(-1)
        return float(f), std.grad_to_phi(g)

    clock = [time.perf_counter(), 0]  # time and rows at the previous iteration

    def report(it):  # the solver's IterInfo plus the stream's throughput since the last one
        now = time.perf_counter()
        it.rows_per_s = (rows[0] - clock[1]) / max(now - clock[0], 1e-9)
        clock[0], clock[1] = now, rows[0]
        callback(it)

    sample = info.sample
    weights = torch.full((len(sample),), 1.0 / max(len(sample), 1), dtype=torch.float32)
    precondition = correlation_preconditioner(std, sample, weights, l2s) if len(sample) > 1 else None
    res = SOLVERS["lbfgs"](fun_and_grad, std.to_phi(w0), tol=tol, max_iter=max_iter,
                           callback=None if callback is None else report,
                           f_rtol=10 * torch.finfo(torch.float32).eps, precondition=precondition)  # fmt: skip
    res.x = std.to_theta(res.x)
    return res, rows[0]


def _sgd(stream, loss, info, binary, l2s, w0, tol, epochs, batch_size, learning_rate, optimizer, buffer_rows,
         random_state, callback, reduce):  # fmt: skip
    """Mini-batch SGD through a seeded shuffle buffer; the loop of :mod:`torchlogit.solvers.sgd`."""
    from .nn import LinearModel
    from .solvers import Result

    model = LinearModel(loss.n_features, loss.n_outputs, bias=loss.fit_intercept)
    params = list(model.parameters())
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(w0.to(torch.float32), params)
    opt = make_optimizer(optimizer, params, learning_rate)
    step = sgd_forward_backward(loss.pointwise, model.linear.weight, model.linear.bias, l2s)
    gen = torch.Generator().manual_seed(int(random_state) if random_state is not None else 0)
    n_frags = len(stream.fragments())
    # Distributed: every rank takes the same number of steps (each one an all-reduce), the most the
    # smallest shard allows; a rank's leftover rows wait for the next epoch's shuffle.
    steps = None if reduce is None else reduce.min_int(info.local_n // batch_size)
    history, rows = [], 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n_frags, generator=gen).tolist()
        total, count, done, tick = torch.zeros((), dtype=f64), 0, 0, time.perf_counter()
        for Xb, yb in _shuffled(stream, order, info, binary, buffer_rows, gen):
            for idx in torch.randperm(len(Xb), generator=gen).split(batch_size):
                if steps is not None and done >= steps:
                    break
                value = step(Xb[idx], yb[idx], 1.0 / len(idx))
                if reduce is not None:
                    reduce.average_grads(params)
                opt.step()
                total += value.detach() * len(idx)
                count += len(idx)
                done += 1
        rows += count
        history.append(float(total) / max(count, 1))
        if callback is not None:
            callback(IterInfo(epoch, history[-1], float("nan"), rows_per_s=count / max(time.perf_counter() - tick, 1e-9)))
    x = torch.nn.utils.parameters_to_vector(params).detach().to(f64)
    return Result(x, history[-1], float("nan"), epochs, True, f"{epochs} epochs done", history), rows


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
