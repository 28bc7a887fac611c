"""Inverse link functions: from the linear predictor (logits) to the mean.

A link is a small object that the loss holds; it is not a base class of the
loss and knows nothing of data or solvers.

    z = X @ W.T + b          # (n, k) raw predictions, "logits"
    mean = link.inverse(z)   # probabilities (sigmoid, softmax) or z (identity)

For the binary model k = 1 and the single column is the logit of class 1.
"""

from __future__ import annotations

import torch


class SigmoidLink:
    """Binary logistic: p(class 1) = 1 / (1 + exp(-z)), z of shape (n, 1)."""

    name = "sigmoid"

    @staticmethod
    def inverse(z: torch.Tensor) -> torch.Tensor:
        """(n, 1) logits -> (n, 2) probabilities of class 0 and class 1.

        p0 = sigmoid(-z) rather than 1 - p1: for z = 20 in float32, 1 - p1
        rounds to 0 while sigmoid(-20) = 2e-9 is representable.
        """
        return torch.cat([torch.sigmoid(-z), torch.sigmoid(z)], dim=1)

    @staticmethod
    def log_inverse(z: torch.Tensor) -> torch.Tensor:
        """(n, 1) logits -> (n, 2) log-probabilities, stable for |z| ~ 1e4.

        log p1 = -softplus(-z), log p0 = -softplus(z): no log(0) underflow.
        """
        nn_f = torch.nn.functional
        return torch.cat([-nn_f.softplus(z), -nn_f.softplus(-z)], dim=1)


class SoftmaxLink:
    """Multinomial logistic: p_k = exp(z_k) / sum_j exp(z_j), z of shape (n, K)."""

    name = "softmax"

    @staticmethod
    def inverse(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z, dim=1)

    @staticmethod
    def log_inverse(z: torch.Tensor) -> torch.Tensor:
        # log p_k = z_k - logsumexp(z): the max-shift inside logsumexp keeps it finite.
        return torch.log_softmax(z, dim=1)


class IdentityLink:
    """Linear regression: the mean is the linear predictor itself."""

    name = "identity"

    @staticmethod
    def inverse(z: torch.Tensor) -> torch.Tensor:
        return z

    @staticmethod
    def log_inverse(z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - not a probability
        raise TypeError("the identity link has no log-probabilities")
