"""Checkpoints of streaming fits (issue 12, item 8): killed runs resume to the same coefficients."""

import json
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from torchlogit._checkpoint import CheckpointError, read_checkpoint
from torchlogit.cli import main
from torchlogit.stream import fit_stream

SGD = dict(solver="sgd", epochs=3, batch_size=16, learning_rate=0.05, random_state=7, buffer_rows=1500, batch_rows=500)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three Parquet files of 2,000 rows in row groups of 700: fragments, chunks and steps that do not align."""
    root = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    for part in range(3):
        X = rng.normal(size=(2000, 6)).astype(np.float32)
        y = (X @ np.arange(1.0, 7.0) / 6 + rng.normal(size=2000) > 0).astype(np.int64)
        table = pa.table({**{f"x{j}": X[:, j] for j in range(6)}, "y": y})
        pq.write_table(table, root / f"part-{part}.parquet", row_group_size=700)
    return root


# The child runs the fit with a checkpoint written every 10 ms and kills itself (SIGKILL: nothing can be
# cleaned up) at a chosen optimizer step or iteration, mid-epoch.
CHILD = """
import json, os, signal, sys
import torchlogit.stream as stream
folder, ckpt, kwargs, kill_at = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
count = [0]
if kwargs["solver"] == "sgd":
    real = stream.make_optimizer
    def counting(*args):
        opt = real(*args)
        step = opt.step
        def counted():
            step()
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        opt.step = counted
        return opt
    stream.make_optimizer = counting
    callback = None
else:
    def callback(info):
        if info.iteration == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
stream.fit_stream(folder, "y", checkpoint=ckpt, checkpoint_every=0.01, callback=callback, **kwargs)
"""


def _run_child(folder, ckpt, kwargs, kill_at, sig=None):
    args = [sys.executable, "-c", CHILD, str(folder), str(ckpt), json.dumps(kwargs), str(kill_at)]
    return subprocess.run(args, capture_output=True, timeout=120)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sgd_killed_mid_epoch_resumes_bit_for_bit(folder, tmp_path, optimizer):
    kwargs = {**SGD, "optimizer": optimizer}
    reference = fit_stream(folder, "y", **kwargs)
    ckpt = tmp_path / "run.ckpt"
    steps_per_epoch = 6000 // 16 + 3  # about: a kill in the middle of the second epoch
    child = _run_child(folder, ckpt, kwargs, kill_at=int(1.5 * steps_per_epoch))
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    state = read_checkpoint(ckpt).state
    assert state["epoch"] == 2 and not state["finished"] and state["step"] > 0  # it did stop mid-epoch
    resumed = fit_stream(folder, "y", resume=ckpt, checkpoint=ckpt, **kwargs)
    np.testing.assert_array_equal(resumed.coef_, reference.coef_)  # bit for bit
    np.testing.assert_array_equal(resumed.intercept_, reference.intercept_)
    assert resumed.loss_curve_ == reference.loss_curve_
    # the finished run's checkpoint returns the same model at once
    again = fit_stream(folder, "y", resume=ckpt, **kwargs)
    np.testing.assert_array_equal(again.coef_, reference.coef_)


def test_exact_streaming_killed_resumes_to_the_same_optimum(folder, tmp_path):
    kwargs = {"solver": "lbfgs", "tol": 1e-6}
    reference = fit_stream(folder, "y", **kwargs)
    ckpt = tmp_path / "run.ckpt"
    child = _run_child(folder, ckpt, kwargs, kill_at=4)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    resumed = fit_stream(folder, "y", resume=ckpt, **kwargs)
    assert resumed.convergence_.converged and resumed.n_iter_[0] > 4
    np.testing.assert_allclose(resumed.coef_, reference.coef_, rtol=1e-3, atol=1e-4)
    assert abs(resumed.objective_ - reference.objective_) <= 1e-6 * abs(reference.objective_)


SIGNALLED = """
import os, signal, sys, json
import torchlogit.stream as stream
folder, ckpt, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
real = stream.make_optimizer
def signalling(*args):
    opt = real(*args)
    step, count = opt.step, [0]
    def counted():
        step()
        count[0] += 1
        if count[0] == 500:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would
    opt.step = counted
    return opt
stream.make_optimizer = signalling
stream.fit_stream(folder, "y", checkpoint=ckpt, checkpoint_every=3600, **kwargs)
"""


def test_sigterm_writes_a_checkpoint_then_ends_the_process(folder, tmp_path):
    """No periodic checkpoint is due (an hour apart): the one on disk is the one SIGTERM caused."""
    ckpt = tmp_path / "run.ckpt"
    child = subprocess.run(
        [sys.executable, "-c", SIGNALLED, str(folder), str(ckpt), json.dumps(SGD)], capture_output=True, timeout=120
    )
    assert child.returncode == -signal.SIGTERM, child.stderr.decode()[-2000:]
    state = read_checkpoint(ckpt).state
    assert state["epoch"] == 2 and len(state["history"]) == 1 and 0 < state["done"] < 500  # written at step 500
    assert not list(tmp_path.glob(".*.tmp"))
    resumed = fit_stream(folder, "y", resume=ckpt, **SGD)
    np.testing.assert_array_equal(resumed.coef_, fit_stream(folder, "y", **SGD).coef_)


def test_a_checkpoint_of_another_run_or_a_damaged_one_is_refused(folder, tmp_path, capsys):
    ckpt = tmp_path / "run.ckpt"
    fit_stream(folder, "y", checkpoint=ckpt, **SGD)
    with pytest.raises(
        CheckpointError, match=r"run\.ckpt: a checkpoint of another run: batch_size is 16 there and 32 here"
    ):
        fit_stream(folder, "y", resume=ckpt, **{**SGD, "batch_size": 32})
    with pytest.raises(CheckpointError, match="a checkpoint of solver 'sgd', not 'lbfgs'"):
        fit_stream(folder, "y", resume=ckpt, solver="lbfgs")
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 1
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        fit_stream(folder, "y", resume=ckpt, **SGD)
    code = main(["train", str(folder), "--target", "y", "--stream", "--solver", "sgd", "--resume", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 4 and len(err.strip().splitlines()) == 1 and "run.ckpt" in err


def test_cli_checkpoint_and_resume(folder, tmp_path, capsys):
    ckpt, model = tmp_path / "c.ckpt", tmp_path / "m.safetensors"
    args = [
        "train",
        str(folder),
        "--target",
        "y",
        "--stream",
        "--solver",
        "sgd",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--random-state",
        "3",
        "--model-out",
        str(model),
    ]
    assert main([*args, "--checkpoint", str(ckpt)]) == 0
    from torchlogit import load

    coef = load(model).coef_
    assert main([*args, "--resume", str(ckpt)]) == 0  # a finished run: the same model again
    np.testing.assert_array_equal(load(model).coef_, coef)
    assert main(["train", "hours", "--checkpoint", str(ckpt)]) == 1  # in memory: refused with one line
    assert "--checkpoint and --resume work with --stream" in capsys.readouterr().err
