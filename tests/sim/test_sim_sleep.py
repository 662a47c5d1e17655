"""Sleeping soil: far from the rock it is out of the solver and stays put; near it it is simulated,
and the shortened contact candidate list makes the same contacts as Newton's full one."""

from __future__ import annotations

import pytest
import torch

from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv

pytestmark = pytest.mark.timeout(600)


def make(sleep=True, margin=1.0, delta_mm=20.0, num_envs=2, seed=4):
    cfg = ExcavationEnvConfig(num_envs=num_envs, delta_mm=delta_mm, seed=seed)
    cfg.auto_reset = False
    cfg.physics.sleep = sleep
    cfg.physics.sleep_margin = margin
    return ExcavationEnv(cfg)


def rock_box_distance(env):
    """Distance of every particle from its world's rock box (rock frame), as the sleep pass sees it."""
    from excavation_sim.sleeping import _rotate_inv

    w = env.particle_world
    pose = env._bq[0][env.rock_body]
    local = _rotate_inv(pose[:, 3:][w], env._pq[0] - pose[:, :3][w])
    lo, hi = env._rock_box[0][w], env._rock_box[1][w]
    return torch.clamp(torch.maximum(lo - local, local - hi), min=0.0).norm(dim=1)


def test_far_soil_sleeps_and_stays_put_near_soil_is_simulated():
    env = make()
    env.reset()
    zero = torch.zeros(env.num_envs, env.act_dim)
    env.step(zero)
    before = env._pq[0].clone()
    far = env._in_episode & (rock_box_distance(env) > 4 * env.scene.delta)
    near = env._in_episode & (rock_box_distance(env) < 0.5 * env.scene.delta)
    assert far.any() and near.any()
    for _ in range(3):
        env.step(zero)
        active = env._pflags == 1
        assert not active[far].any(), "soil four diameters from a resting rock is awake"
        assert active[near].all(), "soil touching the rock sleeps"
    assert torch.equal(env._pq[0][far], before[far])
    assert env._sleep.pair_count < len(env.pipeline.soft_rigid_contact_pairs)


def test_soil_wakes_when_the_rock_comes_near():
    env = make()
    env.reset()
    zero = torch.zeros(env.num_envs, env.act_dim)
    env.step(zero)
    far = env._in_episode & (rock_box_distance(env) > 4 * env.scene.delta) & (env.particle_world == 0)
    target = far.nonzero()[0, 0]
    # Put rock 0 just above that particle: the next step must simulate it.
    offset = env._pq[0][target] - env._bq[0][env.rock_body[0], :3]
    offset[2] += float(env.rock_half_height[0]) + env.scene.delta
    env.displace_body(int(env.rock_body[0]), offset)
    env.step(zero)
    assert bool(env._sleep.awake[target]), "soil under a rock that arrived there still sleeps"


def test_shortened_candidate_list_makes_the_same_contacts():
    # Everyone awake (a margin wider than the tray): the sleep pass writes its own list of
    # particle-shape candidates, which must give the physics Newton's full list gives.
    full = make(sleep=False)
    listed = make(sleep=True, margin=100.0)
    for env in (full, listed):
        env.reset()
    g = torch.Generator().manual_seed(2)
    for _ in range(2):
        a = (torch.rand(2, 4, generator=g) * 2 - 1) * full.action_high
        full.step(a)
        listed.step(a)
    assert bool(listed._sleep.awake[listed._in_episode].all())
    assert listed._sleep.pair_count < len(listed.pipeline.soft_rigid_contact_pairs)  # bucket shapes left out
    assert torch.allclose(full._pq[0][full._in_episode], listed._pq[0][listed._in_episode], atol=1e-4)
    assert torch.allclose(full.rock_pose()[0], listed.rock_pose()[0], atol=1e-4)


def test_bad_sleep_settings_are_named():
    cfg = ExcavationEnvConfig()
    cfg.physics.sleep_speed = 0.0
    with pytest.raises(ValueError, match="sleep_speed"):
        cfg.validate()


def test_with_bucket_soil_contact_the_bucket_wakes_soil():
    cfg = ExcavationEnvConfig(num_envs=1, delta_mm=20.0, seed=4)
    cfg.auto_reset = False
    cfg.scene.bucket_soil_contact = True
    cfg.physics.sleep = True
    cfg.randomization.enabled = False
    env = ExcavationEnv(cfg)
    env.reset()
    # Tines pushed into the soil at the tray's side, beside the rock at the centre.
    tip = torch.tensor([0.075, 0.055, float(env.surface_z[0]) - 0.01])
    env.tip[0] = tip
    env.step(torch.zeros(1, env.act_dim))
    local = env._pq[0] - env.offsets[0]
    g = env.bucket_geom
    at_tines = env._in_episode & (local[:, 0] > tip[0] - g.tine_length) & (local[:, 0] < tip[0]) \
        & ((local[:, 1] - tip[1]).abs() < g.width / 2) & ((local[:, 2] - tip[2]).abs() < env.scene.delta) \
        & (rock_box_distance(env) > 2 * env.scene.delta)
    assert at_tines.any()
    assert bool(env._sleep.awake[at_tines].all()), "soil at the tines sleeps although the bucket pushes soil"
    plain = make(delta_mm=20.0, num_envs=1)
    plain.reset()
    far = plain._in_episode & (rock_box_distance(plain) > 2 * plain.scene.delta)
    plain.step(torch.zeros(1, plain.act_dim))
    assert not plain._sleep.awake[far].any()  # without bucket-soil contact the same kind of soil sleeps
