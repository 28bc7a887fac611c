"""MNIST with torchlogit and scikit-learn, same split, same machine, one process.

    python bench/mnist.py [--data-dir DIR] [--json FILE]

Multinomial logistic regression, C = 1.0, pixels in [0, 1], train on the
60,000 training images, accuracy on the 10,000 test images. For each system:
wall time of fit, iterations, whether it warned, the objective
sum_i loss_i / n + ||W||^2 / (2 C n) evaluated in float64 on the returned
coefficients, and its relative excess over the best objective seen in the run.
Data: the four IDX files in DIR/mnist/ or DIR (default ../shared/datasets).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from systems import objective  # noqa: E402

from torchlogit import LogisticRegression  # noqa: E402
from torchlogit.datasets import load  # noqa: E402

C = 1.0


def run(name, make, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = make()
        start = time.perf_counter()
        model.fit(data.X_train, data.y_train)
        seconds = time.perf_counter() - start
    return {
        "system": name,
        "seconds": seconds,
        "iterations": int(np.max(model.n_iter_)),
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "test_accuracy": float(model.score(data.X_test, data.y_test)),
        "objective": objective(model.coef_, model.intercept_, data.X_train, data.y_train, C),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    parser.add_argument("--skip-sklearn-tight", action="store_true", help="skip scikit-learn at tol=1e-6 (slow)")
    args = parser.parse_args(argv)
    data = load("mnist", args.data_dir)
    systems = [
        ("torchlogit (defaults: lbfgs, tol=1e-6)", lambda: LogisticRegression(C=C)),
        ("scikit-learn lbfgs (defaults: tol=1e-4, max_iter=100)", lambda: SkLogisticRegression(C=C)),
    ]
    if not args.skip_sklearn_tight:
        systems.append(
            ("scikit-learn lbfgs (tol=1e-6, max_iter=5000)", lambda: SkLogisticRegression(C=C, tol=1e-6, max_iter=5000))
        )
    rows = [run(name, make, data) for name, make in systems]
    best = min(r["objective"] for r in rows)
    print(f"MNIST, C={C}, {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    print(f"{'system':<55} {'time s':>8} {'iter':>5} {'warned':>6} {'test acc':>8} {'objective - best':>16}")
    for r in rows:
        r["excess"] = (r["objective"] - best) / best
        print(
            f"{r['system']:<55} {r['seconds']:8.1f} {r['iterations']:5d} {str(not r['converged']):>6} "
            f"{100 * r['test_accuracy']:7.2f}% {r['excess']:16.1e}"
        )
    ours = rows[0]["seconds"]
    for r in rows[1:]:
        print(f"time ratio {r['system']} / torchlogit: {r['seconds'] / ours:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
