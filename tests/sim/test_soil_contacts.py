"""Sleeping soil supports the awake soil beside it (``soil_contacts.py``): the kernel equals Newton's
when nothing sleeps, a sleeping neighbour pushes like an awake one at rest, and with sleep on the soil
round the rock does not slump into the sleeping soil."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import warp as wp

import newton
from excavation_sim import sleeping, soil_contacts
from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv
from newton._src.solvers.xpbd import kernels as xpbd_kernels
from newton._src.solvers.xpbd import solver_xpbd

pytestmark = pytest.mark.timeout(600)
ACTIVE = int(newton.ParticleFlags.ACTIVE)


def contact_deltas(kernel, x, v, flags, radius=0.005, mu=0.5):
    n = len(x)
    xs, vs = wp.array(x, dtype=wp.vec3), wp.array(v, dtype=wp.vec3)
    grid = wp.HashGrid(16, 16, 16)
    grid.build(xs, radius=2 * radius)
    out = wp.zeros(n, dtype=wp.vec3)
    wp.launch(kernel, dim=n, inputs=[grid.id, xs, vs, wp.array(np.ones(n, np.float32) * 50.0),
                                     wp.array(np.full(n, radius, np.float32)), wp.array(flags, dtype=wp.int32),
                                     mu, 0.0, radius, 1e-3, 0.3], outputs=[out])
    return out.numpy()


def overlapping_bed(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 3)) * 0.05).astype(np.float32), (rng.normal(size=(n, 3)) * 0.1).astype(np.float32)


def test_without_sleepers_the_kernel_is_newtons_bit_for_bit():
    x, v = overlapping_bed()
    flags = np.where(np.arange(len(x)) % 7 == 0, 0, ACTIVE).astype(np.int32)  # some switched off
    ours = contact_deltas(soil_contacts.solve_particle_particle_contacts_with_support, x, v, flags)
    theirs = contact_deltas(xpbd_kernels.solve_particle_particle_contacts, x, v, flags)
    assert np.abs(ours).max() > 0  # there are contacts to compare
    assert np.array_equal(ours, theirs)


def test_a_sleeping_neighbour_pushes_like_an_awake_one_at_rest():
    x, v = overlapping_bed(seed=1)
    sleepers = np.arange(len(x)) % 3 == 0
    v[sleepers] = 0.0
    awake_all = np.full(len(x), ACTIVE, np.int32)
    with_support = np.where(sleepers, soil_contacts.SUPPORT, ACTIVE).astype(np.int32)
    ours = contact_deltas(soil_contacts.solve_particle_particle_contacts_with_support, x, v, with_support)
    reference = contact_deltas(xpbd_kernels.solve_particle_particle_contacts, x, v, awake_all)
    assert np.allclose(ours[~sleepers], reference[~sleepers], atol=1e-7)
    assert not ours[sleepers].any()  # a sleeper itself is never moved
    # Newton's own kernel ignores the sleepers: the awake ones would lose that push
    newton_kernel = contact_deltas(xpbd_kernels.solve_particle_particle_contacts, x, v, with_support)
    assert not np.allclose(newton_kernel[~sleepers], reference[~sleepers], atol=1e-5)


def test_a_stale_sleeper_velocity_does_not_drag_its_neighbours():
    x, v = overlapping_bed(seed=2)
    sleepers = np.arange(len(x)) % 3 == 0
    flags = np.where(sleepers, soil_contacts.SUPPORT, ACTIVE).astype(np.int32)
    still = v.copy()
    still[sleepers] = 0.0
    stale = v.copy()
    stale[sleepers] = 5.0  # the solver never writes a sleeper's velocity: whatever is there must not count
    k = soil_contacts.solve_particle_particle_contacts_with_support
    assert np.array_equal(contact_deltas(k, x, still, flags), contact_deltas(k, x, stale, flags))


def test_the_solver_launches_it_once_sleep_is_on():
    cfg = ExcavationEnvConfig(num_envs=1, delta_mm=70.0, seed=1)
    cfg.physics.sleep = True
    ExcavationEnv(cfg)
    assert solver_xpbd.solve_particle_particle_contacts is soil_contacts.solve_particle_particle_contacts_with_support


def ring_top_change_mm(sleep: bool, steps: int = 3) -> float:
    """Mean over worlds of the change of the soil top (90th percentile height) in a ring 3-5 cm
    round the rock after ``steps`` idle steps."""
    cfg = ExcavationEnvConfig(num_envs=4, delta_mm=20.0, seed=11)
    cfg.auto_reset = False
    cfg.physics.sleep = sleep
    env = ExcavationEnv(cfg)
    env.reset()
    w = env.particle_world

    def tops():
        rock = env._bq[0][env.rock_body][:, :3]
        d = (env._pq[0][:, :2] - rock[w][:, :2]).norm(dim=1)
        ring = env._in_episode & (d > 0.03) & (d < 0.05)
        return torch.stack([torch.quantile(env._pq[0][ring & (w == e), 2], 0.9) for e in range(env.num_envs)])

    before = tops()
    for _ in range(steps):
        env.step(torch.zeros(env.num_envs, env.act_dim))
    return float((tops() - before).mean()) * 1e3


def test_with_sleep_on_the_soil_round_the_rock_does_not_slump(monkeypatch):
    awake = ring_top_change_mm(sleep=False)
    supported = ring_top_change_mm(sleep=True)
    assert abs(supported - awake) < 4.0, f"ring moved {supported:.1f} mm with sleep, {awake:.1f} mm without"
    # Without the support (sleepers switched off, as before) the same ring slumps: the check can fail.
    monkeypatch.setattr(sleeping, "SUPPORT", 0)
    unsupported = ring_top_change_mm(sleep=True)
    assert unsupported < awake - 6.0, f"unsupported ring moved {unsupported:.1f} mm, {awake:.1f} mm without sleep"
