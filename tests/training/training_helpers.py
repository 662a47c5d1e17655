"""Helpers of the training tests: small, fast configs on the toy envs (no simulator).

A uniquely named module rather than conftest.py, so ``from training_helpers import ...`` cannot pick up
another test folder's conftest."""

from __future__ import annotations

import torch

from excavation_training.config import TrainConfig
from excavation_training.toy_envs import PointReachEnv, ToyExcavationEnv

# The machine is shared; one thread keeps timings stable and runs reproducible.
torch.set_num_threads(1)


def small_config(log_dir, *, env="point", num_envs=16, steps=16, resolutions=(30.0, 20.0, 10.0), **overrides) -> TrainConfig:
    cfg = TrainConfig()
    cfg.env.name = env
    cfg.env.num_envs = num_envs
    cfg.runner.steps_per_iteration = steps
    cfg.runner.log_dir = str(log_dir)
    cfg.runner.progress = False
    cfg.runner.tensorboard = False
    cfg.runner.checkpoint_every = 1000
    cfg.policy.actor_hidden_dims = cfg.policy.critic_hidden_dims = (32, 32)
    cfg.q.hidden_dims = (32, 32)
    cfg.ppo.num_learning_epochs = 2
    cfg.ppo.num_mini_batches = 2
    cfg.q.num_epochs = 2
    cfg.q.num_mini_batches = 2
    cfg.prpd.resolutions_mm = tuple(resolutions)
    # One iteration's first episodes (the default, 128, would need 8 of these tiny iterations per
    # stage); test_training_scheduler.py tests the window itself.
    cfg.prpd.advance_window_episodes = num_envs
    cfg.apply_overrides(overrides)
    return cfg.validate()


def point_factory(num_envs=16, seed=0, **kw):
    return lambda delta: PointReachEnv(num_envs, delta, seed=seed, **kw)


def toy_factory(num_envs=16, seed=0, **kw):
    return lambda delta: ToyExcavationEnv(num_envs, delta, seed=seed, **kw)
