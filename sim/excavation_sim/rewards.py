"""Shaped reward, declared as weighted terms (weights in ``RewardConfig``).

Every term reads :class:`TaskState`, the env's ground truth after a control step. The reward may use
truth (it only exists in training); the observation never does.

The progress terms form a potential

    Phi(s) = w_reach * exp(-|p_scoop - p_under_rock| / reach_scale)   bring the tines' middle under the rock
           + w_under * under                                          rock centre above the tines, inside the fork
           + w_in_bucket * in_bucket
           + w_lift * in_bucket * clip(rock_height_gain / lift_target, 0, 1)

and the reward is

    r = [Phi(s') - Phi(s)]            (``potential_shaping``, default; Phi(s') alone when off)
      + w_success * success           one-off, when the hold completes
      - w_action * |a / a_max|^2
      - w_workspace * pushed_past_workspace

Why the difference: paid every step, Phi made loitering under the rock worth more than finishing.
Time-outs are bootstrapped, so holding Phi ~ 2 per step is worth ~2 / (1 - gamma) = 200 against a
one-off +20 for success, and from scratch PPO learned exactly that (reach and slide under, never
lift). Paid as a difference, Phi only rewards progress (and refunds it when undone), so a whole
episode's shaping sums to Phi(end) - Phi(start) and success is the only lasting gain (Ng et al.
1999: potential-based shaping does not change the optimal policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .config import RewardConfig


@dataclass
class TaskState:
    scoop_point: torch.Tensor  # (N, 3) middle of the tines, tray frame
    rock_pos: torch.Tensor  # (N, 3) rock centre, tray frame
    rock_half_height: torch.Tensor  # (N,)
    rock_height_gain: torch.Tensor  # (N,) rock z now minus at episode start
    under: torch.Tensor  # (N,) bool
    in_bucket: torch.Tensor  # (N,) bool
    success: torch.Tensor  # (N,) bool, episode succeeded this step
    action_normalised: torch.Tensor  # (N, act_dim)
    pushed_past_workspace: torch.Tensor  # (N,) bool: the command was clipped at the workspace box


def reach(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    goal = s.rock_pos.clone()
    goal[:, 2] -= s.rock_half_height + 0.01
    return torch.exp(-torch.linalg.norm(s.scoop_point - goal, dim=1) / cfg.reach_scale)


def under(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    return s.under.float()


def in_bucket(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    return s.in_bucket.float()


def lift(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    return s.in_bucket.float() * torch.clamp(s.rock_height_gain / cfg.lift_target, 0.0, 1.0)


def success(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    return s.success.float()


def action(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    return -(s.action_normalised**2).sum(dim=1)


def workspace(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    return -s.pushed_past_workspace.float()


# the terms that measure progress; summed with their weights into the potential Phi
POTENTIAL_TERMS = ("reach", "under", "in_bucket", "lift")

# name -> term; each term's weight is the RewardConfig field of the same name
TERMS: dict[str, Callable[[TaskState, RewardConfig], torch.Tensor]] = {
    "reach": reach,
    "under": under,
    "in_bucket": in_bucket,
    "lift": lift,
    "success": success,
    "action": action,
    "workspace": workspace,
}


def potential(s: TaskState, cfg: RewardConfig) -> torch.Tensor:
    """Phi(s): the weighted progress terms."""
    return torch.stack([getattr(cfg, name) * TERMS[name](s, cfg) for name in POTENTIAL_TERMS]).sum(dim=0)


def compute_reward(
    s: TaskState, cfg: RewardConfig, previous_potential: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Reward after a step that ended in ``s``; ``previous_potential`` is Phi of the state it started in.

    With ``cfg.potential_shaping`` the progress terms are paid as ``Phi(s) - previous_potential``
    (reported as the part ``progress``); ``previous_potential`` is then required.
    """
    parts = {name: getattr(cfg, name) * term(s, cfg) for name, term in TERMS.items()}
    if cfg.potential_shaping:
        if previous_potential is None:
            raise ValueError("reward.potential_shaping needs the potential of the step's start state (previous_potential)")
        phi = sum(parts.pop(name) for name in POTENTIAL_TERMS)
        parts = {"progress": phi - previous_potential, **parts}
    return torch.stack(list(parts.values())).sum(dim=0), parts
