"""One fit's fixed data: the data term, the penalty, the data, targets and weights.

    f(theta) = L(theta) + P(W),    L = sum_i s_i loss(z_i, y_i)   (see :mod:`torchlogit._loss`)

``theta`` is the flat parameter vector [W.ravel(), b] of :mod:`torchlogit._loss`;
s sums to 1; P is a :class:`torchlogit.penalties.Penalty` on W only. A
Problem never changes during a fit (per-iteration state lives in the
solvers); the exact solvers see it through the standardised coordinates of
:mod:`torchlogit._fit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ._loss import LinearModelLoss
from ._sparse import SparseX
from .penalties import Penalty

f64 = torch.float64


@dataclass(frozen=True)
class Problem:
    datafit: LinearModelLoss
    penalty: Penalty
    X: torch.Tensor | SparseX  # (n, d): dense, or sparse (never densified)
    y: torch.Tensor  # (n,) float 0/1 (binary), int64 classes (multinomial), float (squared)
    s: torch.Tensor  # (n,) weights summing to 1, X's dtype

    @property
    def penalized(self) -> torch.Tensor:
        """(p,) bool in theta's layout: the coordinates the penalty touches (the weights; never the intercept)."""
        mask = torch.zeros(self.datafit.n_params, dtype=torch.bool, device=self.X.device)
        if self.penalty.alpha:
            mask[: self.datafit.n_outputs * self.datafit.n_features] = True
        return mask

    def weights(self, theta: torch.Tensor) -> torch.Tensor:
        """W (k, d), a view of theta."""
        return self.datafit.unpack(theta)[0]

    def smooth_part(self) -> Problem:
        """The same problem with only the smooth (L2) part of the penalty: what a prox method differentiates."""
        return replace(self, penalty=self.penalty.split()[0])

    def objective(self, theta: torch.Tensor) -> float:
        """f(theta) in float64: data term plus the whole penalty."""
        f, _ = self.datafit.loss_gradient(theta.to(self.X.dtype), self.X, self.y, self.s)
        return float(f) + float(self.penalty.value(self.weights(theta)))

    def loss_gradient(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, grad) of a smooth problem, float64; grad of shape (p,)."""
        f, g = self.datafit.loss_gradient(theta.to(self.X.dtype), self.X, self.y, self.s)
        if self.penalty.alpha:
            W = self.weights(theta.to(f64))
            k_d = W.numel()
            f = f + self.penalty.value(W)
            g = g.clone()
            g[:k_d] += self.penalty.gradient(W).reshape(-1)
        return f, g

    def gradient_hessp(self, theta: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """(grad, hessp) of a smooth problem: hessp(v) = H v, float64 (p,)."""
        g, data_hessp = self.datafit.gradient_hessp(theta.to(self.X.dtype), self.X, self.y, self.s)
        if not self.penalty.alpha:
            return g, data_hessp
        W = self.weights(theta.to(f64))
        k_d = W.numel()
        g = g.clone()
        g[:k_d] += self.penalty.gradient(W).reshape(-1)
        curvature = self.penalty.curvature(W).reshape(-1)

        def hessp(v):
            hv = data_hessp(v).clone()
            hv[:k_d] += curvature * v[:k_d].to(f64)
            return hv

        return g, hessp

    def hessian(self, theta: torch.Tensor, std=None, block_bytes: int = 4 << 20) -> torch.Tensor:
        """The (p, p) Hessian of the smooth problem, float64 (in phi coordinates with ``std``).

        Data term (:meth:`LinearModelLoss.hessian`), plus the penalty's
        curvature on the weights (with weights 1 / sigma in phi coordinates),
        then the softmax null space filled for the coordinates no penalty curvature reaches.
        """
        H = self.datafit.hessian(theta.to(self.X.dtype), self.X, self.y, self.s, block_bytes=block_bytes, std=std)
        penalty = self.penalty if std is None else self.penalty.rescaled(std.sigma)
        W = self.weights(theta.to(f64))
        curved = torch.zeros(self.datafit.n_params, dtype=torch.bool, device=H.device)
        if penalty.l2:
            H.diagonal()[: W.numel()] += penalty.curvature(W).reshape(-1)
            curved[: W.numel()] = True
        return self.datafit.fill_softmax_null_space(H, curved)
