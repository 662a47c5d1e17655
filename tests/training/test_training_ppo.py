"""PPO alone (one resolution, no teacher) learns a small control task quickly."""

from __future__ import annotations

import pytest
import torch

from training_helpers import point_factory, small_config
from excavation_training.evaluation import evaluate
from excavation_training.export.torchscript import DeterministicPolicy
from excavation_training.runners import PRPDRunner
from excavation_training.toy_envs import PointReachEnv


@pytest.mark.parametrize("dim", [1, 2])
def test_ppo_solves_point_reaching(tmp_path, dim):
    cfg = small_config(
        tmp_path / "run", num_envs=32, steps=32, resolutions=(10.0,),
        **{"prpd.max_iterations_per_stage": 40, "prpd.success_threshold": 0.95,
           "ppo.num_learning_epochs": 4, "policy.actor_hidden_dims": [64, 64], "policy.critic_hidden_dims": [64, 64]},
    )
    make = lambda delta, randomize: PointReachEnv(64, delta, dim=dim, seed=123, randomize=randomize, success_radius=0.1)  # noqa: E731
    runner = PRPDRunner(cfg, lambda d: PointReachEnv(32, d, dim=dim, seed=0, success_radius=0.1), tmp_path / "run")
    before = evaluate(DeterministicPolicy(runner.policy, runner.action_low, runner.action_high), make, 10.0, episodes=64)
    result = runner.learn()
    after = evaluate(DeterministicPolicy(runner.policy, runner.action_low, runner.action_high), make, 10.0, episodes=64)
    assert result.finished and result.stages[0]["reason"] == "threshold", result.stages
    assert before.success_rate < 0.5  # the task is not trivial for the untrained policy
    # Just past 0.95 training success, the deterministic policy on other starts scores 0.86-1.0
    # depending on the seed (4 seeds, both value-loss forms); untrained it is below 0.5.
    assert after.success_rate >= 0.85, after


def test_ppo_update_moves_toward_higher_advantage(cfg_factory):
    """One update on a rollout where one action direction is rewarded shifts the mean that way."""
    cfg = cfg_factory(resolutions=(10.0,), **{"ppo.schedule": "fixed", "ppo.entropy_coef": 0.0})
    runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
    st = runner.storage
    obs = torch.zeros(16, runner.obs_dim)
    for _ in range(st.num_steps):
        actions, logp, values, mean, std = runner.ppo.act(obs)
        reward = actions[:, 0]  # positive actions are better
        st.add(obs, actions, reward, torch.ones(16, dtype=torch.bool), values, logp, mean, std)
    st.finish(obs, torch.zeros(16))
    st.compute_gae(0.99, 0.95)
    mean_before = runner.policy.action_mean(obs[:1]).item()
    runner.ppo.update(st)
    assert runner.policy.action_mean(obs[:1]).item() > mean_before


def test_kl_penalty_beta_adapts(cfg_factory):
    cfg = cfg_factory(resolutions=(10.0,), **{"ppo.kl_penalty_coef": 0.5, "ppo.desired_kl": 1e-6, "ppo.schedule": "fixed"})
    runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
    runner.learn(num_iterations=1)
    # Any real update moves the policy far more than a KL of 1e-6, so beta must have doubled.
    assert runner.ppo.kl_beta == pytest.approx(1.0)


def test_critic_only_update_leaves_the_actor_as_it_was(cfg_factory):
    """The critic warm-up after behaviour cloning must not move the cloned actor (nor its std)."""
    cfg = cfg_factory(resolutions=(10.0,), **{"ppo.schedule": "adaptive"})
    runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
    st = runner.storage
    obs = torch.randn(16, runner.obs_dim)
    for _ in range(st.num_steps):
        actions, logp, values, mean, std = runner.ppo.act(obs)
        st.add(obs, actions, actions[:, 0] + 1.0, torch.ones(16, dtype=torch.bool), values, logp, mean, std)
    st.finish(obs, torch.zeros(16))
    st.compute_gae(0.99, 0.95)
    actor = [p.detach().clone() for p in [*runner.policy.actor.parameters(), runner.policy.log_std]]
    critic = [p.detach().clone() for p in runner.policy.critic.parameters()]
    lr = runner.ppo.learning_rate
    runner.ppo.update(st, train_actor=False)
    assert all(torch.equal(a, b) for a, b in zip(actor, [*runner.policy.actor.parameters(), runner.policy.log_std]))
    assert any(not torch.equal(a, b) for a, b in zip(critic, runner.policy.critic.parameters()))
    assert runner.ppo.learning_rate == lr  # no KL from a frozen actor: the schedule must not react


def _rollout(runner, obs):
    st = runner.storage
    for _ in range(st.num_steps):
        actions, logp, values, mean, std = runner.ppo.act(obs)
        st.add(obs, actions, 100.0 * actions[:, 0] + 50.0, torch.ones(obs.shape[0], dtype=torch.bool), values, logp, mean, std)
    st.finish(obs, torch.zeros(obs.shape[0]))
    st.compute_gae(0.99, 0.95)
    return st


@pytest.mark.parametrize("critic_lr", [1e-3, None])
def test_adaptive_schedule_sets_the_actor_rate_and_leaves_the_critic_its_own(cfg_factory, critic_lr):
    """A policy KL far above desired_kl drives the actor's learning rate down; the critic keeps
    ppo.critic_learning_rate (or follows the actor when it is None, as rsl_rl does)."""
    cfg = cfg_factory(resolutions=(10.0,), **{"ppo.schedule": "adaptive", "ppo.desired_kl": 1e-9,
                                              "ppo.critic_learning_rate": critic_lr})
    runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
    stats = runner.ppo.update(_rollout(runner, torch.randn(16, runner.obs_dim)))
    assert runner.ppo.learning_rate < cfg.ppo.learning_rate
    actor_lr, critic_lr_now = (g["lr"] for g in runner.ppo.optimizer.param_groups)
    assert actor_lr == runner.ppo.learning_rate
    assert critic_lr_now == (1e-3 if critic_lr is not None else runner.ppo.learning_rate)
    assert stats["critic_learning_rate"] == critic_lr_now


def test_actor_update_does_not_depend_on_the_value_loss_scale(cfg_factory):
    """With per-network gradient clipping, a critic far from its targets (large value loss) leaves the
    actor's update exactly as it is with a critic that is close to them."""
    updates = []
    for critic_scale in (0.0, 1e3):
        cfg = cfg_factory(resolutions=(10.0,), **{"ppo.schedule": "fixed", "ppo.num_learning_epochs": 1,
                                                  "ppo.num_mini_batches": 1})
        torch.manual_seed(0)
        runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
        st = _rollout(runner, torch.randn(16, runner.obs_dim, generator=torch.Generator().manual_seed(1)))
        with torch.no_grad():  # a critic whose values are way off: only the value loss changes
            runner.policy.critic[-1].bias.add_(critic_scale)
        before = [p.detach().clone() for p in runner.policy.actor.parameters()]
        runner.ppo.update(st)
        updates.append([p.detach() - b for p, b in zip(runner.policy.actor.parameters(), before)])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*updates))
