"""`make bench`: torchlogit against its peers, every figure a ratio measured in this process.

    python bench/run.py [--quick] [--out bench/results] [--skip-memory]

1. Time to optimum: for each case, f* is computed once (torchlogit in float64
   to max|gradient| <= 1e-8, its duality gap printed as the certificate of
   accuracy); each system then runs its ladder of settings
   (see systems.py) and the first setting within 1e-6 relative of f* counts.
   Wall times are medians of repeats (one run when a fit takes over 10 s).
   After the first setting, max_iter is capped so that a fit stays within a
   time budget (6 s quick; full: 160 s for MNIST, where scikit-learn needs
   ~130 s, and 80 s elsewhere), extrapolated from the time per iteration seen
   so far; a system that hits the cap is reported as not reaching the
   optimum, with the best relative gap it did reach.
2. Memory: peak resident memory above the input's own size, each fit in a
   fresh subprocess, after a small warm-up fit that loads the libraries
   (their size is printed apart).
3. Gradient passes: time per full pass of torchlogit's loss_gradient, and
   bytes of X read per second, against this machine's read bandwidth measured
   alternately with the passes (it drifts).
4. sgd: rows per second and loss per epoch, torchlogit's sgd solver against
   the lecture's loop (DataLoader over a TensorDataset, BCELoss on sigmoid).
5. L1 and L2 on sparse input (issue 13; bench/sparse.py, where it is
   described): time to 1e-6 of certified optima against skglm, celer and
   scikit-learn's liblinear, saga, lbfgs and newton-cg.
6. Choosing C by cross-validation (issue 14; bench/cv.py): LogisticRegressionCV
   against scikit-learn's, Cs=10, cv=5: 200,000 x 100 float32 L2, breast
   cancer elastic net and L2; same C, certified fits, ConvergenceWarnings.
7. Small fits, quiet and with one competing busy process (issue 15;
   bench/small.py): 1,000 x 10, 10,000 x 20 and digits against scikit-learn's
   lbfgs, each with its defaults; fit times and slowdown factors; wide
   data, 3 x 100,000 and 100 x 100,000, time to tol 1e-6; the first fits in
   a fresh process with numba's cache warm and empty.
Writes results.json, results.csv and time_to_optimum.png into --out, and
sparse.json and sparse.csv for section 5.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import cases, dense_binary  # noqa: E402
from machine import describe  # noqa: E402
from systems import ladders, objective  # noqa: E402

from torchlogit import LogisticRegression  # noqa: E402
from torchlogit._loss import POINTWISE, LinearModelLoss  # noqa: E402

TARGET = 1e-6


def read_bandwidth(nbytes=400 << 20):
    """Bytes per second of summing a float32 array far larger than the caches' share per core."""
    x = torch.ones(nbytes // 4)
    x.sum()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - start)
    return nbytes / statistics.median(times)


def gemm_rate(size=2048):
    """Multiply-adds per second of a large square float32 GEMM: what this machine's cores can compute at best.

    A pass over X costs 2 n d k multiply-adds (X W^T forward, R^T X back);
    with k = 10 classes that work, not reading X, bounds the pass on a
    machine with few cores.
    """
    A = torch.randn(size, size)
    A @ A
    times = []
    for _ in range(3):
        start = time.perf_counter()
        A @ A
        times.append(time.perf_counter() - start)
    return size**3 / statistics.median(times)


def warm_up():
    """Compile (first use after installing) or load the fused kernels, so no timing below includes it."""
    from torchlogit import _kernels

    start = time.perf_counter()
    state = "numba kernels" if _kernels.warm_up() else "numba missing: torch path only"
    return f"{state}, ready in {time.perf_counter() - start:.1f} s"


def timed_fit(make, X, y, repeats):
    times, model = [], None
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = make()
            start = time.perf_counter()
            model = est.fit(X, y)
            times.append(time.perf_counter() - start)
        if times[-1] > 10:
            break
    return statistics.median(times), model


def optimum(case):
    """f*: torchlogit in float64 to max|gradient| 1e-8, with its duality gap as the proof of accuracy.

    (A gradient tolerance of 1e-10 is below float64 rounding for MNIST's
    objective; the gap certifies f - f* instead, ~1e-10 relative or better.)
    """
    model = LogisticRegression(C=case.C, tol=1e-8, dtype="float64", max_iter=5_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(case.X, case.y)
    f_star = objective(model.coef_, model.intercept_, case.X, case.y, case.C)
    gap = model.convergence_.duality_gap
    print(f"  f* = {f_star:.12g} (duality gap {gap:.1e}, {model.n_iter_[0]} iterations)", flush=True)
    return f_star


def time_to_optimum(case, repeats, budget):
    f_star = optimum(case)
    rows = []
    for system, ladder in ladders(case.C, case.binary, case.with_statsmodels).items():
        row = {"case": case.name, "system": system, "seconds": None, "setting": None, "iterations": None}
        best_gap, note, max_iter = float("inf"), "", None
        for label, make in ladder:
            # the first rung runs as set; later ones get as many iterations as fit the budget
            seconds, model = timed_fit(lambda: make(max_iter), case.X, case.y, repeats)  # noqa: B023 (called here)
            iters = int(np.max(model.n_iter_))
            gap = (objective(model.coef_, model.intercept_, case.X, case.y, case.C) - f_star) / abs(f_star)
            best_gap = min(best_gap, gap)
            if gap <= TARGET:
                row.update(seconds=seconds, setting=label, iterations=iters)
                break
            if max_iter is not None and iters >= max_iter - 1:  # newton-cholesky counts max_iter - 1
                note = f"; stopped by the {budget:g} s budget at {iters} iterations"
                break  # a tighter setting would need still more
            max_iter = max(10, int(budget / (seconds / max(iters, 1))))
        row["rel_gap"] = best_gap
        row["note"] = note
        rows.append(row)
        print(f"  {system:<26} {_fmt(row)}", flush=True)
    ours = rows[0]["seconds"]
    for row in rows:
        row["ratio_vs_torchlogit"] = None if (row["seconds"] is None or ours is None) else row["seconds"] / ours
    return rows


def _fmt(row):
    if row["seconds"] is None:
        return f"did not reach 1e-6 (best {row['rel_gap']:.1e}{row['note']})"
    return f"{row['seconds']:8.2f} s  {row['setting']:<22} iterations {row['iterations']}"


def memory(quick):
    """Peak RSS above the input, torchlogit and scikit-learn lbfgs, each fit in a fresh process (see memory_probe)."""
    n = 200_000 if quick else 1_000_000
    out = []
    for system in ("torchlogit", "sklearn lbfgs"):
        cmd = [sys.executable, __file__, "--memory-probe", system, "--probe-rows", str(n)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def _rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def memory_probe(system, n):
    """One fit in this fresh process: peak RSS above the input, after a warm-up fit on 40,000 rows.

    The warm-up loads what every fit needs whatever the data size (numba's
    LLVM and the compiled kernels for torchlogit, ~95 MiB; scikit-learn's
    solver modules); it is reported apart as ``libraries_bytes``, so the
    ratio measures what grows with the data: copies and temporaries.
    """
    case = dense_binary(n, 100)
    if system == "torchlogit":
        make = lambda: LogisticRegression()  # noqa: E731
    else:
        from sklearn.linear_model import LogisticRegression as SkLogistic

        make = lambda: SkLogistic()  # noqa: E731
    before = _rss_kib("VmRSS:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make().fit(case.X[:40_000], case.y[:40_000])
        libraries = (_rss_kib("VmRSS:") - before) * 1024
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size
        base = _rss_kib("VmHWM:")
        make().fit(case.X, case.y)
    extra = (_rss_kib("VmHWM:") - base) * 1024
    print(
        json.dumps(
            {
                "system": system,
                "input_bytes": case.X.nbytes,
                "peak_above_input_bytes": extra,
                "ratio_to_input": extra / case.X.nbytes,
                "libraries_bytes": libraries,
            }
        )
    )


def gradient_passes(quick):
    """Time per pass against the time to read X once from memory.

    This machine's bandwidth drifts by +-15% over minutes, so it is measured
    again for every shape, between rounds of passes: each round is three
    passes back to back, as in a fit (so an X that fits in the 260 MB L3 is
    read from there after the first), then one sum over a 400 MB buffer, far
    larger than the caches. The limit is X's bytes over the median of those
    sums' bandwidths; the time per pass is the median over all passes.
    """
    shapes = [(10_000, 10, 1), (100_000, 100, 1), (1_000_000, 100, 1), (100_000, 2_000, 1), (60_000, 784, 10)]
    if not quick:
        shapes += [(10_000_000, 100, 1), (1_000_000, 1_000, 1)]
    probe = torch.ones(100 << 20)
    fma = gemm_rate()
    rows = []
    for n, d, k in shapes:  # k = 10: MNIST's shape, multinomial
        X = torch.randn(n, d)
        y = (torch.rand(n) < 0.5).float() if k == 1 else torch.randint(0, k, (n,))
        s = torch.full((n,), 1.0 / n)
        loss = LinearModelLoss(POINTWISE["binary" if k == 1 else "multinomial"], d, k, True)
        theta = torch.zeros(loss.n_params)
        loss.loss_gradient(theta, X, y, s, 1e-6)
        times, rates = [], []  # 3 to 11 rounds (as many as fit in ~1 s of passes)
        while len(rates) < 3 or (len(rates) < 11 and sum(times) < 1.0):
            for _ in range(3):
                start = time.perf_counter()
                loss.loss_gradient(theta, X, y, s, 1e-6)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            probe.sum()
            rates.append(probe.numel() * 4 / (time.perf_counter() - start))
        t, bandwidth = statistics.median(times), statistics.median(rates)
        limit = X.numel() * 4 / bandwidth
        compute = 2 * X.numel() * k / fma  # seconds of multiply-adds at the GEMM rate
        kind = "binary" if k == 1 else f"{k} classes"
        rows.append(
            {
                "n": n,
                "d": d,
                "classes": k if k > 1 else 2,
                "seconds_per_pass": t,
                "bytes_per_second": X.numel() * 4 / t,
                "bandwidth_bytes_per_second": bandwidth,
                "times_bandwidth_limit": t / limit,
                "compute_limit_seconds": compute,
                "times_compute_limit": t / compute,
            }
        )
        print(
            f"  {n:>10,} x {d:<5} {kind:<10} {1e3 * t:9.2f} ms/pass  {X.numel() * 4 / t / 1e9:6.1f} GB/s  "
            f"{t / limit:5.2f} x the read-bandwidth limit ({bandwidth / 1e9:.1f} GB/s meanwhile)"
            + (f"; compute limit {1e3 * compute:.2f} ms ({t / compute:.2f} x)" if compute > limit else ""),
            flush=True,
        )
        del X
    return rows


def sgd_throughput(quick):
    from torch.utils.data import DataLoader, TensorDataset

    n, d, epochs, batch = (50_000 if quick else 200_000), 20, 2, 32
    case = dense_binary(n, d, seed=2)
    X, y = torch.from_numpy(case.X), torch.from_numpy(case.y).float()

    def naive():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(d, 1), torch.nn.Sigmoid())
        criterion, opt = torch.nn.BCELoss(), torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(TensorDataset(X, y[:, None]), batch_size=batch, shuffle=True)
        losses = []
        for _ in range(epochs):
            for xb, yb in loader:
                loss = criterion(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            lin = model[0]
            losses.append(objective(lin.weight.detach().numpy(), lin.bias.detach().numpy(), case.X, case.y, np.inf))
        return losses

    start = time.perf_counter()
    naive_losses = naive()
    naive_s = time.perf_counter() - start
    ours_losses = []
    start = time.perf_counter()
    model = LogisticRegression(
        solver="sgd", penalty=None, batch_size=batch, learning_rate=0.01, max_iter=epochs, random_state=0
    ).fit(case.X, case.y)
    ours_s = time.perf_counter() - start
    # the same epochs again, one at a time (untimed), to read the full objective after each
    stepwise = LogisticRegression(
        solver="sgd", penalty=None, batch_size=batch, learning_rate=0.01, max_iter=1, random_state=0, warm_start=True
    )
    for _ in range(epochs):
        stepwise.fit(case.X, case.y)
        ours_losses.append(objective(stepwise.coef_, stepwise.intercept_, case.X, case.y, np.inf))
    del model
    result = {
        "rows": n,
        "epochs": epochs,
        "batch_size": batch,
        "naive_rows_per_s": n * epochs / naive_s,
        "torchlogit_rows_per_s": n * epochs / ours_s,
        "speedup": naive_s / ours_s,
        "naive_loss_per_epoch": naive_losses,
        "torchlogit_loss_per_epoch": ours_losses,
    }
    print(
        f"  lecture loop {result['naive_rows_per_s']:,.0f} rows/s, torchlogit sgd "
        f"{result['torchlogit_rows_per_s']:,.0f} rows/s: {result['speedup']:.1f}x; loss per epoch "
        f"{[round(v, 4) for v in naive_losses]} vs {[round(v, 4) for v in ours_losses]}",
        flush=True,
    )
    return result


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case_names = list(dict.fromkeys(r["case"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.9 * len(case_names)))
    height = 0.8 / len(systems)
    for j, system in enumerate(systems):
        for i, case in enumerate(case_names):
            r = next((r for r in rows if r["case"] == case and r["system"] == system), None)
            if r is None:
                continue
            y = i + j * height
            if r["seconds"] is None:
                ax.text(1e-2, y, f"{system}: not reached", va="center", fontsize=7)
            else:
                ax.barh(y, r["seconds"], height=height, color=f"C{j}", label=system if i == 0 else None)
    ax.set_xscale("log")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(case_names))], [c[:40] for c in case_names], fontsize=8)
    ax.set_xlabel("seconds to reach the optimum within 1e-6 (log scale)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data: the whole run in about 3 minutes")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only", default="1,2,3,4,5,6,7", help="comma-separated sections to run (default all)")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        return memory_probe(args.memory_probe, args.probe_rows)
    started = time.perf_counter()
    bandwidth = read_bandwidth()
    kernels = warm_up()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none available"
    print(f"{describe()}; measured read bandwidth {bandwidth / 1e9:.1f} GB/s; fused CPU kernels: {kernels}")
    results = {"bandwidth_bytes_per_s": bandwidth, "gpu": gpu, "quick": args.quick, "time_to_optimum": []}
    sections = {int(v) for v in args.only.split(",")}
    repeats = 1 if args.quick else 3
    if 1 in sections:
        print("\n1. time to optimum (within 1e-6 relative of f*)")
        for case in cases(args.quick):
            print(f"- {case.name}", flush=True)
            budget = 6.0 if args.quick else case.budget
            results["time_to_optimum"] += time_to_optimum(case, repeats, budget)
    if 2 in sections and not args.skip_memory:
        print("\n2. peak memory above the input (fresh process each)")
        results["memory"] = memory(args.quick)
        for m in results["memory"]:
            print(
                f"  {m['system']:<14} {m['peak_above_input_bytes'] / 2**20:8.0f} MiB above a "
                f"{m['input_bytes'] / 2**20:.0f} MiB input: {m['ratio_to_input']:.2f}x "
                f"(plus {m['libraries_bytes'] / 2**20:.0f} MiB of code and libraries loaded by a first, "
                f"small fit)"
            )
    if 3 in sections:
        print("\n3. full gradient passes (float32; binary, and MNIST's shape with 10 classes)")
        results["gradient_passes"] = gradient_passes(args.quick)
    if 4 in sections:
        print("\n4. sgd against the lecture's loop (batch 32, lr 0.01)")
        results["sgd"] = sgd_throughput(args.quick)
    out = Path(args.out)
    if 5 in sections:
        import sparse

        print("\n5. L1 and L2 on sparse input (issue 13; bench/sparse.py): time to 1e-6 of certified optima")
        results["sparse"] = sparse.run_all(args.quick)
        sparse.write(results["sparse"], out)
    if 6 in sections:
        import cv

        print("\n6. choosing C by cross-validation (issue 14; bench/cv.py): LogisticRegressionCV, Cs=10, cv=5")
        results["cv"] = cv.run_all(args.quick)
    if 7 in sections:
        import small

        print("\n7. small fits, quiet and under load (issue 15; bench/small.py): defaults against scikit-learn lbfgs")
        results["small"] = [
            {"case": r["case"], **{" ".join(k) if isinstance(k, tuple) else k: v for k, v in r.items() if k != "case"}}
            for r in small.run(args.quick)
        ]
        results["wide"] = small.wide(args.quick)
        results["first_fits"] = small.first_fits()
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if results["time_to_optimum"]:
        with open(out / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(results["time_to_optimum"][0]))
            writer.writeheader()
            writer.writerows(results["time_to_optimum"])
        plot(results["time_to_optimum"], out / "time_to_optimum.png")
    print(f"\nwrote {out}/results.json, results.csv, time_to_optimum.png in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
