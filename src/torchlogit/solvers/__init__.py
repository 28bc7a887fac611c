"""Solvers: free functions ``solve(fun_and_grad, w0, *, tol, max_iter, callback, ...) -> Result``.

They know nothing of estimators, files or terminals; strings become solver
functions here and nowhere else.

``solver="auto"`` rule (see :func:`choose`): ``newton`` when the Hessian has at
most ``NEWTON_MAX_PARAMS`` rows (p = k * (d + 1) parameters) and building it
costs at most ``NEWTON_MAX_WORK`` multiply-adds (n p (d + 1) per iteration),
else ``lbfgs``. Newton needs ~5 iterations whatever the conditioning, but
each builds the p x p Hessian, about d times the work of a gradient pass;
L-BFGS (preconditioned, see ``_fit``) needs more iterations of one pass
each. When the gradient pass reads X only once (the fused kernels of
``_kernels`` and ``_sparse_kernels``), a pass is cheaper still and ``auto``
picks lbfgs. An L1 part needs a prox: ``prox-newton``. The crossover
figures behind the constants come from ``make bench`` (its header names the
CPU they were measured on); issue 15 replaces them by costs measured on the
machine at first use.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ._result import IterInfo, Result
from .lbfgs import lbfgs
from .newton import newton
from .prox_newton import prox_newton
from .sgd import get_optimizer, make_batches, make_optimizer, sgd


@dataclass(frozen=True)
class Solver:
    """A solver function and what it needs of a problem: "smooth" (a differentiable penalty),
    "hessian" (the full p x p Hessian fits in memory) or "prox" (handles an L1 part)."""

    function: Callable[..., Result]
    needs: frozenset[str]

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


SOLVERS = {
    "lbfgs": Solver(lbfgs, frozenset({"smooth"})),
    "newton": Solver(newton, frozenset({"smooth", "hessian"})),
    "sgd": Solver(sgd, frozenset({"prox"})),  # an L1 part by a proximal step after each update
    "prox-newton": Solver(prox_newton, frozenset({"prox"})),
}

# scikit-learn's names, accepted so that existing code runs unchanged: each maps
# to the exact solver with the same optimum (liblinear's penalised intercept is
# not reproduced: our intercept is never penalised). Like scikit-learn,
# newton-cg, newton-cholesky and sag take smooth penalties only; saga and
# liblinear take every penalty ('auto' picks prox-newton for an L1 part).
ALIASES = {
    "newton-cg": "newton",
    "newton-cholesky": "newton",
    "sag": "auto",
    "saga": "auto",
    "liblinear": "auto",
}
_SMOOTH_ONLY = {"newton-cg", "newton-cholesky", "sag"}

NEWTON_MAX_PARAMS = 1000
NEWTON_MAX_WORK = 2e9


def choose(
    name: str, n_params: int, hessian_work: float = 0.0, fused_gradient: bool = False, penalty_kind: str = "l2"
) -> str:
    """Resolve a user's solver name to a key of ``SOLVERS``; ``hessian_work`` = n p (d + 1).

    ``penalty_kind``: 'none', 'l2', 'l1' or 'elasticnet' (``Penalty.name``);
    an L1 part needs a solver with "prox". Refusals use scikit-learn's words.
    """
    smooth = penalty_kind in ("none", "l2")
    if not smooth and (name in _SMOOTH_ONLY or "smooth" in getattr(SOLVERS.get(name), "needs", ())):
        raise ValueError(
            f"Solver {name} supports only 'l2' or None penalties, got {penalty_kind} penalty. "
            "torchlogit solves L1 and elastic net with solver='prox-newton' ('auto', 'saga' and 'liblinear' pick it)."
        )
    name = ALIASES.get(name, name)
    if name == "auto":
        if not smooth:
            return "prox-newton"
        small = n_params <= NEWTON_MAX_PARAMS and hessian_work <= NEWTON_MAX_WORK
        return "newton" if small and not fused_gradient else "lbfgs"
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS) + ['auto'] + sorted(ALIASES)}")
    return name


__all__ = [
    "SOLVERS",
    "ALIASES",
    "Solver",
    "Result",
    "IterInfo",
    "choose",
    "lbfgs",
    "newton",
    "prox_newton",
    "sgd",
    "get_optimizer",
    "make_batches",
    "make_optimizer",
]
