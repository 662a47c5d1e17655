"""Worlds split over processes: the same results as the shards' own envs, joined in env order."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import excavation_contract as contract
from excavation_sim.config import ExcavationEnvConfig
from excavation_sim.excavation_env import ExcavationEnv, make_env
from excavation_sim.sharded import SHARD_SEED_STRIDE, ShardedEnv, shard_sizes

pytestmark = pytest.mark.timeout(300)


def cfg70(num_envs=3, seed=5):
    return ExcavationEnvConfig(num_envs=num_envs, delta_mm=70.0, seed=seed)


def actions(n, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    high = torch.as_tensor(contract.ACTION_LIMIT)
    return [(torch.rand(n, contract.ACT_DIM, generator=g) * 2 - 1) * high for _ in range(steps)]


def test_shard_sizes_are_balanced_and_never_empty():
    assert shard_sizes(5, 2) == [3, 2]
    assert shard_sizes(64, 2) == [32, 32]
    assert shard_sizes(1, 4) == [1]


def test_sharded_steps_equal_the_shards_own_envs():
    cfg = cfg70()
    acts = actions(cfg.num_envs, 6)
    sharded = ShardedEnv(cfg, 2)
    try:
        assert sharded.sizes == [2, 1]
        got = [sharded.reset()] + [sharded.step(a) for a in acts]
    finally:
        sharded.close()
    own = [ExcavationEnv(replace(cfg, num_envs=n, seed=cfg.seed + SHARD_SEED_STRIDE * k)) for k, n in enumerate([2, 1])]
    want_obs = torch.cat([e.reset() for e in own])
    assert torch.equal(got[0], want_obs)
    for a, r in zip(acts, got[1:]):
        parts = [own[0].step(a[:2]), own[1].step(a[2:])]
        assert torch.equal(r.obs, torch.cat([p.obs for p in parts]))
        assert torch.equal(r.reward, torch.cat([p.reward for p in parts]))
        assert torch.equal(r.done, torch.cat([p.done for p in parts]))
        for key in parts[0].info:
            assert torch.equal(r.info[key], torch.cat([p.info[key] for p in parts])), key


def test_state_round_trip_repeats_the_future():
    env = ShardedEnv(cfg70(), 2)
    try:
        env.reset()
        for a in actions(3, 2):
            env.step(a)
        saved = env.state_dict()
        future = actions(3, 3, seed=9)
        first = [env.step(a).obs for a in future]
        env.load_state_dict(saved)
        again = [env.step(a).obs for a in future]
        assert all(torch.equal(x, y) for x, y in zip(first, again))
    finally:
        env.close()


def test_bad_input_is_named_and_the_workers_end():
    env = make_env(70.0, replace(cfg70(), shards=2))
    assert isinstance(env, ShardedEnv)
    try:
        with pytest.raises(ValueError, match="num_envs, act_dim"):
            env.step(torch.zeros(2, contract.ACT_DIM))
    finally:
        procs = list(env._procs)
        env.close()
    assert all(not p.is_alive() for p in procs)
    with pytest.raises(ValueError, match="shards must be a positive integer"):
        replace(cfg70(), shards=0).validate()
    with pytest.raises(ValueError, match="CPU shards only"):
        ShardedEnv(replace(cfg70(), device="cuda"), 2)
