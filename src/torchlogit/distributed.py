"""Training across processes and machines with ``torch.distributed`` (gloo on CPU, NCCL on GPUs).

    torchrun --nproc-per-node 4 -m torchlogit train data/ --target y --stream --distributed --model-out m.safetensors

Each rank reads its own shard of the data: every world-th fragment (a Parquet
row group, or a CSV file), starting at its rank. The exact solver sums the
objective and its gradient over ranks with one all-reduce per evaluation, so
every rank computes the same L-BFGS step and the result equals the
single-process fit; sgd averages the mini-batch gradients over ranks
(data-parallel). Only rank 0 writes files and prints.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("TORCHLOGIT_DIST_TIMEOUT", "120")))


class DistributedError(RuntimeError):
    """A rank failed or a collective timed out: the job stops instead of hanging."""


class AllReduce:
    """The hooks ``fit_stream`` calls: totals of the first pass, of f and grad, and averaged grads."""

    def __init__(self, world):
        self.world = world

    def stats(self, n, m1, m2, labels):
        packed = torch.cat([torch.tensor([float(n)], dtype=torch.float64), m1, m2])
        _all_reduce(packed)
        gathered = [None] * self.world
        _collective(dist.all_gather_object, gathered, sorted(labels))
        d = len(m1)
        union = set()
        for part in gathered:
            union.update(part)
        return int(packed[0]), packed[1 : 1 + d], packed[1 + d :], union

    def same_schema(self, schema):
        """Stop every rank with the same line unless all read the same columns (``StreamSource.schema()``).

        Otherwise the first all-reduce would sum tensors of different sizes, and gloo aborts the process.
        """
        gathered = [None] * self.world
        _collective(dist.all_gather_object, gathered, schema)
        for rank, other in enumerate(gathered):
            difference = _schema_difference(gathered[0], other)
            if difference:
                raise DistributedError(f"ranks 0 and {rank} read different columns: {difference}")

    def same_sample(self, sample):
        """Rank 0's row sample on every rank, so that all ranks build the same preconditioner."""
        box = [sample if dist.get_rank() == 0 else None]
        _collective(dist.broadcast_object_list, box, 0)
        return box[0]

    def min_int(self, value):
        t = torch.tensor([float(value)], dtype=torch.float64)
        _collective(dist.all_reduce, t, dist.ReduceOp.MIN)
        return int(t[0])

    def total(self, t):
        """A tensor summed over the ranks (a working set's Hessian), as a new tensor."""
        t = t.to(torch.float64).clone()
        _all_reduce(t)
        return t

    def sum(self, f, g):
        packed = torch.cat([f.reshape(1).to(torch.float64), g.to(torch.float64)])
        _all_reduce(packed)
        return packed[0], packed[1:]

    def average_grads(self, params):
        for p in params:
            if p.grad is not None:
                _all_reduce(p.grad)
                p.grad /= self.world


def _schema_difference(ours, theirs):
    """How rank 0's columns (``ours``) and another rank's differ, in words; '' when they agree."""
    a, b = ours["file"], theirs["file"]
    if ours["target"] != theirs["target"]:
        (t, kind), (u, other) = ours["target"], theirs["target"]
        return f"target {t!r} ({kind}) in {a}, {u!r} ({other}) in {b}"
    for name in ours["features"]:
        if name not in theirs["features"]:
            return f"{b} lacks column {name!r} of {a}"
    for name in theirs["features"]:
        if name not in ours["features"]:
            return f"{b} has column {name!r} that {a} lacks"
    if ours["features"] != theirs["features"]:
        return f"the columns of {b} are in another order than in {a}"
    return ""


def _collective(fn, *args):
    try:
        return fn(*args)
    except RuntimeError as exc:  # gloo reports a dead peer or a timeout as RuntimeError
        raise DistributedError(
            f"a collective failed on rank {dist.get_rank()} of {dist.get_world_size()}: another rank stopped or "
            f"timed out ({str(exc).splitlines()[0][:200]})"
        ) from None


def _all_reduce(tensor):
    _collective(dist.all_reduce, tensor)


def init(backend=None, timeout=DEFAULT_TIMEOUT):
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise DistributedError(f"--distributed needs torchrun (or the variables {', '.join(missing)}) to be set")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    try:
        dist.init_process_group(backend=backend, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(f"cannot join the process group: {str(exc).splitlines()[0][:200]}") from None
    return dist.get_rank(), dist.get_world_size()


def fit_distributed(source, target, **kwargs):
    """``fit_stream`` on this rank's shard, with gradients and statistics summed over all ranks."""
    from .stream import fit_stream

    rank, world = init()
    try:
        model = fit_stream(source, target, shard=(rank, world), reduce=AllReduce(world), **kwargs)
        _collective(dist.barrier)
        return model
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def is_rank_zero():
    return int(os.environ.get("RANK", "0")) == 0


__all__ = ["fit_distributed", "init", "AllReduce", "DistributedError", "is_rank_zero"]
