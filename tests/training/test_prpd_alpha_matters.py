"""The mixture rate alpha really weights the conservative transfer term.

Issue 16: a reviewer forced alpha = 1 inside the transfer and the PRPD tests did not notice. The
expectations here are rebuilt from the definition (training/docs/prpd.md, PRPD-NOTES.md "Conservative transfer"), never from the
code's own helpers:

    pi_mix = N((1 - alpha) sg(mu_S) + alpha mu_T, sigma_mix^2)
    L_D    = KL(pi_mix || pi_S)               summed over action dims, mean over states
    sigma_mix = sg(sigma_S)                    (prpd.distill_std = false)
              = (1 - alpha) sg(sigma_S) + alpha sigma_T   (true)
    mse: L_D = mean |mu_S - mu_mix|^2
    loss += c3 * L_D,   c3 = prpd.alpha_0

KLs come from ``torch.distributions`` and gradients are written out by hand, so a bug shared by the
code's ``gaussian_kl`` and ``distillation_loss`` cannot hide itself.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from training_helpers import small_config
from excavation_training.algorithms import PRPD, distillation_loss
from excavation_training.config import PolicyConfig
from excavation_training.models import ActorCritic

OBS_DIM, ACT_DIM = 3, 2
ALPHAS = (0.0, 0.25, 0.5, 1.0)


# ---------------------------------------------------------------------- the formula, independently
def expected_loss(mu_s, sigma_s, mu_t, sigma_t, alpha, kind, distill_std):
    """L_D from the definition; ``mu_s``/``sigma_s`` keep their autograd graph (the student's side)."""
    mix_mean = (1.0 - alpha) * mu_s.detach() + alpha * mu_t
    if kind == "mse":
        return ((mu_s - mix_mean) ** 2).sum(-1).mean()
    if distill_std:
        target = Normal(mix_mean, (1.0 - alpha) * sigma_s.detach() + alpha * sigma_t)
        student = Normal(mu_s, sigma_s)
    else:
        target = Normal(mix_mean, sigma_s.detach())
        student = Normal(mu_s, sigma_s.detach())
    return kl_divergence(target, student).sum(-1).mean()


def _batch(seed=0, batch=64):
    g = torch.Generator().manual_seed(seed)
    mu_s = torch.randn(batch, ACT_DIM, generator=g)
    sigma_s = 0.3 + torch.rand(batch, ACT_DIM, generator=g)
    mu_t = mu_s + 0.5 + torch.randn(batch, ACT_DIM, generator=g)  # a teacher clearly elsewhere
    sigma_t = 0.2 + torch.rand(batch, ACT_DIM, generator=g)
    return mu_s, sigma_s, mu_t, sigma_t


@pytest.mark.parametrize("kind,distill_std", [("kl", False), ("kl", True), ("mse", False)])
def test_distillation_loss_follows_the_mixture_formula_for_each_alpha(kind, distill_std):
    mu_s0, sigma_s0, mu_t, sigma_t = _batch()
    values = []
    for alpha in ALPHAS:
        mu_s = mu_s0.clone().requires_grad_(True)
        sigma_s = sigma_s0.clone().requires_grad_(True)
        got = distillation_loss(mu_s, sigma_s, mu_t, sigma_t, alpha, kind, distill_std)
        want = expected_loss(mu_s0, sigma_s0, mu_t, sigma_t, alpha, kind, distill_std)
        assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-7), f"alpha={alpha}"
        values.append(got.item())

        # Gradient w.r.t. the student's mean, by hand: d/dmu_S of the per-state term, / batch size.
        got.backward()
        B = mu_s0.shape[0]
        if kind == "mse":
            g_mu = 2.0 * alpha * (mu_s0 - mu_t) / B
        else:  # (mu_S - mu_mix) / sigma_S^2, with or without distill_std
            g_mu = alpha * (mu_s0 - mu_t) / sigma_s0**2 / B
        torch.testing.assert_close(mu_s.grad, g_mu, rtol=1e-5, atol=1e-8)
        # ... and w.r.t. the std: only distill_std pulls it (d/dsigma of KL(N(m, s) || N(mu, sigma))).
        if distill_std:
            s_mix = (1.0 - alpha) * sigma_s0 + alpha * sigma_t
            dm2 = (alpha * (mu_t - mu_s0)) ** 2
            g_sigma = (1.0 / sigma_s0 - (s_mix**2 + dm2) / sigma_s0**3) / B
            torch.testing.assert_close(sigma_s.grad, g_sigma, rtol=1e-4, atol=1e-7)
        else:
            assert sigma_s.grad is None or torch.count_nonzero(sigma_s.grad) == 0

    # alpha = 0: the target is the student itself, nothing to pay; the term grows with alpha.
    assert values[0] == pytest.approx(0.0, abs=1e-7)
    assert values[0] < values[1] < values[2] < values[3]
    if not distill_std:  # mean-only terms are quadratic in alpha: exactly alpha^2 * L_D(1)
        for alpha, v in zip(ALPHAS, values):
            assert v == pytest.approx(alpha**2 * values[3], rel=1e-5, abs=1e-7)


# ---------------------------------------------------------------------- alpha inside PRPD.update
def _policy(seed):
    torch.manual_seed(seed)
    return ActorCritic(OBS_DIM, ACT_DIM, PolicyConfig(actor_hidden_dims=(16,), critic_hidden_dims=(16,), init_noise_std=0.5))


def _setup(alpha_mode="fixed", alpha=0.0, teacher_seed=1, teacher=True, **overrides):
    """A PRPD whose student (seed 0) has a teacher (``teacher_seed``) and one collected rollout.

    Everything but alpha (and the teacher) is the same from call to call: same policy, same rollout,
    same generator; with fixed alpha no Q draws from the generator."""
    cfg = small_config("unused", **{"prpd.alpha_mode": alpha_mode, "prpd.alpha_fixed": alpha, "prpd.alpha_0": 2.0,
                                    **overrides})
    policy = _policy(0)
    alg = PRPD(policy, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    alg.init_storage(num_envs=32, num_steps=4)
    if teacher:
        torch.manual_seed(3)  # the Q that start_stage creates (dynamic alpha) is the same each call
        alg.start_stage()
        alg.teacher.load_state_dict(_policy(teacher_seed).state_dict())
        with torch.no_grad():  # a teacher far from the student: its pull dominates the PPO gradient
            alg.teacher.actor[-1].bias.add_(torch.tensor([0.8, -0.6]))
    g = torch.Generator().manual_seed(2)
    for _ in range(4):
        obs = torch.randn(32, OBS_DIM, generator=g)
        actions = alg.act(obs).actions
        # The teacher's shifted actions pay in some states (obs[:, 1] > 0) and cost in others, so a
        # fitted Q prefers it in some states only and dynamic alpha lies strictly between 0 and 1.
        alg.process_env_step((actions[:, 0] - actions[:, 1]) * obs[:, 1] + obs[:, 0], torch.zeros(32, dtype=torch.bool))
    alg.compute_returns(torch.randn(32, OBS_DIM, generator=g))
    return alg


_ONE_STEP = {"ppo.num_learning_epochs": 1, "ppo.num_mini_batches": 1, "ppo.schedule": "fixed",
             "ppo.max_grad_norm": 1e9}  # one gradient step on the whole rollout, never clipped


def _first_step_actor_grad(alg):
    """Run ``alg.update()``; return the actor's gradient as the first optimiser step sees it, the
    stats, and the student as it was before the update (for the independent expectation)."""
    before = copy.deepcopy(alg.policy)
    seen = []
    step = alg.optimizer.step

    def recording_step(*a, **k):
        if not seen:
            seen.append([p.grad.detach().clone() for p in alg.actor_params])
        return step(*a, **k)

    alg.optimizer.step = recording_step
    stats = alg.update()
    return seen[0], stats, before


def _expected_transfer_grad(before, teacher, obs, alpha, c3):
    """c3 * d L_D / d(actor parameters) at the pre-update student, L_D from the definition (mean-only KL,
    the default prpd.distill_std = false)."""
    student = copy.deepcopy(before)
    mean, std = student.distribution(obs)
    with torch.no_grad():
        t_mean, t_std = teacher.distribution(obs)
    loss = c3 * expected_loss(mean, std, t_mean, t_std, alpha, "kl", False)
    actor_params = [p for n, p in student.named_parameters() if not n.startswith("critic.")]
    grads = torch.autograd.grad(loss, actor_params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(actor_params, grads)]


def _rollout_obs(alg):
    return alg.storage.obs.flatten(0, 1).clone()


def test_the_update_adds_exactly_c3_times_the_alpha_weighted_transfer_gradient():
    """grad(alpha) - grad(alpha = 0) is c3 * dL_D(alpha)/dtheta from the formula, on the same rollout.
    With alpha forced to 1 the alpha = 0 update would already carry the full pull, and the alpha = 0.5
    difference would be twice what the formula says."""
    base = _setup(alpha=0.0, **_ONE_STEP)
    obs = _rollout_obs(base)
    g0, stats0, before = _first_step_actor_grad(base)
    c3 = base.cfg.prpd.alpha_0
    assert stats0["alpha"] == 0.0
    assert stats0["distill_loss"] == 0.0  # the target is the student itself
    # alpha = 0 is plain PPO: the same gradient as the update without any teacher.
    g_none, _, _ = _first_step_actor_grad(_setup(teacher=False, **_ONE_STEP))
    for a, b in zip(g0, g_none):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)

    teacher = base.teacher
    pull_sizes = []
    for alpha in (0.5, 1.0):
        alg = _setup(alpha=alpha, **_ONE_STEP)
        g, stats, _ = _first_step_actor_grad(alg)
        assert stats["alpha"] == alpha
        with torch.no_grad():
            t_mean, t_std = teacher.distribution(obs)
            mean, std = before.distribution(obs)
        want_loss = expected_loss(mean, std, t_mean, t_std, alpha, "kl", False).item()
        assert stats["distill_loss"] == pytest.approx(want_loss, rel=1e-5)
        want = _expected_transfer_grad(before, teacher, obs, alpha, c3)
        for got_p, base_p, want_p in zip(g, g0, want):
            torch.testing.assert_close(got_p - base_p, want_p, rtol=1e-3, atol=1e-6)
        pull_sizes.append(torch.sqrt(sum((a - b).pow(2).sum() for a, b in zip(g, g0))).item())
    # The pull is linear in alpha (mean-only KL: dL_D/dmu = alpha (mu_S - mu_T) / sigma^2).
    assert pull_sizes[0] > 1e-3
    assert pull_sizes[1] == pytest.approx(2.0 * pull_sizes[0], rel=1e-3)


def test_dynamic_alpha_is_the_q_win_rate_and_weights_the_pull():
    """Dynamic alpha: the update's alpha is mean[Q(s, mu_T) > Q(s, mu_S)] under the Q it just fitted,
    and the transfer gradient it adds is the formula's at that alpha."""
    alg = _setup(alpha_mode="dynamic", **_ONE_STEP)
    obs = _rollout_obs(alg)
    g, stats, before = _first_step_actor_grad(alg)
    with torch.no_grad():  # the Q after its fit is the one the policy step used (it is not fitted again)
        obs_n = before.normalize(obs)
        win = (alg.q.q(obs_n, alg.teacher.action_mean(obs)) > alg.q.q(obs_n, before.action_mean(obs))).float().mean().item()
    assert 0.0 < win < 1.0, "pick a setup where alpha is not at either end, else a forced alpha could match"
    assert stats["alpha"] == pytest.approx(win, abs=1e-6)
    # The same update without distillation: a fixed alpha of 0 with the same teacher. Its minibatch is
    # the same rollout in another order (no Q fit draws from the generator), equal up to rounding.
    g0, _, _ = _first_step_actor_grad(_setup(alpha=0.0, **_ONE_STEP))
    want = _expected_transfer_grad(before, alg.teacher, obs, win, alg.cfg.prpd.alpha_0)
    for got_p, base_p, want_p in zip(g, g0, want):
        torch.testing.assert_close(got_p - base_p, want_p, rtol=1e-3, atol=1e-6)


def test_alpha_zero_update_ignores_the_teacher_and_alpha_one_moves_toward_it():
    """Full updates (2 epochs x 2 minibatches): at alpha = 0 two different
    teachers give bit-identical students; at alpha = 1 the teacher changes the result, and the student
    ends closer to its teacher than the alpha = 0 student does."""
    def updated(alpha, teacher_seed):
        # A fixed, larger step size than the default so four steps move the student visibly.
        alg = _setup(alpha=alpha, teacher_seed=teacher_seed, **{"ppo.schedule": "fixed", "ppo.learning_rate": 1e-2})
        obs = _rollout_obs(alg)
        alg.update()
        with torch.no_grad():
            gap = (alg.policy.action_mean(obs) - alg.teacher.action_mean(obs)).pow(2).sum(-1).mean().item()
        return [p.detach().clone() for p in alg.policy.parameters()], gap

    zero_a, gap_zero = updated(0.0, teacher_seed=1)
    zero_b, _ = updated(0.0, teacher_seed=5)
    assert all(torch.equal(a, b) for a, b in zip(zero_a, zero_b))
    one_a, gap_one = updated(1.0, teacher_seed=1)
    one_b, _ = updated(1.0, teacher_seed=5)
    assert any(not torch.equal(a, b) for a, b in zip(one_a, one_b))
    assert gap_one < 0.9 * gap_zero
