import os

import numpy as np
import pytest
import torch

# solver='auto' weighs Newton against L-BFGS with costs measured on the machine (torchlogit._costs); the
# suite uses one fixed table instead, here and in the CLI's subprocesses, so that which solver a test's fit
# takes (and so its last digits) is the same on every CPU. tests/test_costs.py measures the real thing.
REFERENCE_COSTS = '{"lbfgs": [1.5e-4, 1e-9], "newton": [2e-4, 1e-10]}'
os.environ["TORCHLOGIT_SOLVER_COSTS"] = REFERENCE_COSTS


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def make_problem(kind, n=60, d=5, k=4, dtype=torch.float64, seed=0):
    """A random (X, y, sw) for a pointwise loss name; K = k classes for multinomial."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    sw = torch.rand(n, generator=g, dtype=dtype) + 0.5
    if kind == "binary":
        y = (torch.rand(n, generator=g) < 0.5).to(dtype)
    elif kind == "multinomial":
        y = torch.randint(0, k, (n,), generator=g)
    else:
        y = torch.randn(n, generator=g, dtype=dtype)
    return X, y, sw


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
