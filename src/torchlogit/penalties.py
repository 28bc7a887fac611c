"""Penalties: small objects the objective adds to the data term, on the weights W only, never the intercept.

    f(W, b) = sum_i s_i loss(z_i, y_i) + P(W),      s_i = sw_i / sum(sw)

with, for a strength ``alpha`` and per-coordinate weights ``w_j`` (1 unless
the solver works in rescaled coordinates, see below):

    NoPenalty     P = 0
    L2            P = alpha / 2 sum_j w_j^2 W_j^2
    L1            P = alpha sum_j w_j |W_j|
    ElasticNet    P = alpha sum_j [ r w_j |W_j| + (1 - r) / 2 w_j^2 W_j^2 ],   r = l1_ratio in [0, 1]

scikit-learn's ``LogisticRegression(C, l1_ratio)`` minimises sum_i sw_i loss_i
+ (1/C) [r ||W||_1 + (1 - r)/2 ||W||^2], the same minimiser as alpha =
1 / (C sum(sw)) (:func:`from_params`).

Rescaled coordinates. The exact solvers work in standardised coordinates
V = W sigma (``_fit``'s module docstring), where |W_j| = |V_j| / sigma_j: the
same penalty with weights w_j = 1 / sigma_j (:meth:`Penalty.rescaled`), so
its optimum is the optimum of the original problem.

What each penalty offers (a solver states what it needs, see ``solvers``):

    value(W)                 P(W), float64
    smooth                   whether P is differentiable (L2, NoPenalty)
    gradient(W)              dP/dW (smooth penalties only)
    curvature()              d2P/dW2's diagonal (smooth penalties only): alpha w^2, or 0
    prox(W, step)            argmin_U P(U) step + ||U - W||^2 / 2, coordinate-wise
    subdiff_distance(W, G)   distance from -G to the subdifferential of P at W, per
                             coordinate: the KKT violation of the full gradient G of the data term
    alpha_max(G0)            the smallest alpha for which W = 0 is optimal, from the data
                             term's gradient at W = 0 (intercepts optimal); inf if none exists
    conjugate(A)             P*(A) = sup_U <A, U> - P(U) (the duality gap's dual term)

W and G are float64 tensors of one shape, (k, d) or flat; ``weights`` broadcast
over the last axis (features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

f64 = torch.float64


@dataclass(frozen=True)
class Penalty:
    """The elastic net family: ``alpha`` >= 0, ``l1_ratio`` r in [0, 1], per-feature ``weights`` (None: 1)."""

    alpha: float = 0.0
    l1_ratio: float = 0.0
    weights: torch.Tensor | None = None

    # ---------------------------------------------------------------- helpers
    @property
    def name(self) -> str:
        """'none', 'l2', 'l1' or 'elasticnet': what the numbers make of it."""
        if not self.alpha:
            return "none"
        return {0.0: "l2", 1.0: "l1"}.get(self.l1_ratio, "elasticnet")

    @property
    def l1(self) -> float:
        return self.alpha * self.l1_ratio

    @property
    def l2(self) -> float:
        return self.alpha * (1.0 - self.l1_ratio)

    @property
    def smooth(self) -> bool:
        return self.l1 == 0.0

    def _w(self, W: Tensor) -> Tensor | float:
        return torch.ones((), dtype=f64, device=W.device) if self.weights is None else self.weights.to(W.device, f64)

    def _replaced(self, **changes):
        """A copy of the same class with some fields changed (the subclasses' constructors take fewer fields)."""
        new = object.__new__(type(self))
        for f in fields(Penalty):
            object.__setattr__(new, f.name, changes.get(f.name, getattr(self, f.name)))
        return new

    def rescaled(self, scale: Tensor) -> Penalty:
        """The same penalty on V = W * scale (W_j = V_j / scale_j): weights multiplied by 1 / scale."""
        inv = 1.0 / scale.to(f64)
        return self._replaced(weights=inv if self.weights is None else self.weights.to(f64) * inv)

    def with_alpha(self, alpha: float) -> Penalty:
        return self._replaced(alpha=float(alpha))

    def split(self) -> tuple[Penalty, Penalty]:
        """(smooth part, L1 part): the L2 term, which a solver adds to its smooth function, and the rest, its prox."""
        smooth = Penalty(self.l2, 0.0, self.weights) if self.l2 else NoPenalty(self.weights)
        rough = Penalty(self.l1, 1.0, self.weights) if self.l1 else NoPenalty(self.weights)
        return smooth, rough

    # ---------------------------------------------------------------- value, derivatives
    def value(self, W: Tensor) -> Tensor:
        W, w = W.to(f64), self._w(W)
        total = torch.zeros((), dtype=f64, device=W.device)
        if self.l1:
            total = total + self.l1 * (w * W.abs()).sum()
        if self.l2:
            total = total + 0.5 * self.l2 * ((w * W) ** 2).sum()
        return total

    def gradient(self, W: Tensor) -> Tensor:
        if not self.smooth:
            raise TypeError(f"{type(self).__name__} is not differentiable: use its prox")
        return self.l2 * self._w(W) ** 2 * W.to(f64)

    def curvature(self, W: Tensor) -> Tensor:
        """The diagonal of d2P/dW2 (smooth part only): l2 w^2, shaped like W."""
        return (self.l2 * self._w(W) ** 2) * torch.ones_like(W, dtype=f64)

    def add_curvature(self, H: Tensor, W: Tensor) -> Tensor:
        """H (p, p), a data term's Hessian in theta's layout, plus :meth:`curvature` on W's diagonal entries (the
        first W.numel()); in place, returned."""
        if self.l2:
            H.diagonal()[: W.numel()] += self.curvature(W).reshape(-1)
        return H

    def prox(self, W: Tensor, step: float | Tensor) -> Tensor:
        """Soft-thresholding at step * l1 w, then the L2 shrinkage 1 / (1 + step * l2 w^2)."""
        W, w = W.to(f64), self._w(W)
        if self.l1:
            W = torch.sign(W) * torch.clamp(W.abs() - step * self.l1 * w, min=0.0)
        if self.l2:
            W = W / (1.0 + step * self.l2 * w**2)
        return W

    def subdiff_distance(self, W: Tensor, G: Tensor) -> Tensor:
        """Per coordinate: dist(-G, dP(W)), 0 exactly where (W, G) satisfy the optimality conditions."""
        W, G, w = W.to(f64), G.to(f64), self._w(W)
        smooth_grad = G + self.l2 * w**2 * W  # data term + smooth part of P
        if not self.l1:
            return smooth_grad.abs()
        threshold = self.l1 * w * torch.ones_like(W)
        at_zero = torch.clamp(smooth_grad.abs() - threshold, min=0.0)  # -G must lie in [-l1 w, l1 w]
        off_zero = (smooth_grad + threshold * torch.sign(W)).abs()  # -G must equal l1 w sign(W)
        return torch.where(W == 0, at_zero, off_zero)

    def alpha_max(self, G0: Tensor) -> float:
        """Smallest alpha with W = 0 optimal: ``max_j |G0_j| / (r w_j)``; inf without an L1 part (r = 0)."""
        if self.l1_ratio == 0.0:
            return math.inf
        G0, w = G0.to(f64), self._w(G0)
        ratio = torch.where(w > 0, G0.abs() / (self.l1_ratio * w), torch.full_like(G0, math.inf))
        ratio = torch.where(G0 == 0, torch.zeros_like(ratio), ratio)
        return float(ratio.max()) if ratio.numel() else 0.0

    def fenchel_young_gap(self, W: Tensor, B: Tensor) -> Tensor:
        """P(W) + P*(B) - <W, B> >= 0 (inf where P*(B) is), summed, in a form without cancellation.

        Per coordinate, with s = sign(B): where ``|B| <= l1 w`` it is
        ``l1 w |W| + l2 w^2 W^2 / 2 - W B``, and otherwise
        ``(l2 w^2 W - s (|B| - l1 w))^2 / (2 l2 w^2) + l1 w (|W| - s W)``: sums of
        non-negative terms, so a gap near 0 is computed to rounding of its own
        size (the duality gap's penalty term, see ``_certificate``).
        """
        W, B, w = W.to(f64), B.to(f64), self._w(W)
        l1w, l2w2 = self.l1 * w * torch.ones_like(W), self.l2 * w**2 * torch.ones_like(W)
        inside = B.abs() <= l1w
        near = l1w * W.abs() + 0.5 * l2w2 * W**2 - W * B
        sign = torch.sign(B)
        excess = B.abs() - l1w
        if self.l2:
            far = (l2w2 * W - sign * excess) ** 2 / (2.0 * l2w2) + l1w * (W.abs() - sign * W)
        else:
            far = torch.full_like(W, math.inf)
        return torch.where(inside, near.clamp_min(0.0), far).sum()

    def conjugate(self, A: Tensor) -> Tensor:
        """P*(A) = sup_U <A, U> - P(U), coordinate-wise; inf where it is unbounded (pure L1, ``|A| > l1 w``).

        Elastic net: ``(max(|A| - l1 w, 0))^2 / (2 l2 w^2)``. Pure L1: 0 if ``|A| <= l1 w``.
        NoPenalty: 0 if A = 0.
        """
        A, w = A.to(f64), self._w(A)
        excess = torch.clamp(A.abs() - self.l1 * w, min=0.0)
        if self.l2:
            return (excess**2 / (2.0 * self.l2 * w**2)).sum()
        if bool((excess > 0).any()):
            return torch.tensor(math.inf, dtype=f64, device=A.device)
        return torch.zeros((), dtype=f64, device=A.device)


class NoPenalty(Penalty):
    """P = 0: maximum likelihood."""

    def __init__(self, weights=None):
        super().__init__(0.0, 0.0, weights)


class L2(Penalty):
    """P = alpha / 2 ||w * W||^2 (ridge)."""

    def __init__(self, alpha, weights=None):
        super().__init__(float(alpha), 0.0, weights)


class L1(Penalty):
    """P = alpha ||w * W||_1 (lasso)."""

    def __init__(self, alpha, weights=None):
        super().__init__(float(alpha), 1.0, weights)


class ElasticNet(Penalty):
    """P = alpha [r ||w * W||_1 + (1 - r) / 2 ||w * W||^2]."""

    def __init__(self, alpha, l1_ratio, weights=None):
        super().__init__(float(alpha), float(l1_ratio), weights)


def make_penalty(alpha: float, l1_ratio: float) -> Penalty:
    """The named class for (alpha, r): NoPenalty, L2, L1 or ElasticNet."""
    if alpha == 0.0:
        return NoPenalty()
    if l1_ratio == 0.0:
        return L2(alpha)
    if l1_ratio == 1.0:
        return L1(alpha)
    return ElasticNet(alpha, l1_ratio)


def from_params(penalty: str | None, C: float, l1_ratio: float | None, total_weight: float) -> Penalty:
    """scikit-learn's parameters, both generations, as a penalty on the objective divided by sum(sw).

    ``penalty``: 'l2', 'l1', 'elasticnet', None/'none', or 'deprecated' (scikit-learn
    >= 1.8's default: the kind follows ``l1_ratio``, and ``C=np.inf`` means none).
    ``l1_ratio`` None counts as 0. alpha = 1 / (C sum(sw)).
    """
    r = 0.0 if l1_ratio is None else float(l1_ratio)
    if penalty in (None, "none") or math.isinf(C):
        return NoPenalty()
    if penalty == "l2":
        r = 0.0
    elif penalty == "l1":
        r = 1.0
    return make_penalty(1.0 / (float(C) * float(total_weight)), r)
