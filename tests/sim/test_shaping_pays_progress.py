"""Potential-based shaping in the real Newton env pays progress: Phi(s') - Phi(s), not Phi(s') - Phi(s').

A reviewer changed the shaping to pay Phi(s') - Phi(s') (nothing) and only a unit test that rebuilds
its expectation with the code's own ``potential()`` noticed. Here the env is stepped for real (70 mm,
two envs) and the reward is checked against the potential written out from its documentation
(``rewards.py`` / ``RewardConfig``):

    Phi(s) = reach * exp(-|p_scoop - p_goal| / reach_scale) + under * [under] + in_bucket * [in_bucket] + ...
    p_goal = rock centre - (0, 0, rock half height + 0.01)          a point just below the rock
    p_scoop = the tines' middle = tip + R_y(pitch) (-tine_length / 2, 0, 0)
    r = Phi(s') - Phi(s) - action * |a / a_max|^2                     (no success, no workspace push)

(The docstring's shaping has no discount factor: Phi(s') - Phi(s), not gamma Phi(s') - Phi(s).)
The bucket is kept outside the fork (the rock's centre lies in front of the tines' tips), so the fork
flags are 0 and only the reach term moves; the test checks that independently too.
"""

from __future__ import annotations

import pytest
import torch

import excavation_contract as contract
from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv

STEP = 0.025  # one full-size translation action (contract.ACTION_LIMIT)


@pytest.fixture(scope="module")
def env():
    cfg = ExcavationEnvConfig(num_envs=2, delta_mm=70.0, seed=0)
    cfg.randomization.enabled = False  # torque weight 1, no external force, nominal start: the command is the motion
    assert cfg.reward.potential_shaping
    e = ExcavationEnv(cfg)
    yield e
    e.close()


def _phi(env, tip: torch.Tensor) -> torch.Tensor:
    """Phi at pitch 0 outside the fork, from the documented formula and the env's truth (rock pose)."""
    r = env.cfg.reward
    rock, _ = env.rock_pose()
    scoop = tip.clone()
    scoop[:, 0] -= env.bucket_geom.tine_length / 2  # pitch 0: the tines run back along -x from the tip
    goal = rock.clone()
    goal[:, 2] -= env.rock_half_height + 0.01
    d = (scoop - goal).norm(dim=1)
    # Outside the fork, independently: the rock's centre is in front of the tips (bucket-frame x > 0.005
    # at pitch 0 means "not between back plate and tips"), so under = in_bucket = 0.
    assert ((rock[:, 0] - tip[:, 0]) > 0.005).all(), "the scene left the set-up this test relies on"
    return r.reach * torch.exp(-d / r.reach_scale)


def _action_penalty(env, a: torch.Tensor) -> torch.Tensor:
    return env.cfg.reward.action * (a / torch.as_tensor(contract.ACTION_LIMIT)).pow(2).sum(dim=1)


def _step(env, a: torch.Tensor):
    """One env step; returns (reward, Phi before, Phi after) with Phi from the formula above."""
    tip_before = env.tip.clone()
    phi_before = _phi(env, tip_before)
    res = env.step(a)
    assert not res.done.any()
    assert not res.info["rock_in_bucket"].any()
    # The bucket went where it was told (no workspace clip, no floor clamp): the scoop point above is
    # computed from where the bucket really is.
    torch.testing.assert_close(env.tip, tip_before + a[:, :3], rtol=0, atol=1e-6)
    assert torch.equal(env.pitch, torch.zeros(2))
    return res.reward, phi_before, _phi(env, env.tip)


def test_moving_toward_the_rock_pays_the_potential_gained_and_moving_away_refunds_it(env):
    env.reset()
    assert torch.equal(env.pitch, torch.zeros(2)) and env.cfg.bucket.start_pitch == 0.0
    # Drive (with actions, through soil: the tines do not touch it) to low in front of the rock:
    # from the start tip (-0.12, 0, 0.10) down to z = -0.05, then in +x to tip x = -0.07.
    down = torch.tensor([[0.0, 0.0, -STEP, 0.0]]).repeat(2, 1)
    fwd = torch.tensor([[STEP, 0.0, 0.0, 0.0]]).repeat(2, 1)
    for a in [down] * 6 + [fwd] * 2:
        env.step(a)
    rock, _ = env.rock_pose()
    gap = rock[:, 0] - env.tip[:, 0]
    assert (gap > 0.05).all()  # one more step forward keeps the tips in front of the rock

    # The measured step: env 0 moves toward the rock, env 1 away from it, at once.
    toward_away = torch.tensor([[STEP, 0.0, 0.0, 0.0], [-STEP, 0.0, 0.0, 0.0]])
    r, phi0, phi1 = _step(env, toward_away)
    expected = phi1 - phi0 - _action_penalty(env, toward_away)
    progress = r + _action_penalty(env, toward_away)  # what the step paid for the potential
    assert phi1[0] > phi0[0] + 0.01 and phi1[1] < phi0[1] - 0.01  # the step really changed the distance
    torch.testing.assert_close(r, expected, rtol=1e-4, atol=2e-5)
    assert progress[0] > 0.01, "moving toward the rock must pay progress"
    assert progress[1] < -0.01, "moving away must cost the potential it gives up"

    # Undo both moves: each env gets back what it was paid (the potential refunds, it does not pile up).
    back = -toward_away
    r_back, phi0b, phi1b = _step(env, back)
    torch.testing.assert_close(r_back, phi1b - phi0b - _action_penalty(env, back), rtol=1e-4, atol=2e-5)
    assert (r_back + _action_penalty(env, back)).sign().tolist() == [-1.0, 1.0]

    # Standing still pays (almost) nothing: only the rock's own settling changes Phi.
    still = torch.zeros(2, 4)
    r_still, a0, a1 = _step(env, still)
    torch.testing.assert_close(r_still, a1 - a0, rtol=1e-4, atol=2e-5)
    assert r_still.abs().max() < 1e-3


def test_the_shaping_is_a_difference_of_potentials_not_the_potential(env):
    """With potential_shaping the step near the rock pays far less than Phi itself (what the dense reward
    would pay every step), and exactly the change of Phi."""
    env.reset()
    for a in [torch.tensor([[0.0, 0.0, -STEP, 0.0]]).repeat(2, 1)] * 6 + [torch.tensor([[STEP, 0.0, 0.0, 0.0]]).repeat(2, 1)] * 3:
        r, phi0, phi1 = _step(env, a)
        torch.testing.assert_close(r, phi1 - phi0 - _action_penalty(env, a), rtol=1e-4, atol=2e-5)
    assert (phi1 > 0.05).all()  # near the rock, Phi is large ...
    assert (r < phi1 / 2).all()  # ... and the reward is its change, not Phi itself
