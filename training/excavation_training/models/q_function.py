"""Auxiliary action-value Q(s, a) of conservative transfer.

Inputs are the student's *normalised* observation and a normalised action clipped to [-1, 1] (what
the env actually executes), so teacher and student actions are scored on the same scale.
"""

from __future__ import annotations

import torch
from rsl_rl.modules import MLP
from torch import nn

from ..config import QConfig
from .actor_critic import init_orthogonal


class QFunction(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: QConfig) -> None:
        super().__init__()
        self.net = MLP(obs_dim + act_dim, 1, cfg.hidden_dims, cfg.activation)
        init_orthogonal(self.net, last_gain=1.0)

    def forward(self, obs_normalized: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs_normalized, actions.clamp(-1.0, 1.0)], dim=-1)).squeeze(-1)
