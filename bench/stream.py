"""Streaming and distributed fits against the in-memory fit, same data, one run.

    python bench/stream.py [--rows N]

Writes a Parquet file (N x 20 float32, 16 row groups), then times:
the in-memory LogisticRegression.fit, fit_stream (exact), and fit_distributed
on 1, 2 and 3 gloo processes (spawned here on loopback), reporting rows/s
(rows x passes / wall time) and the largest coefficient difference against
the in-memory fit; and the peak resident memory of the streaming process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from torchlogit import LogisticRegression

RANK = """
import json, resource, sys, time
from torchlogit.distributed import fit_distributed, is_rank_zero
from torchlogit.stream import fit_stream
start = time.perf_counter()
if sys.argv[2] == "stream":
    model = fit_stream(sys.argv[1], "label", tol=1e-7)
else:
    model = fit_distributed(sys.argv[1], "label", tol=1e-7)
seconds = time.perf_counter() - start
if is_rank_zero():
    print(json.dumps({"seconds": seconds, "coef": model.coef_.ravel().tolist(), "n_iter": int(model.n_iter_[0]),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n, d = args.rows, 20
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = (X @ (rng.standard_normal(d) * 0.3).astype(np.float32) + rng.logistic(size=n) > 0).astype(np.int64)
    folder = Path(tempfile.mkdtemp())
    path = folder / "data.parquet"
    pq.write_table(pa.table({**{f"x{j}": X[:, j] for j in range(d)}, "label": y}), path, row_group_size=n // 16)
    start = time.perf_counter()
    ref = LogisticRegression(solver="lbfgs", tol=1e-7).fit(X, y)
    mem_s = time.perf_counter() - start
    print(f"{n:,} x {d} float32 ({X.nbytes / 2**20:.0f} MiB), Parquet {path.stat().st_size / 2**20:.0f} MiB")
    print(
        f"in-memory lbfgs: {mem_s:.2f} s, {ref.n_iter_[0]} iterations, {n * (ref.n_iter_[0] + 1) / mem_s:,.0f} rows/s"
    )
    for world, mode in [(1, "stream"), (1, "distributed"), (2, "distributed"), (3, "distributed")]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        threads = str(max(1, (os.cpu_count() or 1) // world))
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RANK, str(path), mode],
                stdout=subprocess.PIPE,
                text=True,
                env=dict(
                    os.environ,
                    RANK=str(r),
                    WORLD_SIZE=str(world),
                    MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=str(port),
                    OMP_NUM_THREADS=threads,
                ),
            )
            for r in range(world)
        ]
        outs = [p.communicate()[0] for p in procs]
        res = json.loads(outs[0].strip().splitlines()[-1])
        diff = np.max(np.abs(np.array(res["coef"]) - ref.coef_.ravel()) / np.abs(ref.coef_.ravel()))
        passes = res["n_iter"] + 2  # the first pass, and about one evaluation per iteration
        print(
            f"{mode:<12} {world} process(es): {res['seconds']:.2f} s, {res['n_iter']} iterations, "
            f"~{n * passes / res['seconds']:,.0f} rows/s, max rel coef diff {diff:.1e}, "
            f"peak RSS rank 0 {res['peak_rss_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
