"""torch.distributed (gloo, loopback): 2 and 3 ranks give the single-process fit; a dead rank fails the job."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from torchlogit.stream import fit_stream

RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from torchlogit.distributed import fit_distributed, is_rank_zero
    kwargs = json.loads(sys.argv[2])
    model = fit_distributed(sys.argv[1], "label", **kwargs)
    if is_rank_zero():
        print(json.dumps({"coef": model.coef_.ravel().tolist(), "intercept": model.intercept_.tolist(),
                          "n_iter": int(model.n_iter_[0])}))
    """
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(rank, world, port, timeout="30"):
    env = dict(
        os.environ,
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        TORCHLOGIT_DIST_TIMEOUT=timeout,
        OMP_NUM_THREADS="1",
    )
    return env


def launch(commands, world, timeout=180):
    """Start one process per rank (commands[rank]) and wait for all; returns [(code, stdout, stderr)]."""
    port = free_port()
    procs = [
        subprocess.Popen(cmd, env=env_for(r, world, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r, cmd in enumerate(commands)
    ]
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a rank hung past the test's timeout") from None
        out.append((p.returncode, o, e))
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A folder of Parquet files with 7 row groups in all: uneven shards for 2 and 3 ranks."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    n, d = 7000, 5
    X = rng.standard_normal((n, d)).astype(np.float32) * np.array([1, 5, 0.2, 1, 3], dtype=np.float32)
    y = ((X @ np.array([1.0, 0.2, -4.0, 0.5, 0.3]) + rng.logistic(size=n)) > 0).astype(np.int64)
    t = pa.table({**{f"x{j}": X[:, j] for j in range(d)}, "label": y})
    pq.write_table(t.slice(0, 4000), folder / "a.parquet", row_group_size=1000)
    pq.write_table(t.slice(4000), folder / "b.parquet", row_group_size=1000)
    return folder


@pytest.mark.parametrize(
    "world, penalty",
    [(2, {}), (3, {}), (2, {"penalty": "l1", "C": 0.002})],
    ids=["2-l2", "3-l2", "2-l1"],
)
def test_exact_fit_equals_single_process(shards, world, penalty):
    """L2 by L-BFGS; L1 by prox-newton, whose working set's Hessian is summed over the ranks."""
    kwargs = {"C": 0.5, "tol": 1e-8, "batch_rows": 300, **penalty}
    single = fit_stream(shards, "label", **kwargs)
    if penalty:
        assert single.solver_ == "prox-newton" and 0 < (single.coef_ != 0).sum() < single.coef_.size
    results = launch([[sys.executable, "-c", RANK_SCRIPT, str(shards), json.dumps(kwargs)]] * world, world)
    for code, _, err in results:
        assert code == 0, err[-2000:]
    assert results[1][1].strip() == ""  # only rank 0 speaks
    got = json.loads(results[0][1].strip().splitlines()[-1])
    np.testing.assert_allclose(got["coef"], single.coef_.ravel(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["intercept"], single.intercept_, rtol=1e-5)


def test_sgd_is_data_parallel(shards):
    kwargs = {"solver": "sgd", "epochs": 3, "learning_rate": 0.05, "batch_size": 32, "random_state": 0}
    results = launch([[sys.executable, "-c", RANK_SCRIPT, str(shards), json.dumps(kwargs)]] * 2, 2)
    assert all(code == 0 for code, _, _ in results), results[0][2][-2000:]
    got = json.loads(results[0][1].strip().splitlines()[-1])
    exact = fit_stream(shards, "label", C=1.0)
    table = pq.read_table(shards).to_pandas()  # the whole (small) data set, to score both models
    X, y = table[[f"x{j}" for j in range(5)]].to_numpy(), table["label"].to_numpy()
    sgd_accuracy = ((X @ np.array(got["coef"]) + got["intercept"][0] > 0) == y).mean()
    assert sgd_accuracy > exact.score(table[list(exact.feature_names_in_)], y) - 0.03


def test_cli_under_torchrun_env_and_a_crashed_rank(shards, tmp_path):
    model = tmp_path / "m.safetensors"
    cli = [
        sys.executable,
        "-m",
        "torchlogit",
        "train",
        str(shards),
        "--target",
        "label",
        "--distributed",
        "--model-out",
        str(model),
    ]
    results = launch([cli, cli], 2)
    assert [r[0] for r in results] == [0, 0], results[0][2][-1000:]
    assert "solver lbfgs (streaming)" in results[0][1] and results[1][1] == "" and model.exists()
    # rank 1 joins the group and dies before the first collective: rank 0 must fail, clearly and soon
    crash = [sys.executable, "-c", "import os, torch.distributed as d; d.init_process_group('gloo'); os._exit(3)"]
    port_results = launch([cli, crash], 2, timeout=120)
    code, out, err = port_results[0]
    assert code == 7 and "another rank stopped or timed out" in err and err.count("\n") == 1
    assert port_results[1][0] == 3


def test_ranks_whose_shards_have_other_columns_all_stop_with_the_same_line(shards, tmp_path):
    """Each rank reads its own folder (as on machines with local disks); rank 1's lacks a column."""
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pq.read_table(shards / "b.parquet").drop_columns(["x3"]), other / "b.parquet")
    cli = [sys.executable, "-m", "torchlogit", "train", "{}", "--target", "label", "--distributed"]
    results = launch([[a.format(shards) for a in cli], [a.format(other) for a in cli]], 2, timeout=120)
    lines = [err.strip().splitlines() for _, _, err in results]
    assert [code for code, _, _ in results] == [7, 7], lines  # before: gloo's enforce aborted rank 1 (SIGABRT)
    assert lines[0] == lines[1] and len(lines[0]) == 1
    assert (
        f"ranks 0 and 1 read different columns: {other / 'b.parquet'} lacks column 'x3' of {shards / 'a.parquet'}"
        in lines[0][0]
    )
