"""The shaped reward: potential-based progress terms versus the dense per-step sum."""

from __future__ import annotations

import pytest
import torch

from excavation_sim.config import RewardConfig
from excavation_sim.rewards import TaskState, compute_reward, potential


def state(n=4, scoop_dx=0.0, under=False, in_bucket=False, gain=0.0, success=False) -> TaskState:
    rock = torch.tensor([[0.0, 0.0, 0.0]]).repeat(n, 1)
    scoop = rock.clone()
    scoop[:, 2] -= 0.035
    scoop[:, 0] += scoop_dx
    return TaskState(
        scoop_point=scoop,
        rock_pos=rock,
        rock_half_height=torch.full((n,), 0.025),
        rock_height_gain=torch.full((n,), gain),
        under=torch.full((n,), under),
        in_bucket=torch.full((n,), in_bucket),
        success=torch.full((n,), success),
        action_normalised=torch.zeros(n, 4),
        pushed_past_workspace=torch.zeros(n, dtype=torch.bool),
    )


def test_loitering_under_the_rock_earns_nothing_with_potential_shaping():
    cfg = RewardConfig()
    s = state(under=True, in_bucket=True)
    r, parts = compute_reward(s, cfg, potential(s, cfg))
    assert torch.allclose(r, torch.zeros_like(r))
    assert "progress" in parts and "reach" not in parts
    # the dense reward pays the same state every step: what made loitering beat finishing
    dense = RewardConfig(potential_shaping=False)
    r_dense, _ = compute_reward(s, dense)
    assert (r_dense > 1.5).all()


def test_progress_telescopes_to_the_potential_gained_plus_the_success_bonus():
    cfg = RewardConfig()
    path = [
        state(scoop_dx=0.2),
        state(scoop_dx=0.05),
        state(under=True),
        state(under=True, in_bucket=True),
        state(under=True, in_bucket=True, gain=0.02),
        state(under=True, in_bucket=True, gain=0.0),  # the rock slipped back: progress is refunded
        state(under=True, in_bucket=True, gain=0.06, success=True),
    ]
    total = torch.zeros(4)
    for before, after in zip(path, path[1:]):
        r, _ = compute_reward(after, cfg, potential(before, cfg))
        total += r
    expected = potential(path[-1], cfg) - potential(path[0], cfg) + cfg.success
    assert torch.allclose(total, expected, atol=1e-5)
    slipped, _ = compute_reward(path[5], cfg, potential(path[4], cfg))
    assert (slipped < 0).all()


def test_potential_shaping_needs_the_start_state_potential():
    with pytest.raises(ValueError, match="previous_potential"):
        compute_reward(state(), RewardConfig())
