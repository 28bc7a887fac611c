"""Checkpoints of long fits: the state is written every N seconds and on SIGINT/SIGTERM, and a fit resumes from it.

A checkpoint file is a :mod:`torchlogit._safefile` container (format
"torchlogit-checkpoint", version 1): the same rules as model files, no
pickle and a SHA-256 of every byte, written atomically. Its JSON metadata
holds

    kind    which loop wrote it ("sgd": mini-batch SGD, "lbfgs": the exact streaming solver)
    run     what must be equal to resume: the data (files and sizes), the
            columns, the classes, every hyper-parameter that changes the result
    state   where the loop stood: epoch, chunk and step, counters, history

and its tensors the numbers: parameters, the optimizer's state, the random
generator's state. Resuming an sgd fit from a checkpoint gives the same
coefficients, bit for bit on the CPU, as the run that was not interrupted.

What a SIGKILL leaves: the last checkpoint written (never a damaged one, the
write is atomic) and possibly an orphan ``.NAME.*.tmp`` beside it.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._atomic import atomic_write_bytes
from ._safefile import Invalid, checked_metadata, encode, read_tensors

FORMAT = "torchlogit-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another run (one line naming the file)."""


@dataclass
class Checkpoint:
    kind: str
    run: dict
    state: dict
    tensors: dict = field(default_factory=dict)  # name -> numpy array (F32, F64, I64 or U8)


def save_checkpoint(path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` at ``path`` atomically."""
    from . import __version__

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torchlogit_version": __version__,
        "kind": checkpoint.kind,
        "run": checkpoint.run,
        "state": checkpoint.state,
    }
    atomic_write_bytes(path, encode(meta, checkpoint.tensors))


def read_checkpoint(path) -> Checkpoint:
    """The checkpoint at ``path``, after checking its format, digest and fields."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = path.read_bytes()
        header, meta, start = checked_metadata(data, FORMAT, FORMAT_VERSION, "checkpoint")
        if set(meta) != {"format", "format_version", "torchlogit_version", "kind", "run", "state"} or not (
            isinstance(meta["run"], dict) and isinstance(meta["state"], dict)
        ):
            raise Invalid("malformed checkpoint metadata")
        names = [k for k in header if k != "__metadata__"]
        tensors = read_tensors(header, data, start, names, {"F32", "F64", "I64", "U8"})
    except Invalid as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    return Checkpoint(meta["kind"], meta["run"], meta["state"], tensors)


def load_checkpoint(path, kind: str, run: dict) -> Checkpoint:
    """The checkpoint at ``path``, refused unless it was written by a ``kind`` loop of the same ``run``."""
    checkpoint = read_checkpoint(path)
    if checkpoint.kind != kind:
        raise CheckpointError(f"{path}: a checkpoint of solver {checkpoint.kind!r}, not {kind!r}")
    for key in sorted(set(run) | set(checkpoint.run)):
        if checkpoint.run.get(key) != run.get(key):
            raise CheckpointError(
                f"{path}: a checkpoint of another run: {key} is {_short(checkpoint.run.get(key))} there and "
                f"{_short(run.get(key))} here"
            )
    return checkpoint


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ optimizer and generator state
def optimizer_state(optimizer) -> tuple[dict, dict]:
    """(JSON, tensors) of a torch.optim optimizer's state; our plain SGD has none."""
    if not hasattr(optimizer, "state_dict"):
        return {}, {}
    sd = optimizer.state_dict()
    plain, tensors = {"param_groups": sd["param_groups"], "state": {}}, {}
    for index, entries in sd["state"].items():
        plain["state"][str(index)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value.detach().cpu().numpy()
                plain["state"][str(index)][key] = {"tensor": f"opt.{index}.{key}"}
            else:
                plain["state"][str(index)][key] = value
    return plain, tensors


def restore_optimizer(optimizer, plain: dict, tensors: dict) -> None:
    if not hasattr(optimizer, "load_state_dict"):
        return
    state = {}
    for index, entries in plain.get("state", {}).items():
        state[int(index)] = {
            key: torch.from_numpy(tensors[value["tensor"]]) if isinstance(value, dict) else value
            for key, value in entries.items()
        }
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def generator_state(gen: torch.Generator) -> np.ndarray:
    return gen.get_state().numpy().copy()  # (5056,) uint8 for the CPU's Mersenne twister


def restore_generator(gen: torch.Generator, state: np.ndarray) -> None:
    gen.set_state(torch.from_numpy(np.ascontiguousarray(state, dtype=np.uint8)))


# ------------------------------------------------------------------ when to write
class _Stop(Exception):
    """Raised by :meth:`Checkpointer.stop_if_signalled` after the checkpoint is written."""


class Checkpointer:
    """Writes a loop's checkpoints to ``path``: every ``every`` seconds, and at once after SIGINT or SIGTERM.

        with Checkpointer(path, "sgd", run, every=60) as checkpoints:
            for step in ...:
                ...
                if checkpoints.due():
                    checkpoints.write(state, tensors)   # after a signal this also leaves the loop

    On leaving the block after a signal the previous handlers are back and the
    signal is raised again, so the process ends as that signal asked
    (KeyboardInterrupt for Ctrl-C, after the checkpoint is on disk). Handlers
    are installed in the main thread only, and only for signals that would
    otherwise end the process.
    """

    def __init__(self, path, kind: str, run: dict, every: float = 60.0):
        self.path, self.kind, self.run, self.every = Path(path), kind, run, float(every)
        self.signum, self._last, self._previous = None, time.monotonic(), {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
                    self._previous[signum] = signal.signal(signum, self._arrived)
        return self

    def _arrived(self, signum, frame):
        self.signum = signum

    def due(self) -> bool:
        return self.signum is not None or time.monotonic() - self._last >= self.every

    def write(self, state: dict, tensors: dict) -> None:
        """Write now; then, if a signal arrived, leave the ``with`` block (which raises the signal again)."""
        save_checkpoint(self.path, Checkpoint(self.kind, self.run, state, tensors))
        self._last = time.monotonic()
        if self.signum is not None:
            raise _Stop

    def __exit__(self, kind, exc, tb):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        if self.signum is not None and (kind is None or kind is _Stop):
            signal.raise_signal(self.signum)  # KeyboardInterrupt, or the process ends (SIGTERM)
            raise SystemExit(128 + self.signum)  # only if the signal is ignored after all
        return False
