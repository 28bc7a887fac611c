"""torchlogit summary() against statsmodels Logit / MNLogit: agreement and time, one process.

    python bench/inference.py [--large N]

For each data set: fit without a penalty and compute standard errors, with
torchlogit (newton, tol 1e-10, then ``summary``) and with statsmodels
(Newton, tol 1e-10, ``bse``). Prints the largest relative difference of
params and of bse, and both wall times (fit + standard errors).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import statsmodels.api as sm
import torch
from sklearn.datasets import load_breast_cancer

from torchlogit import LogisticRegression


def spector():
    d = sm.datasets.spector.load_pandas()
    return d.exog, d.endog.to_numpy()


def breast_cancer():
    data = load_breast_cancer(as_frame=True)
    cols = ["mean radius", "mean texture", "mean smoothness", "mean symmetry", "worst concavity"]
    return data.data[cols], data.target.to_numpy()


def anes96():
    d = sm.datasets.anes96.load_pandas()
    return d.exog[["logpopul", "selfLR", "age", "educ", "income"]], d.endog.to_numpy().astype(int)


def synthetic(n, d, K, seed=0):
    """A known model: standard normal features, coefficients ~ N(0, 0.5^2)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    B = 0.5 * rng.standard_normal((K if K > 2 else 1, d))
    Z = X @ B.T
    if K == 2:
        y = (rng.random(n) < 1 / (1 + np.exp(-Z[:, 0]))).astype(int)
    else:
        y = (Z + rng.gumbel(size=Z.shape)).argmax(1)  # Gumbel-max: an exact softmax draw
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(d)]), y


def measure(name, X, y):
    K = len(np.unique(y))
    start = time.perf_counter()
    model = LogisticRegression(penalty=None, solver="newton", tol=1e-10).fit(X, y)
    res = model.summary(X, y)
    ours = time.perf_counter() - start
    exog = sm.add_constant(X)
    start = time.perf_counter()
    if K == 2:
        ref = sm.Logit(y, exog).fit(disp=0, method="newton", tol=1e-10, maxiter=100)
        params, bse = np.asarray(ref.params), np.asarray(ref.bse)
    else:
        ref = sm.MNLogit(y, exog).fit(disp=0, method="newton", tol=1e-10, maxiter=100)
        params, bse = np.asarray(ref.params).T, np.asarray(ref.bse).T
    theirs = time.perf_counter() - start
    return {
        "data": name,
        "n": len(y),
        "d": X.shape[1],
        "classes": K,
        "params_rel": float(np.max(np.abs(res.params - params) / np.abs(params))),
        "bse_rel": float(np.max(np.abs(res.bse - bse) / np.abs(bse))),
        "torchlogit_s": ours,
        "statsmodels_s": theirs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000, help="rows of the large synthetic problems")
    args = parser.parse_args(argv)
    cases = [
        ("spector (Logit)", *spector()),
        ("breast cancer, 5 columns (Logit)", *breast_cancer()),
        ("anes96 (MNLogit, 7 classes)", *anes96()),
        (f"synthetic binary {args.large:,} x 20", *synthetic(args.large, 20, 2)),
        (f"synthetic 5-class {args.large // 5:,} x 10", *synthetic(args.large // 5, 10, 5)),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; statsmodels {getattr(sm, '__version__', '')}")
    print(
        f"{'data':<36} {'n':>9} {'params rel':>11} {'bse rel':>9} "
        f"{'torchlogit s':>13} {'statsmodels s':>14} {'ratio':>6}"
    )
    for name, X, y in cases:
        r = measure(name, X, y)
        print(
            f"{r['data']:<36} {r['n']:>9} {r['params_rel']:>11.1e} {r['bse_rel']:>9.1e} {r['torchlogit_s']:>13.3f} "
            f"{r['statsmodels_s']:>14.3f} {r['statsmodels_s'] / r['torchlogit_s']:>6.1f}"
        )


if __name__ == "__main__":
    main()
