"""What every solver returns, and what it tells its callback."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Result:
    """The outcome of one solver run.

    x         the final parameters (float64, flat ``theta`` layout)
    fun       objective at x (the scaled objective the solver was given)
    grad_max  ``max |gradient|`` at x (the projected gradient norm; NaN if unknown)
    n_iter    iterations done (epochs for sgd); 0 means nothing was changed
    converged True when the stopping rule was met before max_iter
    message   why the solver stopped, in words
    history   objective value after each iteration
    duality_gap  an upper bound on fun - min(fun) (L2 fits; set by the caller), else None
    stopped   True when a callback asked the solver to stop (then converged is False)
    pairs     L-BFGS's curvature pairs (s list, y list) at the end, to warm-start a next run; else None
    """

    x: torch.Tensor
    fun: float
    grad_max: float
    n_iter: int
    converged: bool
    message: str
    history: list = field(default_factory=list)
    duality_gap: float | None = None
    stopped: bool = False
    pairs: tuple | None = None


STOPPED = "stopped by a callback"


@dataclass
class IterInfo:
    """Passed to ``callback`` after every iteration. A callback that returns True stops the solver."""

    iteration: int
    fun: float
    grad_max: float
    rows_per_s: float | None = None  # streaming fits: throughput of the last epoch or pass
    x: torch.Tensor | None = None  # the iterate, float64 flat theta (in the caller's coordinates)


class RoundingStall:
    """Three decreases in a row below the objective's own rounding (``f_rtol`` relative): converged as far
    as the data's precision allows (float32 data with a tol below what it can show)."""

    MESSAGE = "the objective no longer decreases beyond its rounding"

    def __init__(self, f_rtol):
        self.f_rtol, self.count = f_rtol, 0

    def stalled(self, f_old, f) -> bool:
        self.count = self.count + 1 if f_old - f <= self.f_rtol * max(abs(f), 1e-300) else 0
        return self.count >= 3
