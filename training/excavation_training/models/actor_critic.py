"""Actor-critic: MLP mean + state-independent Gaussian std, MLP value, shared observation normaliser.

The policy lives in *normalised action space*: a = -1..1 maps affinely onto the env's
[action_low, action_high] (the runner clips samples to [-1, 1] before mapping). Physical actions are
tiny and unequal across axes (25 mm vs 0.15 rad per step), so a unit-scale action space keeps one
initial std and one entropy weight meaningful for every axis.
"""

from __future__ import annotations

import math

import torch
from rsl_rl.modules import MLP
from torch import nn

from ..config import PolicyConfig
from .normalizer import IdentityNormalizer, ObservationNormalizer


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: PolicyConfig) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.min_log_std = math.log(cfg.min_noise_std)
        self.obs_normalizer = ObservationNormalizer(obs_dim) if cfg.normalize_observations else IdentityNormalizer(obs_dim)
        self.actor = MLP(obs_dim, act_dim, cfg.actor_hidden_dims, cfg.activation)
        self.critic = MLP(obs_dim, 1, cfg.critic_hidden_dims, cfg.activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(cfg.init_noise_std)))
        # Small last-layer gains: the initial policy is centred on zero motion with the configured
        # std, and the value starts near zero (the usual PPO initialisation).
        init_orthogonal(self.actor, last_gain=0.01)
        init_orthogonal(self.critic, last_gain=1.0)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_normalizer(obs)

    def update_normalizer(self, obs: torch.Tensor) -> None:
        self.obs_normalizer.train()  # rsl_rl's normaliser only learns in train mode
        self.obs_normalizer.update(obs)

    def std(self) -> torch.Tensor:
        return self.log_std.clamp(min=self.min_log_std).exp()

    def action_mean(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action in normalised action space (unclipped), from raw observations."""
        return self.actor(self.normalize(obs))

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of the Gaussian policy, each (B, act_dim)."""
        mean = self.action_mean(obs)
        return mean, self.std().expand_as(mean)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.normalize(obs)).squeeze(-1)


def init_orthogonal(mlp: nn.Module, last_gain: float) -> None:
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=last_gain if i == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(layer.bias)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    var = std.pow(2)
    return (-((actions - mean).pow(2)) / (2 * var) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    return (0.5 + 0.5 * math.log(2 * math.pi) + std.log()).sum(-1)


def gaussian_kl(mu_p: torch.Tensor, std_p: torch.Tensor, mu_q: torch.Tensor, std_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians, summed over the last dimension."""
    return (
        torch.log(std_q / std_p) + (std_p.pow(2) + (mu_p - mu_q).pow(2)) / (2.0 * std_q.pow(2)) - 0.5
    ).sum(-1)
