"""The lecture's model as a plain ``torch.nn.Module``.

    model = LinearModel(n_features=1, n_outputs=1)
    logits = model(x)                  # (B, 1): z = x w + b
    p = torch.sigmoid(logits)          # probability of class 1

``forward`` returns logits, never probabilities: the losses are computed in
logits (``binary_cross_entropy_with_logits``, ``logsumexp``), which is exact
where ``BCELoss(sigmoid(z))`` rounds p to 0 or 1. The parameters flattened by
``parameters_to_vector`` are the ``theta`` of :mod:`torchlogit._loss`.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearModel(nn.Module):
    """An affine map ``Linear(d, k)``: the logistic model before its link."""

    def __init__(self, n_features: int, n_outputs: int = 1, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits ``z = x W^T + b``, (B, d) -> (B, k); probabilities come from the link (sigmoid, softmax)."""
        return self.linear(x)  # (B, d) -> (B, k) logits

    @classmethod
    def from_vector(cls, theta, n_features, n_outputs, bias=True, dtype=None):
        """Build a model whose parameters are the flat vector ``theta``."""
        model = cls(n_features, n_outputs, bias=bias).to(device=theta.device, dtype=dtype or theta.dtype)
        with torch.no_grad():
            nn.utils.vector_to_parameters(theta.to(model.linear.weight.dtype), model.parameters())
        return model

    def to_vector(self) -> torch.Tensor:
        return nn.utils.parameters_to_vector(self.parameters()).detach()
