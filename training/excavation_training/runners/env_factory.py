"""Env factories from the config: the Newton excavation env (imported lazily) or a toy env."""

from __future__ import annotations

from typing import Callable

from ..config import ConfigError, TrainConfig, set_dotted
from excavation_sim.vec_env import EnvFactory, VecEnv

# (delta_mm, randomize) -> env; evaluation switches domain randomisation per call.
EvalEnvFactory = Callable[[float, bool], VecEnv]


def dotted_options(options: dict, prefix: str = "") -> dict:
    """``env.options`` as ``{dotted key: value}``: ``{"physics": {"substeps": 4}}`` (what a ``--set
    env.options.physics.substeps=4`` or a nested YAML gives) and ``{"physics.substeps": 4}`` alike."""
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            flat.update(dotted_options(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def excavation_env_config(cfg: TrainConfig, *, num_envs: int | None = None):
    """The simulator's ``ExcavationEnvConfig`` for ``cfg``: runner device/seed, then ``env.options``."""
    from excavation_sim.config import ExcavationEnvConfig  # lazy, as everything of the simulator

    base = ExcavationEnvConfig(num_envs=num_envs or cfg.env.num_envs, device=cfg.runner.device, seed=cfg.runner.seed)
    for key, value in dotted_options(cfg.env.options).items():
        try:
            set_dotted(base, key, value)
        except ConfigError as exc:
            raise ConfigError(f"env.options: {exc}") from None
    return base


def build_eval_factory(cfg: TrainConfig, *, num_envs: int | None = None) -> EvalEnvFactory:
    e, r = cfg.env, cfg.runner
    n = num_envs or e.num_envs

    if e.name == "excavation":
        # Lazy: the simulator (Newton/Warp) loads only when an excavation env is really built.
        base = excavation_env_config(cfg, num_envs=n)

        def make(delta_mm: float, randomize: bool) -> VecEnv:
            from dataclasses import replace

            from excavation_sim.excavation_env import make_env

            env_cfg = replace(base, randomization=replace(base.randomization, enabled=bool(randomize)))
            return make_env(delta_mm, env_cfg)

        return make

    from ..toy_envs import make_toy_env

    def make_toy(delta_mm: float, randomize: bool) -> VecEnv:
        return make_toy_env(e.name, delta_mm, num_envs=n, seed=r.seed, randomize=randomize, device=r.device, **e.options)

    return make_toy


def build_env_factory(cfg: TrainConfig, *, randomize: bool | None = None, num_envs: int | None = None) -> EnvFactory:
    """The training EnvFactory: ``delta_mm -> VecEnv`` with ``cfg.env``'s settings."""
    make = build_eval_factory(cfg, num_envs=num_envs)
    dr = cfg.env.randomize if randomize is None else randomize
    return lambda delta_mm: make(delta_mm, dr)
