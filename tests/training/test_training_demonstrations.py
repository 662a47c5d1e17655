"""Behaviour-cloning warm start."""

from __future__ import annotations

import pytest
import torch

from excavation_training.algorithms.demonstrations import behaviour_clone
from excavation_training.config import ConfigError, PolicyConfig, TrainConfig
from excavation_training.models.actor_critic import ActorCritic


def test_behaviour_clone_fits_the_demonstrated_actions_and_sets_the_std():
    torch.manual_seed(0)
    obs = torch.randn(2048, 8)
    low, high = torch.tensor([-0.025, -0.025, -0.025, -0.15]), torch.tensor([0.025, 0.025, 0.025, 0.15])
    w = torch.randn(8, 4) * 0.3
    demo = (torch.tanh(obs @ w) * high)  # physical units, inside the bounds
    policy = ActorCritic(8, 4, PolicyConfig(actor_hidden_dims=(64, 64), critic_hidden_dims=(32,)))
    before = torch.nn.functional.mse_loss(policy.action_mean(obs), demo / high).item()
    mse = behaviour_clone(policy, obs, demo, low, high, epochs=40, learning_rate=3e-3, batch_size=256,
                          generator=torch.Generator().manual_seed(0), init_noise_std=0.3)
    after = torch.nn.functional.mse_loss(policy.action_mean(obs), demo / high).item()
    assert after < 0.1 * before and mse < 0.05
    assert torch.allclose(policy.std().detach(), torch.full((4,), 0.3))


def test_demo_config_is_checked():
    cfg = TrainConfig()
    cfg.demo.steps = -1
    with pytest.raises(ConfigError, match="demo.steps"):
        cfg.validate()
    cfg = TrainConfig()
    cfg.env.name = "toy"
    cfg.demo.steps = 10
    with pytest.raises(ConfigError, match="demo.steps"):
        cfg.validate()


class _Recorder:
    """An 'expert' that labels every observation with its first coordinate, and counts resets."""

    def __init__(self):
        self.resets = 0

    def act(self, obs):
        return obs[:, :1].repeat(1, 2)

    def reset(self, done):
        self.resets += int(done.sum())


def test_dagger_labels_the_states_the_student_visits():
    from excavation_training.algorithms.demonstrations import collect_demonstrations
    from excavation_training.toy_envs import PointReachEnv

    env = PointReachEnv(num_envs=4, dim=2, seed=0)
    push = torch.tensor([[0.1, 0.0]]).expand(4, 2)
    expert = _Recorder()
    obs, labels = collect_demonstrations(env, 5, expert, lambda o: push.clone())
    assert obs.shape[0] == labels.shape[0] == 20
    assert torch.equal(labels, obs[:, :1].repeat(1, 2))  # labelled by the expert ...
    assert not torch.equal(obs[:4], obs[-4:])  # ... on the states the student's actions led to


def test_warm_start_hands_the_cloned_policy_to_ppo_at_a_small_actor_rate(tmp_path):
    """After cloning, PPO's actor starts at demo.ppo_learning_rate (a from-scratch rate undid the
    clone in its first update); the critic keeps its own rate for the warm-up."""
    from training_helpers import small_config
    from excavation_training.runners import PRPDRunner, build_env_factory

    cfg = small_config(tmp_path / "run", env="excavation", num_envs=2, steps=4, resolutions=(70.0,),
                       **{"demo.steps": 3, "demo.epochs": 1, "demo.ppo_learning_rate": 2e-5})
    runner = PRPDRunner(cfg, build_env_factory(cfg), cfg.runner.log_dir)
    try:
        assert runner.demo_record["samples"] == 6
        assert runner.ppo.learning_rate == 2e-5
        assert [g["lr"] for g in runner.ppo.optimizer.param_groups] == [2e-5, cfg.ppo.critic_learning_rate]
    finally:
        runner.env.close()
