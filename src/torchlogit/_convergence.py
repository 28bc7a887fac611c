"""How a fit ended: ``model.convergence_``, also stored in model files.

A small record with no dependencies, so that both the estimators
(:mod:`torchlogit._base`, which writes it) and the model-file format
(:mod:`torchlogit._io`, which stores and checks it) can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ConvergenceReport:
    """How a fit ended (``model.convergence_``); objective values are divided by sum(sample_weight).

    ``duality_gap`` (L2 fits) bounds how far ``objective`` can be above the
    optimum: objective - min <= duality_gap. Without a penalty it is None.
    """

    solver: str
    converged: bool
    n_iter: int
    message: str
    grad_max: float  # final max|gradient| (standardised coordinates for newton/lbfgs)
    tol: float | None
    objective: float
    duality_gap: float | None

    @property
    def grad_over_tol(self):
        return self.grad_max / self.tol if self.tol else float("nan")

    def __str__(self):
        gap = "n/a (no penalty)" if self.duality_gap is None else f"{self.duality_gap:.3g}"
        tol = "none" if self.tol is None else f"{self.tol:.3g}"
        return (
            f"{self.solver}: {'converged' if self.converged else 'NOT converged'} after {self.n_iter} iterations; "
            f"max|grad| {self.grad_max:.3g} (tol {tol}); objective {self.objective:.10g}; duality gap {gap}"
        )

    def to_json(self) -> dict:
        """Plain JSON values (a model file's ``convergence`` field)."""
        return asdict(self)

    @classmethod
    def from_json(cls, value):
        """The report stored by :meth:`to_json`, or None when ``value`` is not one (wrong keys or types)."""
        if not isinstance(value, dict) or set(value) != {f.name for f in fields(cls)}:
            return None
        number = (int, float)
        checks = {
            "solver": isinstance(value["solver"], str),
            "converged": type(value["converged"]) is bool,
            "n_iter": type(value["n_iter"]) is int and 0 <= value["n_iter"] < 2**31,
            "message": isinstance(value["message"], str),
            "grad_max": type(value["grad_max"]) in number,
            "tol": value["tol"] is None or type(value["tol"]) in number,
            "objective": type(value["objective"]) in number,
            "duality_gap": value["duality_gap"] is None or type(value["duality_gap"]) in number,
        }
        if not all(checks.values()):
            return None
        return cls(**value)
