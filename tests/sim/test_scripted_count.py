"""The scripted-scoop success rate counts every env's first episodes, whatever their lengths."""

from __future__ import annotations

import torch

import excavation_contract as contract
from excavation_sim.scripted import run_scripted, wilson_interval
from excavation_sim.vec_env import StepResult


class QuickAndSlow:
    """Env 0 succeeds every step; env 1 times out (fails) every 5th step."""

    num_envs, delta_mm, device = 2, 70.0, torch.device("cpu")

    def __init__(self):
        self.t = 0

    def reset(self):
        return torch.zeros(2, contract.OBS_DIM)

    def step(self, actions):
        self.t += 1
        done = torch.tensor([True, self.t % 5 == 0])
        success = torch.tensor([True, False])
        info = {"episode_success": success & done, "episode_length": torch.tensor([1, 5])}
        return StepResult(torch.zeros(2, contract.OBS_DIM), torch.zeros(2), done, info)


def test_quick_successes_do_not_crowd_out_time_outs():
    stats = run_scripted(QuickAndSlow(), episodes=4)
    # Counting the first four episodes to finish would give 4 of 4 (env 0 finishes every step).
    assert stats["episodes"] == 4 and stats["episodes_per_env"] == 2
    assert stats["success_rate"] == 0.5
    lo, hi = stats["success_ci95"]
    assert lo < 0.5 < hi


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(26, 32)
    assert abs(lo - 0.6474) < 1e-3 and abs(hi - 0.9106) < 1e-3
    assert wilson_interval(0, 0) == (0.0, 1.0)
