"""The benchmark's data: MNIST from the shared copy, and synthetic problems with known models.

Synthetic data is generated in float32 block by block, so generating it never
needs more memory than the array itself (the memory figures depend on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@dataclass
class Case:
    name: str
    X: np.ndarray
    y: np.ndarray
    C: float = 1.0
    binary: bool = True
    with_statsmodels: bool = False
    budget: float = 80.0  # seconds a peer's fit may take in the full run (bench/run.py)


def mnist(n=None):
    from torchlogit.datasets import load

    data = load("mnist", SHARED)
    X, y = data.X_train[:n], data.y_train[:n]
    return Case(f"MNIST train {len(y):,} x 784, 10 classes", X, y, binary=False, budget=160.0)


def dense_binary(n, d, unscaled=False, seed=0, block=100_000):
    """x ~ N(0, I) (times column scales from 1e-3 to 1e3 when ``unscaled``), y ~ Bernoulli(sigmoid(x.beta - 0.5))."""
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal(d) * 0.3
    scales = np.logspace(-3, 3, d).astype(np.float32) if unscaled else None
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rng.standard_normal(out=X[start:stop], dtype=np.float32)
        z = X[start:stop] @ beta.astype(np.float32) - 0.5
        y[start:stop] = rng.random(stop - start) < 1.0 / (1.0 + np.exp(-z))
        if unscaled:
            X[start:stop] *= scales
    kind = "raw columns, scales 1e-3..1e3" if unscaled else "standard normal"
    return Case(f"binary {n:,} x {d} float32, {kind}", X, y)


def small_binary(n=10_000, d=20):
    case = dense_binary(n, d, seed=1)
    case.name = f"small binary {n:,} x {d} float32"
    case.with_statsmodels = True
    return case


def cases(quick):
    """The cases of the time-to-optimum table."""
    if quick:
        out = [small_binary(5_000, 20), dense_binary(100_000, 100), dense_binary(100_000, 100, unscaled=True)]
        if SHARED.is_dir():
            out.insert(0, mnist(10_000))
        return out
    out = [small_binary(), dense_binary(1_000_000, 100), dense_binary(1_000_000, 100, unscaled=True)]
    if SHARED.is_dir():
        out.insert(0, mnist())
    return out
