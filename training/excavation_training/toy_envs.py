"""Small batched envs implementing ``env.vec_env.VecEnv`` without the simulator, for tests and demos.

Both have a resolution knob ``delta_mm`` whose effect on the dynamics is mild (coarser = a little
stickier motion and an easier capture), so a policy trained at one resolution transfers to the next
but not perfectly -- the situation PRPD is built for.

- ``PointReachEnv``: move a point to a goal in 1-D/2-D/... (PPO sanity checks).
- ``ToyExcavationEnv``: the excavation MDP's observation and action layout (``excavation_contract``)
  with cartoon dynamics: reach under the rock with the bucket tilted, capture it, lift it. Policies
  trained on it export to valid bundles, so the whole pipeline runs end to end without Newton.
"""

from __future__ import annotations

import torch

import excavation_contract as contract

from excavation_sim.vec_env import StepResult


class _ToyBase:
    """Episode bookkeeping and auto-reset shared by the toy envs."""

    obs_dim: int
    act_dim: int

    def __init__(self, num_envs: int, delta_mm: float, max_episode_steps: int, seed: int, randomize: bool, device: str):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs}")
        if not delta_mm > 0:
            raise ValueError(f"delta_mm must be > 0 mm, got {delta_mm}")
        self.num_envs = int(num_envs)
        self.delta_mm = float(delta_mm)
        self.max_episode_steps = int(max_episode_steps)
        self.randomize = bool(randomize)
        self.device = torch.device(device)
        self.control_period = contract.CONTROL_PERIOD_S
        self.gen = torch.Generator().manual_seed(int(seed))
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.ep_return = torch.zeros(num_envs)

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen) * 2.0 - 1.0

    def reset(self) -> torch.Tensor:
        self._reset_ids(torch.arange(self.num_envs))
        return self._observe().to(self.device)

    def _finish_step(self, reward: torch.Tensor, success: torch.Tensor) -> StepResult:
        self.t += 1
        self.ep_return += reward
        time_out = (self.t >= self.max_episode_steps) & ~success
        done = success | time_out
        info = {
            "time_out": time_out.clone(),
            "episode_success": success.clone(),
            "episode_length": self.t.clone(),
            "episode_return": self.ep_return.clone(),
            "success": success.clone(),
        }
        ids = torch.nonzero(done).flatten()
        if ids.numel():
            self._reset_ids(ids)
        dev = self.device
        return StepResult(self._observe().to(dev), reward.to(dev), done.to(dev), {k: v.to(dev) for k, v in info.items()})

    def _check(self, actions: torch.Tensor) -> torch.Tensor:
        actions = torch.as_tensor(actions, dtype=torch.float32).cpu()
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.act_dim}), got {tuple(actions.shape)}")
        return torch.max(torch.min(actions, self.action_high.cpu()), self.action_low.cpu())

    def close(self) -> None:
        pass

    # Optional VecEnv extension the runner uses for exact resume: the whole env state incl. its RNG.
    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), **{k: getattr(self, k).clone() for k in self._state_keys}}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        for k in self._state_keys:
            setattr(self, k, state[k].clone())


class PointReachEnv(_ToyBase):
    """Reach a random goal in [-1, 1]^dim. Observation: (position, observed goal); action: displacement."""

    def __init__(
        self,
        num_envs: int = 64,
        delta_mm: float = 10.0,
        *,
        dim: int = 1,
        max_episode_steps: int = 32,
        seed: int = 0,
        randomize: bool = True,
        device: str = "cpu",
        success_radius: float = 0.05,
        step_size: float = 0.1,
        goal_noise: float = 0.01,
    ) -> None:
        super().__init__(num_envs, delta_mm, max_episode_steps, seed, randomize, device)
        self.dim = int(dim)
        self.obs_dim, self.act_dim = 2 * self.dim, self.dim
        self.success_radius, self.goal_noise = float(success_radius), float(goal_noise)
        self.action_high = torch.full((self.dim,), float(step_size), device=self.device)
        self.action_low = -self.action_high
        # Coarser "soil" slows the point a little: 0.975 at 10 mm, 0.825 at 70 mm.
        self.gain = 1.0 - self.delta_mm / 400.0
        self.pos = torch.zeros(num_envs, self.dim)
        self.goal = torch.zeros(num_envs, self.dim)
        self._state_keys = ("pos", "goal", "t", "ep_return")
        self.reset()

    def _reset_ids(self, ids: torch.Tensor) -> None:
        self.pos[ids] = self._rand(len(ids), self.dim)
        self.goal[ids] = self._rand(len(ids), self.dim)
        self.t[ids] = 0
        self.ep_return[ids] = 0.0

    def _observe(self) -> torch.Tensor:
        goal = self.goal
        if self.randomize and self.goal_noise > 0:
            goal = goal + self.goal_noise * self._rand(self.num_envs, self.dim)
        return torch.cat([self.pos, goal], dim=1)

    def step(self, actions: torch.Tensor) -> StepResult:
        a = self._check(actions)
        self.pos = (self.pos + self.gain * a).clamp(-1.5, 1.5)
        dist = (self.pos - self.goal).norm(dim=1)
        success = dist < self.success_radius
        reward = -dist + success.float()
        return self._finish_step(reward, success)


class ToyExcavationEnv(_ToyBase):
    """Contract-shaped toy digging: get the tines under the rock while tilted, then lift it clear.

    Rock centre starts at the soil surface (z = 0, half buried). The rock is captured when the tip is
    within ``capture radius`` of it in xy, at least 1 cm below its centre, with pitch > 0.2 rad; it
    then rides on the tines, and success is holding it 5 cm up for 2 steps.
    """

    obs_dim = contract.OBS_DIM
    act_dim = contract.ACT_DIM

    def __init__(
        self,
        num_envs: int = 64,
        delta_mm: float = 70.0,
        *,
        max_episode_steps: int = 48,
        seed: int = 0,
        randomize: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__(num_envs, delta_mm, max_episode_steps, seed, randomize, device)
        self.action_high = torch.as_tensor(contract.ACTION_LIMIT, device=self.device)
        self.action_low = -self.action_high
        d = self.delta_mm / 1000.0
        self.capture_radius = 0.02 + 0.2 * d  # coarse rocks are bigger targets: 34 mm at 70, 22 mm at 10
        self.soil_drag = 1.0 - 2.0 * d  # motion below the surface: 0.86 at 70 mm, 0.98 at 10 mm
        self.ws_min = torch.as_tensor(contract.WORKSPACE_MIN)
        self.ws_max = torch.as_tensor(contract.WORKSPACE_MAX)
        n = num_envs
        self.tip, self.pitch = torch.zeros(n, 3), torch.zeros(n)
        self.rock, self.in_bucket = torch.zeros(n, 3), torch.zeros(n, dtype=torch.bool)
        self.hold, self.obs_bias = torch.zeros(n, dtype=torch.long), torch.zeros(n, 2)
        self._state_keys = ("tip", "pitch", "rock", "in_bucket", "hold", "obs_bias", "t", "ep_return")
        self.reset()

    def _reset_ids(self, ids: torch.Tensor) -> None:
        k = len(ids)
        spread = 0.06 if self.randomize else 0.03
        self.tip[ids] = torch.tensor([-0.12, 0.0, 0.10]) + self._rand(k, 3) * torch.tensor([spread, spread, 0.03])
        self.pitch[ids] = 0.0
        self.rock[ids] = torch.cat([self._rand(k, 2) * 0.04, torch.zeros(k, 1)], dim=1)
        self.in_bucket[ids] = False
        self.hold[ids] = 0
        self.obs_bias[ids] = self._rand(k, 2) * (0.01 if self.randomize else 0.0)
        self.t[ids] = 0
        self.ep_return[ids] = 0.0

    def _observe(self) -> torch.Tensor:
        rock = self.rock.clone()
        rock[:, :2] += self.obs_bias
        flag = self.in_bucket.float()
        if self.randomize:
            rock[:, :2] += 0.005 * self._rand(self.num_envs, 2)
            flip = torch.rand(self.num_envs, generator=self.gen) < 0.05
            flag = torch.where(flip, 1.0 - flag, flag)
        return contract.pack_observation(bucket_tip=self.tip, bucket_pitch=self.pitch, rock=rock, rock_in_bucket=flag)

    def step(self, actions: torch.Tensor) -> StepResult:
        a = self._check(actions)
        drag = torch.where(self.tip[:, 2] < 0.0, self.soil_drag, 1.0)[:, None]
        self.tip = torch.max(torch.min(self.tip + drag * a[:, :3], self.ws_max), self.ws_min)
        self.pitch = (self.pitch + a[:, 3]).clamp(*contract.PITCH_LIMIT_RAD)

        under = self.rock - torch.tensor([0.0, 0.0, 0.02])
        near = (self.tip[:, :2] - self.rock[:, :2]).norm(dim=1) < self.capture_radius
        capture = ~self.in_bucket & near & (self.tip[:, 2] < self.rock[:, 2] - 0.01) & (self.pitch > 0.2)
        self.in_bucket = self.in_bucket | capture
        self.rock = torch.where(self.in_bucket[:, None], self.tip + torch.tensor([0.0, 0.0, 0.03]), self.rock)
        lifted = self.in_bucket & (self.rock[:, 2] > 0.05)
        self.hold = torch.where(lifted, self.hold + 1, torch.zeros_like(self.hold))
        success = self.hold >= 2

        # Every per-step term is <= 0 until success, so finishing early always pays (a positive
        # carry reward would teach the policy to hold the rock forever instead of succeeding).
        reach = -5.0 * (self.tip - under).norm(dim=1)
        carry = -10.0 * (0.06 - self.rock[:, 2]).clamp(min=0.0)
        reward = torch.where(self.in_bucket, carry, reach - 1.0) + 2.0 * capture.float() + 10.0 * success.float()
        reward = reward - 0.01 * (a / self.action_high.cpu()).pow(2).sum(dim=1)
        return self._finish_step(reward, success)


def make_toy_env(name: str, delta_mm: float, *, num_envs: int, seed: int, randomize: bool, device: str, **options):
    """EnvFactory body for ``env.name`` 'toy' / 'point'; ``options`` go to the env's constructor."""
    cls = {"toy": ToyExcavationEnv, "point": PointReachEnv}.get(name)
    if cls is None:
        raise ValueError(f"toy env name must be 'toy' or 'point', got {name!r}")
    try:
        return cls(num_envs, delta_mm, seed=seed, randomize=randomize, device=device, **options)
    except TypeError as exc:
        raise ValueError(f"env.options for env '{name}' do not fit {cls.__name__}: {exc}") from None


__all__ = ["PointReachEnv", "ToyExcavationEnv", "make_toy_env"]
