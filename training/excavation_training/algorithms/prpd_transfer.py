"""PRPD's conservative policy transfer: keep the student close to a mixture of itself and the teacher.

Per minibatch (equations in training/docs/prpd.md):

    A      = Q(s, mu_T(s)) - Q(s, mu_S(s))                     teacher's advantage under the auxiliary Q
    alpha  = mean [A > 0]                                      (estimator "win_rate"; or "cpd":
                                                                clip(mean(A) / max|A| + 1, 0, 1))
    pi_mix = N((1 - alpha) sg(mu_S) + alpha mu_T, sigma_mix^2)
    sigma_mix = (1 - alpha) sg(sigma_S) + alpha sigma_T  (distill_std); by default the KL is taken
    with the student's std detached on both sides: sum (mu_S - mu_mix)^2 / 2 sg(sigma_S)^2, mean only
    L_D    = alpha_0 * KL(pi_mix || pi_S)                      (or "mse" on the means)

sg() stops the gradient, so alpha = 0 makes the target the student itself (zero loss, zero gradient)
and alpha = 1 makes it the teacher.
"""

from __future__ import annotations

import torch

from ..config import PRPDConfig
from ..models.actor_critic import ActorCritic, gaussian_kl
from .q_function import QLearner


def estimate_alpha(advantage: torch.Tensor, estimator: str = "cpd") -> torch.Tensor:
    """Mixture rate from teacher-minus-student Q values: high while the teacher's actions score better."""
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
    kind: str = "kl",
    distill_std: bool = True,
) -> torch.Tensor:
    """Distance of the student (mean, std) to the alpha-mixture of its stop-gradient self and the teacher."""
    mix_mean = (1.0 - alpha) * mean.detach() + alpha * teacher_mean
    if kind == "kl":
        if not distill_std:  # KL between Gaussians of the same (detached) std: sum dmu^2 / 2 sigma^2
            return gaussian_kl(mix_mean, std.detach(), mean, std.detach()).mean()
        mix_std = (1.0 - alpha) * std.detach() + alpha * teacher_std
        return gaussian_kl(mix_mean, mix_std, mean, std).mean()
    if kind == "mse":
        return (mean - mix_mean).pow(2).sum(-1).mean()
    raise ValueError(f"prpd.distill_loss must be 'kl' or 'mse', got {kind!r}")


class ConservativeTransfer:
    """The extra PPO loss term of one PRPD stage: a frozen teacher, and (alpha 'dynamic') a Q learner."""

    def __init__(self, student: ActorCritic, teacher: ActorCritic, cfg: PRPDConfig, q_learner: QLearner | None) -> None:
        if cfg.alpha_mode == "dynamic" and q_learner is None:
            raise ValueError("prpd.alpha_mode 'dynamic' needs the auxiliary Q learner")
        self.student, self.teacher, self.cfg, self.q_learner = student, teacher, cfg, q_learner
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def teacher_advantage(self, obs: torch.Tensor, student_mean: torch.Tensor, teacher_mean: torch.Tensor) -> torch.Tensor:
        q = self.q_learner.q
        obs_n = self.student.normalize(obs)
        return q(obs_n, teacher_mean) - q(obs_n, student_mean)

    def loss(self, obs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            t_mean, t_std = self.teacher.distribution(obs)
        stats: dict[str, float] = {}
        if self.cfg.alpha_mode == "dynamic":
            adv = self.teacher_advantage(obs, mean.detach(), t_mean)
            alpha = estimate_alpha(adv, self.cfg.alpha_estimator)
            stats["teacher_advantage"] = adv.mean().item()
        else:
            alpha = torch.tensor(self.cfg.alpha_fixed, device=mean.device)
        d = distillation_loss(mean, std, t_mean, t_std, alpha, self.cfg.distill_loss, self.cfg.distill_std)
        with torch.no_grad():
            teacher_kl = gaussian_kl(t_mean, t_std, mean, std).mean()
        stats.update(alpha=float(alpha), distill_loss=d.item(), teacher_kl=teacher_kl.item())
        return self.cfg.alpha_0 * d, stats
