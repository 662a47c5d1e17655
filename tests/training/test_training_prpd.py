"""Conservative transfer: the distillation term, the mixture rate alpha, and how PRPD.update uses them."""

from __future__ import annotations

import copy

import pytest
import torch

from training_helpers import point_factory, small_config
from excavation_training.algorithms import PRPD, QLearner, distillation_loss, estimate_alpha
from excavation_training.algorithms import prpd as prpd_module
from excavation_training.config import PolicyConfig, QConfig, TrainConfig
from excavation_training.models import ActorCritic
from excavation_training.runners import PRPDRunner
from excavation_training.storage import RolloutStorage


def _policy(seed=0, obs_dim=3, act_dim=2):
    torch.manual_seed(seed)
    return ActorCritic(obs_dim, act_dim, PolicyConfig(actor_hidden_dims=(16,), critic_hidden_dims=(16,), init_noise_std=0.5))


@pytest.mark.parametrize("kind", ["kl", "mse"])
@pytest.mark.parametrize("distill_std", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_distillation_term_is_zero_when_teacher_equals_student(kind, distill_std, alpha):
    student = _policy()
    teacher = copy.deepcopy(student)
    obs = torch.randn(64, 3)
    mean, std = student.distribution(obs)
    with torch.no_grad():
        t_mean, t_std = teacher.distribution(obs)
    loss = distillation_loss(mean, std, t_mean, t_std, alpha, kind, distill_std)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert all(g.abs().max().item() < 1e-6 for g in grads)


def test_formula_defaults_are_the_configs():
    """One home for each default: the formulas' keyword defaults are PRPDConfig's."""
    import inspect

    cfg = TrainConfig().prpd
    assert inspect.signature(estimate_alpha).parameters["estimator"].default == cfg.alpha_estimator
    params = inspect.signature(distillation_loss).parameters
    assert (params["kind"].default, params["distill_std"].default) == (cfg.distill_loss, cfg.distill_std)


def test_distillation_term_pulls_student_toward_teacher_scaled_by_alpha():
    student, teacher = _policy(0), _policy(1)
    obs = torch.randn(64, 3)
    mean, std = student.distribution(obs)
    t_mean, t_std = teacher.distribution(obs)
    d0 = distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 0.0, "kl", True)
    d_half = distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 0.5, "kl", True)
    d1 = distillation_loss(mean, std, t_mean.detach(), t_std.detach(), 1.0, "kl", True)
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
    q.fit(storage, holder, torch.Generator().manual_seed(0))

    good, bad = _ConstantPolicy(target, obs_dim), _ConstantPolicy(torch.tensor([-0.6, 0.6]), obs_dim)
    cfg = TrainConfig()
    cfg.prpd.alpha_mode, cfg.prpd.alpha_estimator = "dynamic", estimator
    alg = PRPD(holder, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    alg.q = q
    obs = torch.randn(256, obs_dim)

    alpha_hi, adv_hi = alg.mixture_rate(obs, bad.action_mean(obs), good.action_mean(obs))  # teacher better
    alpha_lo, adv_lo = alg.mixture_rate(obs, good.action_mean(obs), bad.action_mean(obs))  # teacher worse
    assert adv_hi.mean() > 0 > adv_lo.mean()
    assert alpha_hi > 0.9
    assert alpha_lo < 0.5


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
        assert runner.alg.q is None  # fixed alpha needs no Q


def test_advance_freezes_previous_policy_as_teacher(tmp_path):
    cfg = small_config(tmp_path / "run", resolutions=(20.0, 10.0), **{"prpd.max_iterations_per_stage": 2})
    runner = PRPDRunner(cfg, point_factory(16), cfg.runner.log_dir)
    snapshots = {}

    def grab(r, m):
        snapshots[m["iteration"]] = copy.deepcopy(r.policy.state_dict())

    runner.learn(num_iterations=3, callback=grab)
    assert runner.scheduler.stage == 1 and runner.env.delta_mm == 10.0
    teacher_state = runner.alg.teacher.state_dict()
    for k, v in snapshots[2].items():  # the teacher is the policy as it ended the 20 mm stage
        assert torch.equal(teacher_state[k], v), k
    assert all(not p.requires_grad for p in runner.alg.teacher.parameters())
    assert any(not torch.equal(runner.policy.state_dict()[k], v) for k, v in snapshots[2].items())


# ---------------------------------------------------------------------- alpha inside PRPD.update
def _update_with_teacher(alpha_mode, *, alpha=None, same_teacher=False, monkeypatch=None):
    """One PRPD.update on a fixed rollout in a stage with a teacher that differs from the student
    (``same_teacher``: the teacher is the student itself). ``alpha`` is prpd.alpha_fixed, or, with
    dynamic alpha, what the Q estimate is made to return. Returns (policy parameters, stats)."""
    cfg = small_config("unused", **{"prpd.alpha_mode": alpha_mode, "prpd.alpha_fixed": alpha if alpha_mode == "fixed" else 1.0,
                                    "ppo.schedule": "fixed", "prpd.alpha_0": 2.0})
    if alpha_mode == "dynamic":
        monkeypatch.setattr(prpd_module, "estimate_alpha", lambda advantage, estimator: torch.tensor(alpha))
    policy = _policy(0)
    alg = PRPD(policy, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    alg.init_storage(num_envs=32, num_steps=4)

    def move_student():
        with torch.no_grad():
            for p in policy.actor.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))

    torch.manual_seed(0)  # the Q start_stage creates is the same either way
    if same_teacher:
        move_student()
        alg.start_stage()
    else:
        alg.start_stage()
        move_student()
    obs = torch.randn(32, 3, generator=torch.Generator().manual_seed(2))
    for _ in range(4):
        actions = alg.act(obs).actions
        alg.process_env_step(actions[:, 0] - actions[:, 1], torch.ones(32, dtype=torch.bool))
    alg.compute_returns(obs)
    stats = alg.update()
    return [p.detach().clone() for p in policy.parameters()], stats


@pytest.mark.parametrize("alpha_mode", ["fixed", "dynamic"])
def test_alpha_weights_the_distillation_in_the_update(alpha_mode, monkeypatch):
    """The update uses its alpha: at alpha = 0 it is exactly the update without a distillation pull
    (a teacher equal to the student), and alpha = 0.5 and alpha = 1 give different updates. An update
    that ignored alpha (say, always distilled at alpha = 1) fails both."""
    run = lambda **kw: _update_with_teacher(alpha_mode, monkeypatch=monkeypatch, **kw)  # noqa: E731
    no_pull, _ = run(alpha=0.0, same_teacher=True)
    zero, zero_stats = run(alpha=0.0)
    half, half_stats = run(alpha=0.5)
    one, one_stats = run(alpha=1.0)
    assert zero_stats["teacher_kl"] > 0.01  # the teacher really differs from the student
    assert (zero_stats["alpha"], half_stats["alpha"], one_stats["alpha"]) == (0.0, 0.5, 1.0)
    assert zero_stats["distill_loss"] == 0.0 < half_stats["distill_loss"] < one_stats["distill_loss"]
    assert all(torch.equal(a, b) for a, b in zip(zero, no_pull))
    assert any(not torch.equal(a, b) for a, b in zip(half, one))
