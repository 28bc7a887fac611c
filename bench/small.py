"""Small fits, quiet and under load (issue 15): torchlogit's defaults against scikit-learn's lbfgs.

    python bench/small.py [--quick]

Cases: 1,000 x 10 and 10,000 x 20 binary (make_classification), and
scikit-learn's digits (1,797 x 64, 10 classes, raw pixel counts 0..16).
Each system fits with its own defaults (scikit-learn: lbfgs, tol 1e-4;
torchlogit: solver 'auto', tol 1e-6 on the gradient, so it stops nearer the
optimum); the objective each reaches is printed relative to the better one.
Fit times are medians over repeats, each system's in a block of its own
after an untimed fit and a pause of 0.2 s (the pause lets the other
library's spinning BLAS/OpenMP threads go to sleep: interleaved with
scikit-learn's fits, a 10,000 x 20 torchlogit fit measured 3x slower).

Wide data: 3 x 100,000 and 100 x 100,000 float32 (Gaussian columns), C = 1,
to tol 1e-6: whether each converged and in how long (issue 15's goal: < 1 s),
torchlogit against scikit-learn's lbfgs.

First fits: in a fresh Python process, the first and the second fit of
200,000 x 100 float32, with numba's cache warm and with it empty (as after a
plain pip install); issue 15's goal: the first within 1 s of the second.

"Under load": the same fits while one other process keeps a core busy (a
pure-Python loop, as a GridSearchCV worker or a shared CI box would), the
situation where a thread pool that waits on a descheduled worker stalls.
The slowdown factor is loaded time / quiet time for each system.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402


def cases():
    from sklearn.datasets import load_digits, make_classification

    X1, y1 = make_classification(1000, 10, random_state=0)
    X2, y2 = make_classification(10000, 20, random_state=0)
    X3, y3 = load_digits(return_X_y=True)
    return [("1,000 x 10 binary", X1, y1), ("10,000 x 20 binary", X2, y2), ("digits 1,797 x 64, 10 classes", X3, y3)]


def systems():
    from sklearn.linear_model import LogisticRegression as SK

    from torchlogit import LogisticRegression as TL

    return {"torchlogit": lambda: TL(), "sklearn lbfgs": lambda: SK(max_iter=10_000)}


def _busy(stop):
    """A competing process: one core kept busy by Python until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def objective(model, X, y):
    """sum_i loss_i + ||W||^2 / (2 C) at the model's coefficients (both systems' objective, C = 1)."""
    from sklearn.metrics import log_loss

    P = model.predict_proba(X)
    return log_loss(y, P, normalize=False) + 0.5 * float(np.sum(np.asarray(model.coef_, dtype=np.float64) ** 2))


def time_fits(make, X, y, repeats):
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(X, y)  # untimed: first-use costs (imports, the cost probe, numba loading)
        for _ in range(repeats):
            start = time.perf_counter()
            model = make().fit(X, y)
            times.append(time.perf_counter() - start)
    return float(np.median(times)), model


def run(quick=False):
    repeats = 5 if quick else 21
    rows = []
    for name, X, y in cases():
        row = {"case": name}
        for load in ("quiet", "loaded"):
            stop = multiprocessing.Event()
            worker = multiprocessing.Process(target=_busy, args=(stop,)) if load == "loaded" else None
            if worker is not None:
                worker.start()
                time.sleep(0.2)
            try:
                for system, make in systems().items():
                    time.sleep(0.2)
                    seconds, model = time_fits(make, X, y, repeats)
                    row[(system, load)] = seconds
                    row[(system, "objective")] = objective(model, X, y)
                    row[(system, "solver")] = getattr(model, "solver_", "lbfgs")
            finally:
                stop.set()
                if worker is not None:
                    worker.join()
        rows.append(row)
        _print(row)
    return rows


def _print(row):
    best = min(row[("torchlogit", "objective")], row[("sklearn lbfgs", "objective")])
    print(f"- {row['case']}")
    for system in ("torchlogit", "sklearn lbfgs"):
        q, lo = row[(system, "quiet")], row[(system, "loaded")]
        gap = (row[(system, "objective")] - best) / abs(best)
        print(
            f"  {system:<14} quiet {q * 1e3:8.1f} ms   loaded {lo * 1e3:8.1f} ms   slowdown {lo / q:5.2f}x"
            f"   objective {gap:.1e} above the better ({row[(system, 'solver')]})"
        )
    tq = row[("torchlogit", "quiet")] / row[("sklearn lbfgs", "quiet")]
    tl = row[("torchlogit", "loaded")] / row[("sklearn lbfgs", "loaded")]
    print(f"  torchlogit / scikit-learn: quiet {tq:.2f}x, loaded {tl:.2f}x (goal <= 1x both)")


def wide(quick=False):
    """Time to tol 1e-6 on n << d, each system once (the fits take up to seconds)."""
    from sklearn.linear_model import LogisticRegression as SK

    from torchlogit import LogisticRegression as TL

    rng = np.random.default_rng(0)
    rows = []
    for n in (3, 100):
        X = rng.normal(size=(n, 100_000)).astype(np.float32)
        y = np.arange(n) % 2
        row = {"case": f"{n} x 100,000 float32"}
        systems = {"torchlogit": lambda: TL(tol=1e-6), "sklearn lbfgs": lambda: SK(tol=1e-6, max_iter=1000)}
        for system, make in systems.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make().fit(X[:, :1000], y)  # untimed: first-use costs
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                model = make().fit(X, y)
                seconds = time.perf_counter() - start
            report = getattr(model, "convergence_", None)
            warned = any("converge" in str(w.message) for w in caught)
            converged = report.converged if report is not None else not warned
            solver = getattr(model, "solver_", "lbfgs")
            row[system] = {"seconds": seconds, "converged": bool(converged), "solver": solver}
        rows.append(row)
        t, k = row["torchlogit"], row["sklearn lbfgs"]
        print(
            f"- {row['case']}: torchlogit {t['seconds']:.2f} s ({t['solver']}, converged: {t['converged']}); "
            f"sklearn lbfgs {k['seconds']:.2f} s (converged: {k['converged']}); goal: converged in < 1 s"
        )
    return rows


FIRST_FITS = """
import time, numpy as np
from torchlogit import LogisticRegression
rng = np.random.default_rng(0)
X = rng.normal(size=(200_000, 100)).astype(np.float32)
y = (X[:, 0] + rng.logistic(size=200_000) > 0).astype(int)
t0 = time.perf_counter(); LogisticRegression().fit(X, y); t1 = time.perf_counter(); LogisticRegression().fit(X, y)
print(t1 - t0, time.perf_counter() - t1)
from torchlogit import _kernels
if _kernels._warming["thread"] is not None:  # an empty cache: let its compile end before the folder goes
    _kernels._warming["thread"].join()
"""


def first_fits():
    """(first, second) fit seconds in a fresh process, with the kernel cache warm and empty."""
    import os
    import subprocess
    import tempfile

    rows = []
    for cache in ("warm", "empty"):
        with tempfile.TemporaryDirectory() as empty:
            env = dict(os.environ, **({"NUMBA_CACHE_DIR": empty} if cache == "empty" else {}))
            out = subprocess.run([sys.executable, "-c", FIRST_FITS], env=env, capture_output=True, text=True)
        first, second = map(float, out.stdout.split()[-2:])
        rows.append({"cache": cache, "first": first, "second": second})
        print(
            f"- fresh process, kernel cache {cache}: first fit {first:.2f} s, second {second:.2f} s, "
            f"+{first - second:.2f} s (goal <= 1 s)"
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(describe())
    run(args.quick)
    wide(args.quick)
    first_fits()


if __name__ == "__main__":
    main()
