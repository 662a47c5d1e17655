"""Per-episode domain-randomisation draws (paper Table II); see ``RandomizationConfig`` for the mapping.

Draws come from a torch generator owned by the env, so a seeded env is reproducible on the CPU.
With randomisation disabled every draw is its nominal value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .config import ExcavationEnvConfig


@dataclass
class EpisodeParams:
    """Per-env randomised parameters, each a tensor with ``num_envs`` rows."""

    rock_obs_bias: torch.Tensor  # (N, 2) m
    ground_bias: torch.Tensor  # (N,) m
    bucket_start: torch.Tensor  # (N, 3) m, tray frame
    rock_start_bias: torch.Tensor  # (N, 3) m
    rock_yaw: torch.Tensor  # (N,) rad
    torque_weight: torch.Tensor  # (N, 3)
    rock_force: torch.Tensor  # (N, 3) N, world frame
    friction_scale: torch.Tensor  # (N,)
    soil_mass: torch.Tensor  # (N,) kg
    rock_mass: torch.Tensor  # (N,) kg

    @classmethod
    def zeros(cls, n: int, device: torch.device) -> "EpisodeParams":
        shapes = {"rock_obs_bias": (n, 2), "bucket_start": (n, 3), "rock_start_bias": (n, 3), "torque_weight": (n, 3), "rock_force": (n, 3)}
        return cls(**{f.name: torch.zeros(shapes.get(f.name, (n,)), device=device) for f in fields(cls)})

    def assign(self, ids: torch.Tensor, other: "EpisodeParams") -> None:
        for f in fields(self):
            getattr(self, f.name)[ids] = getattr(other, f.name)


def _uniform(gen: torch.Generator, n: int, lo, hi, device, dim: int | None = None) -> torch.Tensor:
    shape = (n,) if dim is None else (n, dim)
    u = torch.rand(shape, generator=gen, device="cpu")
    lo_t = torch.as_tensor(lo, dtype=torch.float32)
    hi_t = torch.as_tensor(hi, dtype=torch.float32)
    return (lo_t + (hi_t - lo_t) * u).to(device)


def sample_episode_params(cfg: ExcavationEnvConfig, n: int, gen: torch.Generator, device: torch.device) -> EpisodeParams:
    dr, sc, bk = cfg.randomization, cfg.scene, cfg.bucket
    start = torch.tensor(bk.start_xyz, dtype=torch.float32, device=device).expand(n, 3).clone()
    # Rock yaw is part of the rock's shape variety, not a Table II row: always drawn.
    yaw = _uniform(gen, n, -torch.pi, torch.pi, device)
    if not dr.enabled:
        p = EpisodeParams.zeros(n, device)
        p.bucket_start = start
        p.rock_yaw = yaw
        p.torque_weight.fill_(1.0)
        p.friction_scale.fill_(1.0)
        p.soil_mass.fill_(sc.soil_mass)
        p.rock_mass.fill_(sc.rock_mass)
        return p
    b = torch.tensor(dr.bucket_start_bias_xyz, dtype=torch.float32)
    rb = torch.tensor(dr.rock_start_bias_xyz, dtype=torch.float32)
    heading = _uniform(gen, n, -torch.pi, torch.pi, device)
    magnitude = _uniform(gen, n, *dr.rock_external_force, device)
    force = torch.stack([magnitude * torch.cos(heading), magnitude * torch.sin(heading), torch.zeros_like(magnitude)], dim=1)
    return EpisodeParams(
        rock_obs_bias=_uniform(gen, n, -dr.rock_obs_bias_xy, dr.rock_obs_bias_xy, device, 2),
        ground_bias=_uniform(gen, n, -dr.ground_height_bias, dr.ground_height_bias, device),
        bucket_start=start + _uniform(gen, n, -b, b, device, 3),
        rock_start_bias=_uniform(gen, n, -rb, rb, device, 3),
        rock_yaw=yaw,
        torque_weight=_uniform(gen, n, dr.bucket_torque_weight[0], dr.bucket_torque_weight[1], device, 3),
        rock_force=force,
        friction_scale=_uniform(gen, n, *dr.friction_scale, device),
        soil_mass=_uniform(gen, n, *dr.soil_mass, device),
        rock_mass=_uniform(gen, n, *dr.rock_mass, device),
    )
