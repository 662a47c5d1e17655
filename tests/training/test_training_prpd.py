"""Conservative transfer: the distillation term and the mixture rate alpha."""

from __future__ import annotations

import copy

import pytest
import torch

from training_helpers import point_factory, small_config
from excavation_training.algorithms import ConservativeTransfer, QLearner, distillation_loss, estimate_alpha
from excavation_training.config import PolicyConfig, PRPDConfig, QConfig
from excavation_training.models import ActorCritic
from excavation_training.runners import PRPDRunner
from excavation_training.storage import RolloutStorage


def _policy(seed=0, obs_dim=3, act_dim=2):
    torch.manual_seed(seed)
    return ActorCritic(obs_dim, act_dim, PolicyConfig(actor_hidden_dims=(16,), critic_hidden_dims=(16,), init_noise_std=0.5))


@pytest.mark.parametrize("kind", ["kl", "mse"])
@pytest.mark.parametrize("alpha_mode", ["dynamic", "fixed"])
def test_distillation_term_is_zero_when_teacher_equals_student(kind, alpha_mode):
    student = _policy()
    teacher = copy.deepcopy(student)
    cfg = PRPDConfig(alpha_mode=alpha_mode, alpha_fixed=1.0, distill_loss=kind)
    q = QLearner(3, 2, QConfig(hidden_dims=(16,)), 0.99, torch.device("cpu")) if alpha_mode == "dynamic" else None
    transfer = ConservativeTransfer(student, teacher, cfg, q)
    obs = torch.randn(64, 3)
    mean, std = student.distribution(obs)
    loss, stats = transfer.loss(obs, mean, std)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert all(g.abs().max().item() < 1e-6 for g in grads)
    assert stats["teacher_kl"] == pytest.approx(0.0, abs=1e-7)


def test_distillation_term_pulls_student_toward_teacher_scaled_by_alpha():
    student, teacher = _policy(0), _policy(1)
    obs = torch.randn(64, 3)
    mean, std = student.distribution(obs)
    t_mean, t_std = teacher.distribution(obs)
    d0 = distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 0.0)
    d_half = distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 0.5)
    d1 = distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 1.0)
    assert d0.item() == pytest.approx(0.0, abs=1e-7)  # alpha = 0: the target is the student itself
    assert 0.0 < d_half.item() < d1.item()
    # A gradient step on the alpha = 1 term brings the student's mean closer to the teacher's.
    d1.backward()
    with torch.no_grad():
        for p in student.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
        assert (student.action_mean(obs) - t_mean).pow(2).mean() < (mean - t_mean).pow(2).mean()


def test_mean_only_distillation_leaves_the_std_to_ppo():
    """distill_std=False: no gradient on the student's std; True: the std is pulled toward the teacher's."""
    obs = torch.randn(32, 3)
    for distill_std, expect_grad in ((False, False), (True, True)):
        student, teacher = _policy(0), _policy(1)
        with torch.no_grad():
            teacher.log_std.fill_(-2.0)  # a teacher that explores much less than the student
        mean, std = student.distribution(obs)
        t_mean, t_std = teacher.distribution(obs)
        distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 1.0, "kl", distill_std).backward()
        g = student.log_std.grad
        has_grad = g is not None and bool(g.abs().sum() > 0)
        assert has_grad == expect_grad
        if expect_grad:
            assert bool((g > 0).all())  # descending it lowers the student's std toward the teacher's


def test_estimate_alpha_rises_and_falls_with_teacher_advantage():
    better = torch.tensor([0.5, 0.2, 0.9, 0.1])
    worse = -better
    mixed = torch.tensor([0.5, -0.3, -0.4, 0.1])
    assert estimate_alpha(better, "cpd").item() == pytest.approx(1.0)
    assert estimate_alpha(worse, "cpd").item() < 0.6
    assert estimate_alpha(worse, "cpd").item() < estimate_alpha(mixed, "cpd").item() < estimate_alpha(better, "cpd").item()
    assert estimate_alpha(better, "win_rate").item() == 1.0
    assert estimate_alpha(worse, "win_rate").item() == 0.0
    assert estimate_alpha(mixed, "win_rate").item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="alpha_estimator"):
        estimate_alpha(better, "median")


@pytest.mark.parametrize("estimator", ["cpd", "win_rate"])
def test_alpha_from_a_trained_q_follows_which_policy_acts_better(estimator):
    """Fit Q on rollouts whose reward is high near a target action; then alpha is high when the
    teacher's mean action is near the target and the student's is not, and low the other way round."""
    torch.manual_seed(0)
    obs_dim, act_dim, T, N = 3, 2, 8, 64
    target = torch.tensor([0.6, -0.4])
    q = QLearner(obs_dim, act_dim, QConfig(hidden_dims=(64, 64), num_epochs=60, num_mini_batches=4), 0.0, torch.device("cpu"))
    storage = RolloutStorage(T, N, obs_dim, act_dim, torch.device("cpu"))
    for _ in range(T):
        obs = torch.randn(N, obs_dim)
        actions = torch.rand(N, act_dim) * 2 - 1
        reward = -(actions - target).pow(2).sum(-1)
        zeros = torch.zeros(N)
        storage.add(obs, actions, reward, torch.ones(N, dtype=torch.bool), zeros, zeros, torch.zeros(N, act_dim), torch.ones(N, act_dim))
    storage.finish(obs, zeros)
    storage.compute_gae(0.0, 0.95)
    holder = _policy(0, obs_dim, act_dim)
    q.update(storage, holder, torch.Generator().manual_seed(0))

    good, bad = _ConstantPolicy(target, obs_dim), _ConstantPolicy(torch.tensor([-0.6, 0.6]), obs_dim)
    cfg = PRPDConfig(alpha_mode="dynamic", alpha_estimator=estimator)
    obs = torch.randn(256, obs_dim)

    teacher_better = ConservativeTransfer(holder, good, cfg, q)
    student_mean = bad.action_mean(obs)
    _, stats_hi = teacher_better.loss(obs, student_mean, torch.full_like(student_mean, 0.5))

    teacher_worse = ConservativeTransfer(holder, bad, cfg, q)
    student_mean = good.action_mean(obs)
    _, stats_lo = teacher_worse.loss(obs, student_mean, torch.full_like(student_mean, 0.5))

    assert stats_hi["teacher_advantage"] > 0 > stats_lo["teacher_advantage"]
    assert stats_hi["alpha"] > 0.9
    assert stats_lo["alpha"] < 0.5


class _ConstantPolicy(ActorCritic):
    def __init__(self, action, obs_dim):
        super().__init__(obs_dim, len(action), PolicyConfig(actor_hidden_dims=(4,), critic_hidden_dims=(4,), init_noise_std=0.5))
        self._action = action

    def action_mean(self, obs):
        return self._action.expand(obs.shape[0], -1).clone()


def test_fixed_alpha_modes_report_their_alpha(tmp_path):
    for value in (0.0, 1.0):
        cfg = small_config(tmp_path / f"a{value}", resolutions=(20.0, 10.0),
                           **{"prpd.alpha_mode": "fixed", "prpd.alpha_fixed": value, "prpd.max_iterations_per_stage": 1})
        runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
        seen = []
        runner.learn(callback=lambda r, m: seen.append(m))
        assert seen[0]["alpha"] != seen[0]["alpha"]  # NaN: no teacher in the first stage
        assert seen[1]["alpha"] == pytest.approx(value)
        assert runner.q_learner is None  # fixed alpha needs no Q


def test_advance_freezes_previous_policy_as_teacher(tmp_path):
    cfg = small_config(tmp_path / "run", resolutions=(20.0, 10.0), **{"prpd.max_iterations_per_stage": 2})
    runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
    snapshots = {}

    def grab(r, m):
        snapshots[m["iteration"]] = copy.deepcopy(r.policy.state_dict())

    runner.learn(num_iterations=3, callback=grab)
    assert runner.scheduler.stage == 1 and runner.env.delta_mm == 10.0
    teacher_state = runner.teacher.state_dict()
    for k, v in snapshots[2].items():  # the teacher is the policy as it ended the 20 mm stage
        assert torch.equal(teacher_state[k], v), k
    assert all(not p.requires_grad for p in runner.teacher.parameters())
    assert any(not torch.equal(runner.policy.state_dict()[k], v) for k, v in snapshots[2].items())
