"""Clipped PPO with GAE, adaptive-KL learning rate and an optional extra loss term (PRPD's).

Why not rsl_rl's ``PPO`` class: its ``update()`` is one method that builds the loss with no hook for
an extra term computed from a teacher and an auxiliary Q, and it needs TensorDict observation groups.
The algorithm below follows it step for step (same clipped surrogate, clipped value loss, entropy
bonus, learning-rate rule on the policy KL, gradient clipping), and reuses its MLP and normaliser
modules. See training/docs/prpd.md for the objective.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from ..config import PPOConfig
from ..models.actor_critic import ActorCritic, gaussian_entropy, gaussian_kl, gaussian_log_prob
from ..storage import RolloutStorage

LR_MIN, LR_MAX = 1e-5, 1e-2  # rsl_rl's bounds on the adaptive learning rate


class ExtraLoss(Protocol):
    """A term added to the PPO loss per minibatch (PRPD's distillation term implements it)."""

    def loss(self, obs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]: ...


class PPO:
    def __init__(self, policy: ActorCritic, cfg: PPOConfig, generator: torch.Generator) -> None:
        self.policy, self.cfg, self.generator = policy, cfg, generator
        self.reset_optimizer()

    def reset_optimizer(self, learning_rate: float | None = None) -> None:
        """Fresh Adam moments; the actor starts at ``learning_rate`` (default ``ppo.learning_rate``)."""
        self.learning_rate = self.cfg.learning_rate if learning_rate is None else float(learning_rate)
        self.kl_beta = self.cfg.kl_penalty_coef
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
        return self.learning_rate if self.cfg.critic_learning_rate is None else self.cfg.critic_learning_rate

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sample actions (normalised space) and what the update needs: log-prob, value, mean, std."""
        mean, std = self.policy.distribution(obs)
        noise = torch.randn(mean.shape, generator=self.generator).to(mean.device)
        actions = mean + std * noise
        return actions, gaussian_log_prob(actions, mean, std), self.policy.value(obs), mean, std

    def update(self, storage: RolloutStorage, extra: ExtraLoss | None = None, train_actor: bool = True) -> dict[str, float]:
        """One PPO update. ``train_actor=False`` fits the critic only (after a behaviour-cloning warm
        start the critic knows nothing yet, and advantages from it would undo the cloned actor)."""
        cfg = self.cfg
        if cfg.normalize_advantages:
            adv = storage.advantages
            storage.advantages = (adv - adv.mean()) / (adv.std() + 1e-8)

        sums: dict[str, float] = {}
        num_updates = 0
        for batch in storage.minibatches(cfg.num_mini_batches, cfg.num_learning_epochs, self.generator):
            mean, std = self.policy.distribution(batch.obs)
            log_prob = gaussian_log_prob(batch.actions, mean, std)
            entropy = gaussian_entropy(std).mean()
            values = self.policy.value(batch.obs)
            kl = gaussian_kl(batch.old_mean, batch.old_std, mean, std).mean()

            # Learning rate follows the policy KL of this minibatch (rsl_rl's adaptive schedule).
            if cfg.schedule == "adaptive" and train_actor:
                kl_now = kl.item()
                if kl_now > 2.0 * cfg.desired_kl:
                    self.learning_rate = max(LR_MIN, self.learning_rate / 1.5)
                elif 0.0 < kl_now < cfg.desired_kl / 2.0:
                    self.learning_rate = min(LR_MAX, self.learning_rate * 1.5)
                self.optimizer.param_groups[0]["lr"] = self.learning_rate
                self.optimizer.param_groups[1]["lr"] = self._critic_lr()

            # Clipped surrogate objective.
            ratio = torch.exp(log_prob - batch.old_log_prob)
            surr = batch.advantages * ratio
            surr_clipped = batch.advantages * ratio.clamp(1.0 - cfg.clip_param, 1.0 + cfg.clip_param)
            surrogate_loss = -torch.min(surr, surr_clipped).mean()

            # Value loss, clipped around the collection-time value as in rsl_rl.
            if cfg.use_clipped_value_loss:
                v_clipped = batch.values + (values - batch.values).clamp(-cfg.clip_param, cfg.clip_param)
                value_loss = torch.max((values - batch.returns).pow(2), (v_clipped - batch.returns).pow(2)).mean()
            else:
                value_loss = (values - batch.returns).pow(2).mean()

            loss = surrogate_loss + cfg.value_loss_coef * value_loss - cfg.entropy_coef * entropy
            if self.kl_beta > 0.0:
                loss = loss + self.kl_beta * kl
            if not train_actor:
                loss = cfg.value_loss_coef * value_loss
            stats = {}
            if extra is not None and train_actor:
                extra_loss, stats = extra.loss(batch.obs, mean, std)
                loss = loss + extra_loss

            self.optimizer.zero_grad()
            loss.backward()
            if cfg.clip_grad_per_network:
                # Clipped jointly, the actor's gradient is scaled by a factor the value loss sets, and
                # that factor changes from minibatch to minibatch as the value loss does.
                nn.utils.clip_grad_norm_(self.actor_params, cfg.max_grad_norm)
                nn.utils.clip_grad_norm_(self.critic_params, cfg.max_grad_norm)
            else:
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
            self.optimizer.step()

            step_stats = {
                "surrogate_loss": surrogate_loss.item(),
                "value_loss": value_loss.item(),
                "entropy": entropy.item(),
                "policy_kl": kl.item(),
                **stats,
            }
            for k, v in step_stats.items():
                sums[k] = sums.get(k, 0.0) + v
            num_updates += 1

        out = {k: v / num_updates for k, v in sums.items()}
        # PPO-penalty's beta rule (Schulman et al. 2017), on the iteration's mean KL.
        if self.kl_beta > 0.0 and cfg.kl_penalty_adaptive:
            if out["policy_kl"] > 1.5 * cfg.desired_kl:
                self.kl_beta *= 2.0
            elif out["policy_kl"] < cfg.desired_kl / 1.5:
                self.kl_beta /= 2.0
        out["learning_rate"] = self.learning_rate
        out["critic_learning_rate"] = self.optimizer.param_groups[1]["lr"]
        out["kl_beta"] = self.kl_beta
        out["action_std"] = self.policy.std().mean().item()
        return out

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "learning_rate": self.learning_rate, "kl_beta": self.kl_beta}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.learning_rate = state["learning_rate"]
        self.kl_beta = state["kl_beta"]
