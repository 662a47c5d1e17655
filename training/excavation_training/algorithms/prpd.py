"""PRPD's learning algorithm: PPO at the current resolution plus a conservative transfer from the
policy that finished the previous resolution (the teacher), in one update.

Like rsl_rl's ``PPO``, the algorithm owns the transition and the runner only loops:

    actions = alg.act(obs).actions                 sample; remember what the update needs
    alg.process_env_step(reward, done, time_out)   store the transition (time-outs bootstrapped)
    alg.compute_returns(last_obs)                  GAE(gamma = ppo.gamma, lambda = ppo.lam)
    stats = alg.update()                           minimise L below; returns the logging dict
    alg.start_stage()                              at a resolution change: the policy becomes the teacher

Objective, per minibatch of the rollout (sg = stop-gradient; derivation and sources in
training/docs/prpd.md):

    L = L_clip + c1 L_V - c2 H[pi_S] + beta KL(pi_old || pi_S) + c3 L_D

    L_clip = -mean min(r A, clip(r, 1 - eps, 1 + eps) A)   r = pi_S(a|s) / pi_old(a|s), eps = ppo.clip_param,
                                                           A = GAE advantages (normalised over the rollout:
                                                           ppo.normalize_advantages)
    L_V    = mean (V(s) - R)^2                             (clipped around V_old: ppo.use_clipped_value_loss)
    H      = entropy of the Gaussian policy
    c1 = ppo.value_loss_coef, c2 = ppo.entropy_coef, c3 = prpd.alpha_0,
    beta   = ppo.kl_penalty_coef to start (0: off), doubled / halved per iteration (ppo.kl_penalty_adaptive)

    L_D    = KL(pi_mix || pi_S), only in stages with a teacher pi_T (every stage but the first)
    pi_mix = N((1 - alpha) sg(mu_S) + alpha mu_T, sigma_mix^2)
    sigma_mix = sg(sigma_S): only the mean is distilled (prpd.distill_std = false), or
              = (1 - alpha) sg(sigma_S) + alpha sigma_T       (prpd.distill_std = true);
    prpd.distill_loss = mse: L_D = mean |mu_S - mu_mix|^2 instead.
    alpha  = the mixture rate, a weight (not differentiated), per minibatch:
             prpd.alpha_mode = dynamic: from the auxiliary Q's teacher advantage A_T = Q(s, mu_T) - Q(s, mu_S),
                 alpha = mean [A_T > 0]                        (prpd.alpha_estimator = win_rate)
                 alpha = clip(mean A_T / max |A_T| + 1, 0, 1)  (prpd.alpha_estimator = cpd)
             prpd.alpha_mode = fixed: alpha = prpd.alpha_fixed
    alpha = 0 makes L_D and its gradient exactly zero (plain PPO); alpha = 1 distils the teacher.

``update()`` in order:
    1. Fit the auxiliary Q on this rollout (q.*; stages with a teacher and dynamic alpha), before the
       policy moves, so alpha judges the actions this rollout's returns were earned with.
    2. Normalise the advantages.
    3. For each of ppo.num_learning_epochs x ppo.num_mini_batches minibatches:
       a. the student's distribution, value and KL to the collection-time policy; the KL sets the
          actor's learning rate (ppo.schedule = adaptive, ppo.desired_kl; rsl_rl's rule);
       b. the PPO loss L_clip + c1 L_V - c2 H (+ beta KL);
       c. with a teacher: alpha (the Q estimate), then + c3 L_D;
       d. one gradient step, norms clipped at ppo.max_grad_norm (per network: ppo.clip_grad_per_network).
    4. Adapt beta on the iteration's mean KL.
    5. Update the observation normaliser on the rollout, clear it, return the minibatch means.

rsl_rl's own ``PPO`` class is not used: its ``update()`` has no place for a term that needs a teacher
and a Q on the same minibatch, and it takes TensorDict observation groups. The update above follows
it step for step and reuses its MLP and normaliser (via ``models``).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from ..config import PRPDConfig, TrainConfig
from ..models.actor_critic import ActorCritic, gaussian_entropy, gaussian_kl, gaussian_log_prob
from ..storage import RolloutStorage
from .q_function import QLearner

LR_MIN, LR_MAX = 1e-5, 1e-2  # rsl_rl's bounds on the adaptive learning rate


class Transition(NamedTuple):
    """What ``act`` sampled (normalised action space), as the update needs it."""

    actions: torch.Tensor
    log_prob: torch.Tensor
    values: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


class PRPD:
    """PPO + conservative transfer on one policy. ``teacher`` and ``q`` are None in the first stage
    (and ``q`` is None with ``prpd.alpha_mode = fixed``)."""

    def __init__(self, policy: ActorCritic, cfg: TrainConfig, generator: torch.Generator, device: torch.device) -> None:
        # Every random draw (action noise, minibatch order) comes from ``generator``.
        self.policy, self.cfg, self.generator, self.device = policy, cfg, generator, device
        self.teacher: ActorCritic | None = None
        self.q: QLearner | None = None
        self.storage: RolloutStorage | None = None
        self._obs: torch.Tensor | None = None
        self.transition: Transition | None = None
        self.reset_optimizer()

    def init_storage(self, num_envs: int, num_steps: int) -> None:
        self.storage = RolloutStorage(num_steps, num_envs, self.policy.obs_dim, self.policy.act_dim, self.device)

    def reset_optimizer(self, learning_rate: float | None = None) -> None:
        """Fresh Adam moments; the actor starts at ``learning_rate`` (None: ``ppo.learning_rate``)."""
        self.learning_rate = self.cfg.ppo.learning_rate if learning_rate is None else float(learning_rate)
        self.kl_beta = self.cfg.ppo.kl_penalty_coef
        # Two parameter groups: the KL rule sets the actor's step size only. Sharing it with the critic
        # (rsl_rl) froze the critic at the 1e-5 floor whenever a low exploration std made every policy
        # step a large KL (measured: floor reached by iteration 11 at std 0.1, value loss stuck ~200).
        self.critic_params = list(self.policy.critic.parameters())
        critic_ids = {id(p) for p in self.critic_params}
        self.actor_params = [p for p in self.policy.parameters() if id(p) not in critic_ids]
        self.optimizer = torch.optim.Adam(
            [{"params": self.actor_params, "lr": self.learning_rate},
             {"params": self.critic_params, "lr": self._critic_lr()}],
        )

    def _critic_lr(self) -> float:
        c = self.cfg.ppo.critic_learning_rate
        return self.learning_rate if c is None else c

    # ------------------------------------------------------------------ the transition
    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> Transition:
        """Sample actions for ``obs``; the transition waits for ``process_env_step``."""
        mean, std = self.policy.distribution(obs)
        noise = torch.randn(mean.shape, generator=self.generator).to(mean.device)
        actions = mean + std * noise
        self._obs = obs
        self.transition = Transition(actions, gaussian_log_prob(actions, mean, std), self.policy.value(obs), mean, std)
        return self.transition

    def process_env_step(self, reward: torch.Tensor, done: torch.Tensor, time_out: torch.Tensor | None = None) -> None:
        """Store the last ``act``'s transition. A time-out is truncated, not failed: its reward gets
        ``gamma * V(s)`` as if the episode went on (rsl_rl)."""
        t = self.transition
        if time_out is not None:
            reward = reward + self.cfg.ppo.gamma * t.values * time_out.to(reward.device).float()
        self.storage.add(self._obs, t.actions, reward, done, t.values, t.log_prob, t.mean, t.std)

    def compute_returns(self, last_obs: torch.Tensor) -> None:
        with torch.no_grad():
            self.storage.finish(last_obs, self.policy.value(last_obs))
        self.storage.compute_gae(self.cfg.ppo.gamma, self.cfg.ppo.lam)

    # ------------------------------------------------------------------ the update
    def update(self, storage: RolloutStorage | None = None, train_actor: bool = True) -> dict[str, float]:
        """Minimise L (module docstring) on ``storage`` (default: the rollout this algorithm collected).

        ``train_actor=False`` fits the critic only, with no distillation and no learning-rate change
        (after a behaviour-cloning warm start the critic knows nothing yet, and advantages from it
        would undo the cloned actor)."""
        o, p = self.cfg.ppo, self.cfg.prpd
        storage = self.storage if storage is None else storage
        stats: dict[str, float] = {}

        # 1. The auxiliary Q, on this rollout.
        if self.teacher is not None and self.q is not None:
            stats.update(self.q.fit(storage, self.policy, self.generator))

        # 2. Advantages normalised over the rollout.
        if o.normalize_advantages:
            adv = storage.advantages
            storage.advantages = (adv - adv.mean()) / (adv.std() + 1e-8)

        # 3. Minibatches.
        sums: dict[str, float] = {}
        num_updates = 0
        for batch in storage.minibatches(o.num_mini_batches, o.num_learning_epochs, self.generator):
            # a. The student now; its KL to the collection-time policy sets the actor's learning rate.
            mean, std = self.policy.distribution(batch.obs)
            log_prob = gaussian_log_prob(batch.actions, mean, std)
            entropy = gaussian_entropy(std).mean()
            values = self.policy.value(batch.obs)
            kl = gaussian_kl(batch.old_mean, batch.old_std, mean, std).mean()
            if o.schedule == "adaptive" and train_actor:
                kl_now = kl.item()
                if kl_now > 2.0 * o.desired_kl:
                    self.learning_rate = max(LR_MIN, self.learning_rate / 1.5)
                elif 0.0 < kl_now < o.desired_kl / 2.0:
                    self.learning_rate = min(LR_MAX, self.learning_rate * 1.5)
                self.optimizer.param_groups[0]["lr"] = self.learning_rate
                self.optimizer.param_groups[1]["lr"] = self._critic_lr()

            # b. PPO: clipped surrogate, value loss, entropy bonus (+ KL penalty).
            ratio = torch.exp(log_prob - batch.old_log_prob)
            surr = batch.advantages * ratio
            surr_clipped = batch.advantages * ratio.clamp(1.0 - o.clip_param, 1.0 + o.clip_param)
            surrogate_loss = -torch.min(surr, surr_clipped).mean()
            if o.use_clipped_value_loss:
                v_clipped = batch.values + (values - batch.values).clamp(-o.clip_param, o.clip_param)
                value_loss = torch.max((values - batch.returns).pow(2), (v_clipped - batch.returns).pow(2)).mean()
            else:
                value_loss = (values - batch.returns).pow(2).mean()
            if train_actor:
                loss = surrogate_loss + o.value_loss_coef * value_loss - o.entropy_coef * entropy
                if self.kl_beta > 0.0:
                    loss = loss + self.kl_beta * kl
            else:
                loss = o.value_loss_coef * value_loss
            step = {"surrogate_loss": surrogate_loss.item(), "value_loss": value_loss.item(),
                    "entropy": entropy.item(), "policy_kl": kl.item()}

            # c. Conservative transfer: alpha (Q's estimate, or fixed), then + c3 * L_D.
            if self.teacher is not None and train_actor:
                with torch.no_grad():
                    t_mean, t_std = self.teacher.distribution(batch.obs)
                alpha, teacher_advantage = self.mixture_rate(batch.obs, mean.detach(), t_mean)
                distill = distillation_loss(mean, std, t_mean, t_std, alpha, p.distill_loss, p.distill_std)
                loss = loss + p.alpha_0 * distill
                with torch.no_grad():
                    teacher_kl = gaussian_kl(t_mean, t_std, mean, std).mean()
                if teacher_advantage is not None:
                    step["teacher_advantage"] = teacher_advantage.mean().item()
                step.update(alpha=float(alpha), distill_loss=distill.item(), teacher_kl=teacher_kl.item())

            # d. Gradient step. Clipped jointly, the actor's gradient would be scaled by a factor the
            # value loss sets, which changes from minibatch to minibatch as the value loss does.
            self.optimizer.zero_grad()
            loss.backward()
            if o.clip_grad_per_network:
                nn.utils.clip_grad_norm_(self.actor_params, o.max_grad_norm)
                nn.utils.clip_grad_norm_(self.critic_params, o.max_grad_norm)
            else:
                nn.utils.clip_grad_norm_(self.policy.parameters(), o.max_grad_norm)
            self.optimizer.step()
            for k, v in step.items():
                sums[k] = sums.get(k, 0.0) + v
            num_updates += 1
        stats.update({k: v / num_updates for k, v in sums.items()})

        # 4. PPO-penalty's beta rule (Schulman et al. 2017), on the iteration's mean KL.
        if self.kl_beta > 0.0 and o.kl_penalty_adaptive:
            if stats["policy_kl"] > 1.5 * o.desired_kl:
                self.kl_beta *= 2.0
            elif stats["policy_kl"] < o.desired_kl / 1.5:
                self.kl_beta /= 2.0

        # 5. Normaliser (after the update: the update used the one the rollout was collected with).
        self.policy.update_normalizer(storage.obs.flatten(0, 1))
        storage.clear()
        stats.update(learning_rate=self.learning_rate, critic_learning_rate=self.optimizer.param_groups[1]["lr"],
                     kl_beta=self.kl_beta, action_std=self.policy.std().mean().item())
        return stats

    @torch.no_grad()
    def mixture_rate(
        self, obs: torch.Tensor, student_mean: torch.Tensor, teacher_mean: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """alpha for these states, and (dynamic) the teacher advantage A_T(s) = Q(s, mu_T) - Q(s, mu_S)
        it was estimated from (Q scores the student-normalised observation)."""
        p = self.cfg.prpd
        if p.alpha_mode == "fixed":
            return torch.tensor(p.alpha_fixed, device=student_mean.device), None
        obs_n = self.policy.normalize(obs)
        advantage = self.q.q(obs_n, teacher_mean) - self.q.q(obs_n, student_mean)
        return estimate_alpha(advantage, p.alpha_estimator), advantage

    # ------------------------------------------------------------------ stages
    def start_stage(self) -> None:
        """A new resolution: the policy as it is now (it finished the previous one) becomes the frozen
        teacher, and the same networks go on training (the paper's "copy the previous resolution's
        parameters"). A new optimiser (``prpd.reset_optimizer_on_advance``, keeping the adapted rate
        with ``prpd.keep_learning_rate_on_advance``) and a new Q (``q.reset_each_stage``)."""
        p = self.cfg.prpd
        self.teacher = _frozen(copy.deepcopy(self.policy))
        if p.reset_optimizer_on_advance:
            self.reset_optimizer(learning_rate=self.learning_rate if p.keep_learning_rate_on_advance else None)
        if p.alpha_mode == "dynamic" and (self.q is None or self.cfg.q.reset_each_stage):
            self.q = self._new_q()

    def _new_q(self) -> QLearner:
        return QLearner(self.policy.obs_dim, self.policy.act_dim, self.cfg.q, self.cfg.ppo.gamma, self.device)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """The checkpoint's ``policy``, ``ppo`` (optimiser, learning rate, beta), ``teacher`` and ``q``."""
        return {
            "policy": self.policy.state_dict(),
            "ppo": {"optimizer": self.optimizer.state_dict(), "learning_rate": self.learning_rate, "kl_beta": self.kl_beta},
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "q": self.q.state_dict() if self.q is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["ppo"]["optimizer"])
        self.learning_rate, self.kl_beta = state["ppo"]["learning_rate"], state["ppo"]["kl_beta"]
        self.teacher = None
        if state["teacher"] is not None:
            teacher = ActorCritic(self.policy.obs_dim, self.policy.act_dim, self.cfg.policy).to(self.device)
            teacher.load_state_dict(state["teacher"])
            self.teacher = _frozen(teacher)
        self.q = None
        if state["q"] is not None:
            self.q = self._new_q()
            self.q.load_state_dict(state["q"])


def _frozen(policy: ActorCritic) -> ActorCritic:
    policy.eval()
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy


# ---------------------------------------------------------------------- the formulas of L_D and alpha
def estimate_alpha(advantage: torch.Tensor, estimator: str = PRPDConfig.alpha_estimator) -> torch.Tensor:
    """Mixture rate from teacher-minus-student Q values: high while the teacher's actions score better.

    ``win_rate``: mean [A > 0]; ``cpd``: clip(mean A / max |A| + 1, 0, 1) (``prpd.alpha_estimator``)."""
    advantage = advantage.detach()
    if estimator == "cpd":
        scale = advantage.abs().max()
        if scale <= 0:  # teacher and student indistinguishable under Q: the formula's limit, mean/max = 0
            return torch.ones((), device=advantage.device)
        return (advantage.mean() / scale + 1.0).clamp(0.0, 1.0)
    if estimator == "win_rate":
        return (advantage > 0).float().mean()
    raise ValueError(f"prpd.alpha_estimator must be 'cpd' or 'win_rate', got {estimator!r}")


def distillation_loss(
    mean: torch.Tensor,
    std: torch.Tensor,
    teacher_mean: torch.Tensor,
    teacher_std: torch.Tensor,
    alpha: torch.Tensor | float,
    kind: str = PRPDConfig.distill_loss,
    distill_std: bool = PRPDConfig.distill_std,
) -> torch.Tensor:
    """L_D: distance of the student (mean, std) to the alpha-mixture of its stop-gradient self and the
    teacher (``kind`` = ``prpd.distill_loss``, ``distill_std`` = ``prpd.distill_std``)."""
    mix_mean = (1.0 - alpha) * mean.detach() + alpha * teacher_mean
    if kind == "kl":
        if not distill_std:  # KL between Gaussians of the same (detached) std: sum dmu^2 / 2 sigma^2
            return gaussian_kl(mix_mean, std.detach(), mean, std.detach()).mean()
        mix_std = (1.0 - alpha) * std.detach() + alpha * teacher_std
        return gaussian_kl(mix_mean, mix_std, mean, std).mean()
    if kind == "mse":
        return (mean - mix_mean).pow(2).sum(-1).mean()
    raise ValueError(f"prpd.distill_loss must be 'kl' or 'mse', got {kind!r}")
