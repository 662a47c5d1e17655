"""The auxiliary Q(s, a) of PRPD's mixture rate, fitted on each rollout of the current resolution
(step 1 of ``PRPD.update``; targets ``q.target``, see training/docs/prpd.md)."""

from __future__ import annotations

import torch

from ..config import QConfig
from ..models.actor_critic import ActorCritic
from ..models.q_function import QFunction
from ..storage import RolloutStorage


class QLearner:
    def __init__(self, obs_dim: int, act_dim: int, cfg: QConfig, gamma: float, device: torch.device) -> None:
        self.cfg, self.gamma = cfg, gamma
        self.q = QFunction(obs_dim, act_dim, cfg).to(device)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=self.cfg.learning_rate)

    @torch.no_grad()
    def compute_targets(self, storage: RolloutStorage, policy: ActorCritic) -> torch.Tensor:
        if self.cfg.target == "lambda_return":
            return storage.returns.clone()
        # SARSA TD(0): the next state-action pair of the same env from the rollout; the last step
        # bootstraps from the critic, the only estimate of the unseen next action's value.
        T = storage.num_steps
        next_q = torch.empty_like(storage.rewards)
        if T > 1:
            obs_next = policy.normalize(storage.obs[1:].flatten(0, 1))
            next_q[:-1] = self.q(obs_next, storage.actions[1:].flatten(0, 1)).view(T - 1, -1)
        next_q[-1] = storage.last_values
        return storage.rewards + self.gamma * (1.0 - storage.dones.float()) * next_q

    def fit(self, storage: RolloutStorage, policy: ActorCritic, generator: torch.Generator) -> dict[str, float]:
        """``q.num_epochs`` passes of squared-error regression on the rollout's targets."""
        storage.q_targets = self.compute_targets(storage, policy)
        total, n = 0.0, 0
        for batch in storage.minibatches(self.cfg.num_mini_batches, self.cfg.num_epochs, generator):
            with torch.no_grad():
                obs_n = policy.normalize(batch.obs)
            loss = (self.q(obs_n, batch.actions) - batch.q_targets).pow(2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total, n = total + loss.item(), n + 1
        return {"q_loss": total / max(n, 1)}

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.optimizer.load_state_dict(state["optimizer"])
