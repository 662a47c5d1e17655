"""The Newton excavation env: real physics on the CPU, coarse resolutions, few envs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import excavation_contract as contract
from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv
from excavation_sim.randomization import sample_episode_params
from excavation_sim.scene import soil_grid
from excavation_sim.scripted import ScriptedScoop


def make(num_envs=2, delta_mm=70.0, dr=False, seed=0, **kw) -> ExcavationEnv:
    cfg = ExcavationEnvConfig(num_envs=num_envs, delta_mm=delta_mm, seed=seed, **kw)
    cfg.randomization.enabled = dr
    return ExcavationEnv(cfg)


@pytest.fixture(scope="module")
def env70():
    return make(num_envs=3, delta_mm=70.0, dr=True)


def random_actions(n, gen):
    return (torch.rand(n, contract.ACT_DIM, generator=gen) * 2 - 1) * torch.as_tensor(contract.ACTION_LIMIT)


def test_shapes_and_dtypes(env70):
    obs = env70.reset()
    assert obs.shape == (3, contract.OBS_DIM) and obs.dtype == torch.float32
    res = env70.step(torch.zeros(3, contract.ACT_DIM))
    assert res.obs.shape == (3, contract.OBS_DIM)
    assert res.reward.shape == (3,) and res.reward.dtype == torch.float32
    assert res.done.shape == (3,) and res.done.dtype == torch.bool
    for key in ("time_out", "episode_success", "episode_length", "episode_return"):
        assert res.info[key].shape == (3,), key
    assert set(res.obs[:, contract.OBS_INDEX["rock_in_bucket"]].tolist()) <= {0.0, 1.0}
    assert env70.action_high.tolist() == pytest.approx(contract.ACTION_LIMIT.tolist())


def test_seeded_runs_are_identical_and_seeds_differ():
    def rollout(seed):
        env = make(num_envs=2, dr=True, seed=seed)
        gen = torch.Generator().manual_seed(1)
        obs = [env.reset()]
        for _ in range(8):
            obs.append(env.step(random_actions(2, gen)).obs)
        return torch.stack(obs)

    a, b, c = rollout(3), rollout(3), rollout(4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_particle_count_grows_as_delta_shrinks():
    counts = [len(soil_grid(0.16, 0.0763, d / 1000)[0]) for d in (70, 60, 50, 40, 30, 20, 10)]
    assert all(x < y for x, y in zip(counts, counts[1:])), counts
    env = make(num_envs=1, delta_mm=50.0)
    assert int(env.particles_per_env[0]) == counts[2]


def _drive(env, n_steps, action):
    for _ in range(n_steps):
        env.step(action.expand(env.num_envs, -1).clone())


def test_bucket_passes_through_soil_but_pushes_the_rock():
    env = make(num_envs=1, delta_mm=50.0)
    for _ in range(5):  # let the soil settle
        env.step(torch.zeros(1, 4))
    # Lower the tines into the soil well away from the rock (side of the tray at y < 0).
    env.tip[0] = torch.tensor([-0.02, -0.12, 0.0])
    soil_before = env.soil_particles(0).copy()
    _drive(env, 3, torch.tensor([[0.0, 0.0, -0.02, 0.0]]))
    moved = np.linalg.norm(env.soil_particles(0) - soil_before, axis=1)
    assert moved.max() < 0.01, f"soil moved {moved.max():.3f} m with bucket-soil contact off"

    # Now sweep the bucket sideways through the rock at mid-height: the rock must be pushed.
    env2 = make(num_envs=1, delta_mm=50.0)
    for _ in range(5):
        env2.step(torch.zeros(1, 4))
    rock0 = env2.rock_pose()[0][0].clone()
    env2.tip[0] = torch.tensor([0.06, -0.16, float(rock0[2]) - 0.005])
    env2.pitch[0] = 0.0
    _drive(env2, 8, torch.tensor([[0.0, 0.025, 0.0, 0.0]]))
    rock1 = env2.rock_pose()[0][0]
    assert float(rock1[1] - rock0[1]) > 0.02, f"rock moved only {float(rock1[1] - rock0[1]):.3f} m in y"


def test_bucket_soil_contact_switch_makes_the_bucket_push_soil():
    env = make(num_envs=1, delta_mm=50.0, scene=replace(ExcavationEnvConfig().scene, bucket_soil_contact=True))
    for _ in range(5):
        env.step(torch.zeros(1, 4))
    env.tip[0] = torch.tensor([-0.02, -0.12, 0.0])
    soil_before = env.soil_particles(0).copy()
    _drive(env, 3, torch.tensor([[0.0, 0.0, -0.02, 0.0]]))
    moved = np.linalg.norm(env.soil_particles(0) - soil_before, axis=1)
    assert moved.max() > 0.01


def test_scripted_controller_lifts_the_rock_and_succeeds():
    env = make(num_envs=2, delta_mm=70.0)
    ctrl = ScriptedScoop(2)
    obs = env.reset()
    start_z = env.rock_pose()[0][:, 2].clone()
    successes, max_gain = 0, torch.zeros(2)
    for _ in range(60):
        res = env.step(ctrl.act(obs))
        max_gain = torch.maximum(max_gain, env.rock_pose()[0][:, 2] - start_z)
        obs = res.obs
        ctrl.reset(res.done)
        successes += int(res.info["episode_success"].sum())
        if successes:
            break
    assert successes >= 1
    assert float(max_gain.max()) > 0.03
    # progress is paid as a potential difference: a successful episode earns the bonus plus the
    # potential it ended with (rock in bucket and lifted), less small action penalties
    won = res.info["episode_success"]
    assert (res.info["episode_return"][won] > env.cfg.reward.success).all()


def _park_tines_under_the_rock(env) -> None:
    """Put the bucket still with its tines under the rock's middle (they pass through soil)."""
    rock, _ = env.rock_pose()
    tip = rock.clone()
    tip[:, 0] += env.bucket_geom.tine_length / 2
    tip[:, 2] -= env.rock_half_height + 0.012
    env.tip[:] = tip
    env.pitch[:] = 0.0
    ids = torch.arange(env.num_envs)
    env._write_bucket(ids, env.tip, env.pitch, torch.zeros(env.num_envs, 3), torch.zeros(env.num_envs))


@pytest.mark.parametrize("potential_shaping", [True, False])
def test_loitering_under_the_rock_pays_only_with_the_dense_reward(potential_shaping):
    env = make(num_envs=2, delta_mm=70.0)
    env.cfg.reward.potential_shaping = potential_shaping
    env.reset()
    _park_tines_under_the_rock(env)
    for _ in range(3):
        res = env.step(torch.zeros(2, contract.ACT_DIM))
    assert res.info["rock_in_bucket"].all()  # the pose this is about: a large potential to sit in
    if potential_shaping:
        assert res.reward.abs().max() < 0.05
    else:
        assert (res.reward > 1.0).all()  # reach + under + in_bucket, every step


def test_randomization_ranges_and_effect():
    cfg = ExcavationEnvConfig()
    dr = cfg.randomization
    p = sample_episode_params(cfg, 500, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert p.rock_obs_bias.abs().max() <= dr.rock_obs_bias_xy
    assert p.ground_bias.abs().max() <= dr.ground_height_bias
    assert p.torque_weight.min() >= 0.8 and p.torque_weight.max() <= 1.2
    assert p.soil_mass.min() >= 2.7 and p.soil_mass.max() <= 3.3
    assert p.rock_mass.min() >= 0.8 and p.rock_mass.max() <= 1.2
    assert p.friction_scale.min() >= 0.8 and p.friction_scale.max() <= 1.2
    f = p.rock_force.norm(dim=1)
    assert f.max() <= 1.0 + 1e-6 and f.std() > 0.1
    bias = p.bucket_start - torch.tensor(cfg.bucket.start_xyz)
    assert bias.abs().max() <= 0.3 + 1e-6 and bias.std() > 0.1
    # Every row actually varies.
    for t in (p.rock_obs_bias, p.ground_bias, p.torque_weight, p.soil_mass, p.rock_mass, p.friction_scale, p.rock_start_bias):
        assert t.std() > 0
    # Disabled: nominal values.
    cfg.randomization.enabled = False
    q = sample_episode_params(cfg, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.all(q.torque_weight == 1) and torch.all(q.soil_mass == cfg.scene.soil_mass) and torch.all(q.rock_obs_bias == 0)


def test_randomization_changes_the_scene():
    on = make(num_envs=4, delta_mm=40.0, dr=True, seed=1)
    vols = [w.rock_volume for w in on.scene.worlds]
    soil = [w.soil_volume for w in on.scene.worlds]
    assert len(set(vols)) == 4 and all(0.045**3 <= v <= 0.055**3 for v in vols)
    assert len(set(soil)) == 4 and all(0.120**3 <= v <= 0.130**3 for v in soil)
    masses = on._bmass[on.rock_body]
    assert len(set(masses.tolist())) == 4
    off = make(num_envs=2, delta_mm=40.0, dr=False)
    assert {w.rock_volume for w in off.scene.worlds} == {0.05**3}
    # Observation noise: the observed rock differs from the truth only with DR on.
    truth = on.rock_pose()[0]
    obs = on.observe()
    assert (obs[:, contract.OBS_INDEX["rock_x"]] - truth[:, 0]).abs().max() > 1e-4
    obs_off = off.observe()
    assert torch.allclose(obs_off[:, contract.OBS_INDEX["rock_x"]], off.rock_pose()[0][:, 0])


def test_subset_reset_leaves_other_envs_untouched():
    env = make(num_envs=3, delta_mm=70.0, dr=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        env.step(random_actions(3, gen))
    before_tip = env.tip.clone()
    before_rock = env._bq[0][env.rock_body].clone()
    w1 = env.scene.worlds[1]
    sl1 = slice(w1.particle_start, w1.particle_start + w1.particle_count)
    before_p1 = env._pq[0][sl1].clone()
    steps_before = env.episode_step.clone()
    env.reset_envs(torch.tensor([0, 2]))
    assert torch.equal(env.tip[1], before_tip[1])
    assert torch.equal(env._bq[0][env.rock_body[1]], before_rock[1])
    assert torch.equal(env._pq[0][sl1], before_p1)
    assert env.episode_step[1] == steps_before[1]
    assert env.episode_step[0] == 0 and env.episode_step[2] == 0


def test_thousand_random_steps_no_nan_no_particle_through_the_floor():
    env = make(num_envs=4, delta_mm=70.0, dr=True, physics=replace(ExcavationEnvConfig().physics, floor_safety_net=False))
    gen = torch.Generator().manual_seed(0)
    worst = -1.0
    for _ in range(1000):
        res = env.step(random_actions(4, gen))
        assert torch.isfinite(res.obs).all() and torch.isfinite(res.reward).all()
        worst = max(worst, float(env.lowest_particle_depth().max()))
    # Centre below the floor's top by less than a radius: squeezed, never through.
    assert worst < env.particle_radius, f"a particle sank {worst * 1000:.1f} mm below the floor"
    assert torch.isfinite(env._pq[0]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"delta_mm": 0.0}, "delta_mm"),
        ({"delta_mm": -5.0}, "delta_mm"),
        ({"delta_mm": 1000.0}, "delta_mm"),
        ({"delta_mm": "coarse"}, "delta_mm"),
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": -2}, "num_envs"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_config_is_refused_with_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExcavationEnv(ExcavationEnvConfig(**kwargs))


def test_bad_actions_are_refused_with_a_clear_error(env70):
    with pytest.raises(ValueError, match=r"shape \(3, 4\)"):
        env70.step(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"shape"):
        env70.step(torch.zeros(4))
    bad = torch.zeros(3, 4)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*\[1\]"):
        env70.step(bad)
    # The env still works after refusing bad input.
    assert torch.isfinite(env70.step(torch.zeros(3, 4)).obs).all()


def test_state_dict_round_trip_continues_exactly():
    gen = torch.Generator().manual_seed(5)
    acts = [random_actions(2, gen) for _ in range(6)]
    a = make(num_envs=2, delta_mm=70.0, dr=True, seed=2)
    for x in acts[:3]:
        a.step(x)
    saved = a.state_dict()
    ref = [a.step(x).obs for x in acts[3:]]
    b = make(num_envs=2, delta_mm=70.0, dr=True, seed=2)
    for x in acts[:2]:  # elsewhere in its own episode: the state must bring it back
        b.step(-x)
    b.load_state_dict(saved)
    out = [b.step(x).obs for x in acts[3:]]
    for r, o in zip(ref, out):
        assert torch.equal(r, o)
    with pytest.raises(ValueError, match="70"):
        make(num_envs=1, delta_mm=70.0).load_state_dict(saved)
    with pytest.raises(ValueError, match="different scene"):
        make(num_envs=2, delta_mm=70.0, dr=True, seed=99).load_state_dict(saved)
