"""The batched-environment interface the learners are written against.

The Newton excavation env implements it; tests use small toy envs that implement it too, so PPO and
PRPD never import the simulator directly (the engine stays behind this one interface).

Conventions (all tensors have ``num_envs`` first, live on ``device``, dtype float32 unless noted):

- ``reset()`` resets every env and returns the observation ``(N, obs_dim)``.
- ``step(actions)`` takes ``(N, act_dim)`` actions in physical units (the env clips them to
  ``[action_low, action_high]``), advances one control step and returns a :class:`StepResult`.
  Envs whose episode ended are reset automatically; the returned ``obs`` rows of those envs are the
  first observation of their new episode.
- ``info`` of a step holds, for every env (rows are meaningful where ``done`` is true):
  ``"time_out"`` (bool: ended by the step limit, not by success or failure; the learner bootstraps
  those), ``"episode_success"`` (bool), ``"episode_length"`` (int64, steps), ``"episode_return"``
  (float32, summed reward). It may hold more (``"success"``: the per-step success flag).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol, runtime_checkable

import torch


class StepResult(NamedTuple):
    obs: torch.Tensor  # (N, obs_dim)
    reward: torch.Tensor  # (N,)
    done: torch.Tensor  # (N,) bool: terminated or truncated this step
    info: dict[str, torch.Tensor]


@runtime_checkable
class VecEnv(Protocol):
    num_envs: int
    obs_dim: int
    act_dim: int
    device: torch.device
    delta_mm: float  # current resolution (soil particle diameter), mm
    max_episode_steps: int
    action_low: torch.Tensor  # (act_dim,)
    action_high: torch.Tensor  # (act_dim,)

    def reset(self) -> torch.Tensor: ...

    def step(self, actions: torch.Tensor) -> StepResult: ...

    def close(self) -> None: ...


# Builds the env at a resolution (mm); PRPD calls it once per stage.
EnvFactory = Callable[[float], VecEnv]
