"""Solvers: free functions ``solve(fun_and_grad, w0, *, tol, max_iter, callback, ...) -> Result``.

They know nothing of estimators, files or terminals; strings become solver
functions here and nowhere else.

``solver="auto"`` rule (see :func:`choose`): from what an iteration of each
costs on this machine, predicted from a probe timed at first use
(:mod:`torchlogit._costs`): ``newton`` when NEWTON_ITERATIONS Newton steps
cost less than LBFGS_ITERATIONS L-BFGS steps, else
``lbfgs``; never newton above ``NEWTON_MAX_PARAMS`` parameters (a p x p
matrix in float64 and its p^3 solve). Newton needs few iterations whatever
the conditioning, but each builds the Hessian, O(p) times the work of a
pass; a digits-sized multinomial problem (64 features x 10 classes, p = 650)
goes to L-BFGS. An L1 part needs a prox: ``prox-newton``.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ._result import IterInfo, Result
from .lbfgs import lbfgs
from .newton import newton
from .prox_newton import prox_newton
from .representer import representer_newton
from .sgd import get_optimizer, make_batches, make_optimizer, sgd


@dataclass(frozen=True)
class Solver:
    """A solver function and what it needs of a problem: "smooth" (a differentiable penalty),
    "hessian" (the full p x p Hessian fits in memory) or "prox" (handles an L1 part); and its
    tolerance when the user gives none (``tol=None``): None for a solver that runs its epochs."""

    function: Callable[..., Result]
    needs: frozenset[str]
    default_tol: float | None = 1e-6

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


SOLVERS = {
    "lbfgs": Solver(lbfgs, frozenset({"smooth"})),
    "newton": Solver(newton, frozenset({"smooth", "hessian"})),
    "sgd": Solver(sgd, frozenset({"prox"}), None),  # an L1 part by a proximal step after each update
    "prox-newton": Solver(prox_newton, frozenset({"prox"})),
    # Newton in the n coordinates of w = X^T beta: binary L2 fits on dense data with n^2 <= 3 d
    "newton-dual": Solver(representer_newton, frozenset({"smooth", "representer"})),
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

NEWTON_MAX_PARAMS = 1000  # memory and the p^3 solve, not speed: the costs decide below it
# Typical iteration counts, properties of the algorithms rather than of a CPU: Newton from zero needs
# 5-10 on logistic problems; preconditioned L-BFGS 10-30 on well-scaled data and more on raw pixels or
# counts. L-BFGS's low end is taken, so a close call goes to L-BFGS, whose cost per iteration does not
# grow with p^2.
NEWTON_ITERATIONS = 8
LBFGS_ITERATIONS = 20


def choose(
    name: str,
    n_params: int,
    costs: Callable[[], tuple[float, float]] | None = None,
    penalty_kind: str = "l2",
    representer: bool = False,
) -> str:
    """Resolve a user's solver name to a key of ``SOLVERS``.

    ``costs()``: (seconds of an L-BFGS iteration, seconds of a Newton
    iteration), as :func:`torchlogit._costs.estimate` predicts them, called
    only when 'auto' must weigh them; None (unknown) never picks newton.
    ``penalty_kind``: 'none', 'l2', 'l1' or 'elasticnet' (``Penalty.name``);
    an L1 part needs a solver with "prox". ``representer``: the problem is
    one 'newton-dual' solves (``_fit.representer_applies``: binary, L2, dense
    X, n^2 <= 3 d, where its n-dimensional solve costs less than one pass);
    'auto' then picks it. Refusals use scikit-learn's words.
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
        if representer:
            return "newton-dual"
        if costs is None or n_params > NEWTON_MAX_PARAMS:
            return "lbfgs"
        lbfgs_s, newton_s = costs()
        return "newton" if NEWTON_ITERATIONS * newton_s <= LBFGS_ITERATIONS * lbfgs_s else "lbfgs"
    if name == "newton-dual" and not representer:
        raise ValueError("solver='newton-dual' fits binary L2 problems on dense X with n^2 <= 3 d only; use 'auto'")
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
    "representer_newton",
    "sgd",
    "get_optimizer",
    "make_batches",
    "make_optimizer",
]
