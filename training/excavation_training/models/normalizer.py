"""Running observation normalisation.

rsl_rl's ``EmpiricalNormalization`` is used as is (running mean/variance over all samples seen,
``(x - mean) / (std + eps)``); this subclass only adds what export needs: the affine map as tensors.
"""

from __future__ import annotations

import torch
from rsl_rl.modules import EmpiricalNormalization


class ObservationNormalizer(EmpiricalNormalization):
    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) with ``normalised = (obs - mean) / scale``; what the exported policy bakes in."""
        return self._mean.squeeze(0).detach().clone(), (self._std.squeeze(0) + self.eps).detach().clone()


class IdentityNormalizer(torch.nn.Module):
    """Stand-in when normalisation is off, with the same interface."""

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.obs_dim = obs_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def update(self, x: torch.Tensor) -> None:
        pass

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(self.obs_dim), torch.ones(self.obs_dim)
