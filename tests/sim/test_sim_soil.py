"""The soil starts settled, its top is measured on the settled bed, and sleeping soil stays put."""

from __future__ import annotations

import pytest
import torch

from excavation_sim.config import DEFAULT_RESOLUTIONS_MM, ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv
from excavation_sim.soil_top import soil_top

pytestmark = pytest.mark.timeout(600)


def make(delta_mm, num_envs=2, seed=3, **physics):
    cfg = ExcavationEnvConfig(num_envs=num_envs, delta_mm=delta_mm, seed=seed)
    cfg.auto_reset = False
    for k, v in physics.items():
        setattr(cfg.physics, k, v)
    return ExcavationEnv(cfg)


@pytest.mark.parametrize("delta_mm", DEFAULT_RESOLUTIONS_MM)
def test_soil_top_moves_under_2_mm_in_the_first_step(delta_mm):
    # Sleep off: the bed must be at rest by its physics, not because sleeping froze it.
    env = make(delta_mm, sleep=False)
    env.reset()
    top = env.soil_top()
    env.step(torch.zeros(env.num_envs, env.act_dim))
    moved = (env.soil_top() - top).abs()
    assert (moved[torch.isfinite(moved)] < 0.002).all(), f"soil top moved {moved.tolist()} m in the first step at {delta_mm} mm"


def test_an_unsettled_bed_moves_more_than_2_mm():
    # The check above can fail: without settling the fresh 10 mm grid collapses in its first step.
    env = make(10.0, num_envs=1, settle_max_steps=0, sleep=False)
    env.reset()
    top = env.soil_top()
    env.step(torch.zeros(1, env.act_dim))
    assert float((env.soil_top() - top).abs().max()) > 0.002


def test_surface_is_measured_on_the_settled_bed():
    env = make(20.0, num_envs=2)
    assert 1 <= env.settle_steps <= env.cfg.physics.settle_max_steps
    assert env.settle_residual < env.cfg.physics.settle_tolerance
    nominal = ExcavationEnv(_nominal(20.0))
    # XPBD compacts a stacked 20 mm bed by centimetres: the measured surface lies below the stacked one.
    assert (env.surface_z < nominal.surface_z - 0.005).all(), (env.surface_z, nominal.surface_z)
    # The rock starts half buried in the settled soil, not in the air above it.
    env.reset()
    rock_z = env.rock_pose()[0][:, 2]
    assert (rock_z < env.surface_z + env.rock_half_height).all()


def _nominal(delta_mm):
    cfg = ExcavationEnvConfig(num_envs=2, delta_mm=delta_mm, seed=3)
    cfg.physics.settle_max_steps = 0
    return cfg


def test_soil_top_is_the_median_column_top():
    # 2 x 2 columns over a 0.2 m tray; one column holds a tall stray particle, one is empty.
    pts = torch.tensor([[-0.05, -0.05, 0.00], [0.05, -0.05, 0.01], [-0.05, 0.05, 0.02], [-0.05, 0.05, 0.30]])
    world = torch.zeros(4, dtype=torch.long)
    valid = torch.ones(4, dtype=torch.bool)
    top = soil_top(pts, world, valid, 1, 0.005, 0.2, 2)
    # column tops 0.005, 0.015, 0.305 -> median 0.015 (the stray particle does not lift the surface)
    assert float(top[0]) == pytest.approx(0.015)
    valid[3] = False
    assert float(soil_top(pts, world, valid, 1, 0.005, 0.2, 2)[0]) == pytest.approx(0.015)
