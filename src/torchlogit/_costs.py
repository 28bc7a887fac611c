"""What an iteration of Newton and of L-BFGS costs on this machine: measured once per process, for ``solver='auto'``.

Newton takes few iterations whatever the conditioning, but each builds the
(p, p) Hessian; L-BFGS takes more iterations of one gradient pass each. Which
is faster depends on how fast this CPU (or GPU) runs a GEMM against a
memory-bound pass, and on the per-iteration overhead of each solver; both
differ by machine (the same skinny float32 GEMM was measured 5x slower on
one x86-64 CPU than on another). So no crossover constant is written here.
At the first automatic choice, for each (dtype, device, kind of pass), a
probe runs each solver for a few iterations on small random problems of two
sizes, and fits

    seconds per iteration = fixed + per_unit * units

with units n p for L-BFGS (the multiply-adds of a pass: X W^T and R^T X)
and n p^2 (1 + 1/k) + p^3 / 3 for Newton (the GEMMs of
``LinearModelLoss.hessian`` for k outputs, and the Cholesky solve). The fit
subtracts runs of two lengths, so what every fit costs once (validation,
standardisation, the certificate) cancels. The probe takes a few tens of
milliseconds, once per machine: its result is kept with the other
measurements of :mod:`torchlogit._measured`, so that the same fit in
another process picks the same solver (the same coefficients, bit for
bit). Pass ``solver=`` by name for choices that must not depend on the
machine at all, or set ``TORCHLOGIT_SOLVER_COSTS`` to a JSON object
{"lbfgs": [fixed, per_unit], "newton": [fixed, per_unit]} to use those
rates everywhere in place of the probe (the test suite does, so that its
outcomes do not depend on the CPU). The rule that weighs the two (with
typical iteration counts, properties of the algorithms rather than of a
CPU) is :func:`torchlogit.solvers.choose`.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass

import torch

from . import _kernels, _threads
from ._fit import fit_problem
from ._loss import POINTWISE, LinearModelLoss
from ._measured import seconds, stored, where
from ._problem import Problem
from ._sparse import is_sparse
from .penalties import L2


@dataclass(frozen=True)
class Line:
    """seconds = fixed + per_unit * units, fitted from two timed sizes."""

    fixed: float
    per_unit: float

    def __call__(self, units: float) -> float:
        return self.fixed + self.per_unit * units


@dataclass(frozen=True)
class Rates:
    """Seconds per iteration of each solver on this machine, for one dtype, device and kind of pass."""

    lbfgs: Line  # units: n p
    newton: Line  # units: n p^2 (1 + 1/k) + p^3 / 3


def _line(small, large):
    """The Line through two (units, seconds) points; a negative slope or intercept (timer noise) is clipped."""
    (u0, t0), (u1, t1) = small, large
    per_unit = max((t1 - t0) / (u1 - u0), 1e-15)
    return Line(max(t0 - per_unit * u0, 0.0), per_unit)


SHORT, LONG = 2, 6  # iterations of the two timed runs per solver and size


@functools.cache
def rates(dtype: torch.dtype, device: str, fused: bool = False) -> Rates:
    """The rates for (dtype, device, fused): ``TORCHLOGIT_SOLVER_COSTS``, else the cache file, else measured."""
    given = os.environ.get("TORCHLOGIT_SOLVER_COSTS")
    if given:
        try:
            table = json.loads(given)
            return Rates(*(Line(float(table[s][0]), float(table[s][1])) for s in ("lbfgs", "newton")))
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"TORCHLOGIT_SOLVER_COSTS: expected {{'lbfgs': [a, b], 'newton': [c, d]}}: {e}") from None
    key = f"{where(device)} | {dtype}" + (" | fused" if fused else "")
    entry = stored(key, lambda: asdict(measure(dtype, device, fused)))
    try:
        return Rates(*(Line(float(entry[s]["fixed"]), float(entry[s]["per_unit"])) for s in ("lbfgs", "newton")))
    except (KeyError, TypeError, ValueError):  # an entry of another shape: measure, and keep that instead
        measured = measure(dtype, device, fused)
        stored(key, lambda: asdict(measured), replace=True)
        return measured


def measure(dtype: torch.dtype, device: str, fused: bool = False) -> Rates:
    """The probe (see the module docstring).

    ``fused``: L-BFGS's pass through the one-read numba kernel (binary, CPU,
    at least ``_kernels.MIN_ELEMENTS`` entries), whose cost per entry
    differs from torch's; Newton's Hessian never goes through it.
    """
    d = 31
    smallest = max(_kernels.MIN_ELEMENTS // d + 1, 512) if fused else 512  # the kernel runs from MIN_ELEMENTS
    sizes = (smallest, 4 * smallest) if fused else (512, 8192)
    solvers = ("lbfgs",) if fused else ("lbfgs", "newton")
    per_iteration = {}
    with _threads.single():  # on one thread the timings hold on a loaded machine (no waits at barriers)
        for name in solvers:
            per_iteration[name] = [_iteration_seconds(name, n, d, dtype, torch.device(device)) for n in sizes]
    p = d + 1
    lbfgs = _line(*[(n * p, t) for n, t in zip(sizes, per_iteration["lbfgs"])])
    if fused:
        return Rates(lbfgs, rates(dtype, device).newton)
    return Rates(lbfgs, _line(*[(n * p * p + p**3 / 3, t) for n, t in zip(sizes, per_iteration["newton"])]))


def _iteration_seconds(solver, n, d, dtype, device):
    """Seconds per iteration of ``solver`` on a random binary (n, d) problem: (T(LONG) - T(SHORT)) / (LONG - SHORT)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g, dtype=dtype).to(device)
    y = (torch.rand(n, generator=g) < 0.5).to(dtype).to(device)
    problem = Problem(LinearModelLoss(POINTWISE["binary"], d, 1, True), L2(1.0 / n), X, y, torch.full_like(y, 1.0 / n))
    w0 = torch.zeros(d + 1, dtype=torch.float64, device=device)

    def run(iterations):  # tol 0: no early stop
        return lambda: fit_problem(problem, solver=solver, w0=w0, tol=0.0, max_iter=iterations)

    return max(seconds(run(LONG), device) - seconds(run(SHORT), device), 0.0) / (LONG - SHORT)


def estimate(datafit, X) -> tuple[float, float]:
    """(seconds of an L-BFGS iteration, seconds of a Newton iteration) for ``datafit`` on X, predicted.

    Sparse X counts its stored entries in place of n d (a pass), and each
    row's entries squared in place of n d^2 (a Hessian).
    """
    n, d = X.shape
    k, p = datafit.n_outputs, datafit.n_params
    r = rates(X.dtype, str(X.device), datafit.reads_once(X) and not is_sparse(X))
    density = X.nnz / max(n * d, 1) if is_sparse(X) else 1.0
    growth = 1.0 + (1.0 / k if k > 1 else 0.0)
    return r.lbfgs(n * p * density), r.newton(n * p * p * growth * density * density + p**3 / 3)
