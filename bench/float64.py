"""float64 input: torchlogit (fused float64 kernel) against scikit-learn lbfgs on the same copy.

    python bench/float64.py [--rows N]

Most numpy data is float64, which torchlogit keeps (dtype=None follows the
input); this prints both times (median of 3) and each objective's distance
from the better of the two.
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import dense_binary  # noqa: E402
from systems import objective  # noqa: E402

from torchlogit import LogisticRegression  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression as SkLogistic

    case = dense_binary(args.rows, 100)
    X = case.X.astype(np.float64)
    results = {}
    for name, make in (("torchlogit", LogisticRegression), ("sklearn lbfgs", SkLogistic)):
        times = []
        for _ in range(4):  # the first run loads the kernels: dropped
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                model = make().fit(X, case.y)
                times.append(time.perf_counter() - start)
        results[name] = (statistics.median(times[1:]), objective(model.coef_, model.intercept_, X, case.y, 1.0))
    best = min(f for _, f in results.values())
    for name, (seconds, f) in results.items():
        print(f"{name:<14} {seconds:6.2f} s   objective {f:.12g} ({(f - best) / best:.1e} above the better)")
    ratio = results["sklearn lbfgs"][0] / results["torchlogit"][0]
    print(f"scikit-learn / torchlogit: {ratio:.2f}x on {args.rows:,} x 100 float64")


if __name__ == "__main__":
    main()
