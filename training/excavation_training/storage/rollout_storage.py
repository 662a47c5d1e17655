"""Fixed-size rollout buffer of one iteration: T steps x N envs, flattened into minibatches for updates."""

from __future__ import annotations

from typing import Iterator, NamedTuple

import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, obs_dim) raw observations
    actions: torch.Tensor  # (B, act_dim) sampled actions, normalised space, unclipped
    old_log_prob: torch.Tensor  # (B,)
    old_mean: torch.Tensor  # (B, act_dim)
    old_std: torch.Tensor  # (B, act_dim)
    values: torch.Tensor  # (B,) critic at collection time
    returns: torch.Tensor  # (B,) GAE(lambda) returns
    advantages: torch.Tensor  # (B,)
    q_targets: torch.Tensor  # (B,) targets of the auxiliary Q (empty if not computed)


class RolloutStorage:
    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.num_steps, self.num_envs = num_steps, num_envs
        T, N = num_steps, num_envs

        def z(*shape, dtype=torch.float32):
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.obs = z(T, N, obs_dim)
        self.actions = z(T, N, act_dim)
        self.rewards = z(T, N)  # time-out bootstrap already folded in
        self.dones = z(T, N, dtype=torch.bool)
        self.values = z(T, N)
        self.log_probs = z(T, N)
        self.means = z(T, N, act_dim)
        self.stds = z(T, N, act_dim)
        self.returns = z(T, N)
        self.advantages = z(T, N)
        self.q_targets = z(T, N)
        self.last_obs = z(N, obs_dim)
        self.last_values = z(N)
        self.step = 0

    def add(self, obs, actions, rewards, dones, values, log_probs, means, stds) -> None:
        if self.step >= self.num_steps:
            raise RuntimeError(f"rollout storage is full ({self.num_steps} steps); call clear() first")
        t = self.step
        self.obs[t], self.actions[t], self.rewards[t], self.dones[t] = obs, actions, rewards, dones
        self.values[t], self.log_probs[t], self.means[t], self.stds[t] = values, log_probs, means, stds
        self.step += 1

    def finish(self, last_obs: torch.Tensor, last_values: torch.Tensor) -> None:
        self.last_obs.copy_(last_obs)
        self.last_values.copy_(last_values)

    def clear(self) -> None:
        self.step = 0

    def compute_gae(self, gamma: float, lam: float) -> None:
        """GAE(lambda) advantages and returns; a done step does not bootstrap from the next one."""
        advantage = torch.zeros_like(self.last_values)
        for t in reversed(range(self.num_steps)):
            next_values = self.last_values if t == self.num_steps - 1 else self.values[t + 1]
            not_done = 1.0 - self.dones[t].float()
            delta = self.rewards[t] + gamma * not_done * next_values - self.values[t]
            advantage = delta + gamma * lam * not_done * advantage
            self.advantages[t] = advantage
        self.returns = self.advantages + self.values

    def minibatches(self, num_mini_batches: int, num_epochs: int, generator: torch.Generator) -> Iterator[Batch]:
        n = self.num_steps * self.num_envs
        size = n // num_mini_batches
        flat = Batch(
            self.obs.flatten(0, 1),
            self.actions.flatten(0, 1),
            self.log_probs.flatten(),
            self.means.flatten(0, 1),
            self.stds.flatten(0, 1),
            self.values.flatten(),
            self.returns.flatten(),
            self.advantages.flatten(),
            self.q_targets.flatten(),
        )
        for _ in range(num_epochs):
            perm = torch.randperm(n, generator=generator).to(self.obs.device)
            for i in range(num_mini_batches):
                idx = perm[i * size : (i + 1) * size]
                yield Batch(*(x[idx] for x in flat))
