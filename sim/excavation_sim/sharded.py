"""One ``VecEnv`` over several processes, each simulating a share of the worlds on its own core.

Warp runs a CPU kernel on one thread, so one env process keeps one core busy and leaves the others
idle. ``ShardedEnv`` starts ``shards`` worker processes, each with an ``ExcavationEnv`` of about
``num_envs / shards`` worlds, and steps them together: actions go out to every shard, then the
results come back and are joined in env order. Shard ``k`` draws its scene and randomisation from
``seed + SHARD_SEED_STRIDE * k``, so a sharded run is reproducible but not the same run as an
unsharded one with the same seed.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from dataclasses import replace

import numpy as np
import torch

import excavation_contract as contract

from .config import ExcavationEnvConfig
from .vec_env import StepResult

SHARD_SEED_STRIDE = 100_003  # seeds of different shards never meet for any user seed below it
_JOIN_TIMEOUT_S = 10.0


def shard_sizes(num_envs: int, shards: int) -> list[int]:
    """Worlds per shard: as equal as possible, the first shards one larger; no empty shard."""
    shards = max(1, min(int(shards), int(num_envs)))
    base, extra = divmod(num_envs, shards)
    return [base + (1 if k < extra else 0) for k in range(shards)]


def _serve(conn, cfg: ExcavationEnvConfig) -> None:
    torch.set_num_threads(1)
    try:
        from .excavation_env import ExcavationEnv

        env = ExcavationEnv(cfg)
        conn.send(("ready", {"particles_per_env": env.particles_per_env, "surface_z": env.surface_z.numpy()}))
    except Exception as exc:  # the parent reports it with the shard's config
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        return
    while True:
        try:
            cmd, arg = conn.recv()
        except EOFError:
            return
        try:
            if cmd == "step":
                r = env.step(torch.from_numpy(arg))
                conn.send(("ok", (r.obs.numpy(), r.reward.numpy(), r.done.numpy(),
                                  {k: v.numpy() for k, v in r.info.items()})))
            elif cmd == "reset":
                conn.send(("ok", env.reset().numpy()))
            elif cmd == "rebuild":
                env.rebuild(arg)
                conn.send(("ok", {"particles_per_env": env.particles_per_env, "surface_z": env.surface_z.numpy()}))
            elif cmd == "state_dict":
                conn.send(("ok", env.state_dict()))
            elif cmd == "load_state_dict":
                env.load_state_dict(arg)
                conn.send(("ok", None))
            elif cmd == "close":
                env.close()
                conn.send(("ok", None))
                return
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class ShardedEnv:
    """``cfg.num_envs`` worlds split over ``shards`` processes; the ``VecEnv`` API on the CPU."""

    obs_dim = contract.OBS_DIM
    act_dim = contract.ACT_DIM

    def __init__(self, cfg: ExcavationEnvConfig, shards: int):
        cfg.validate()
        if str(cfg.device) != "cpu":
            raise ValueError(f"ShardedEnv runs CPU shards only, got device {cfg.device!r}; on a GPU use one ExcavationEnv")
        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {shards!r}")
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.device = torch.device("cpu")
        self.max_episode_steps = cfg.max_episode_steps
        self.control_period = contract.CONTROL_PERIOD_S
        self.action_high = torch.as_tensor(contract.ACTION_LIMIT)
        self.action_low = -self.action_high
        self.sizes = shard_sizes(cfg.num_envs, shards)
        ctx = mp.get_context("spawn")  # a fresh interpreter: no forked Warp or torch state
        self._conns, self._procs = [], []
        for k, n in enumerate(self.sizes):
            parent, child = ctx.Pipe()
            sub = replace(cfg, num_envs=n, seed=cfg.seed + SHARD_SEED_STRIDE * k, shards=1)
            proc = ctx.Process(target=_serve, args=(child, sub), name=f"excavation-shard-{k}", daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._absorb(self._gather())

    @property
    def delta_mm(self) -> float:
        return float(self.cfg.delta_mm)

    def _absorb(self, infos: list[dict]) -> None:
        self.particles_per_env = np.concatenate([i["particles_per_env"] for i in infos])
        self.surface_z = torch.as_tensor(np.concatenate([i["surface_z"] for i in infos]))

    def _gather(self) -> list:
        out, errors = [], []
        for k, c in enumerate(self._conns):
            try:
                kind, payload = c.recv()
            except EOFError:
                kind, payload = "error", f"shard {k} exited (code {self._procs[k].exitcode})"
            if kind == "error":
                errors.append(f"shard {k} ({self.sizes[k]} envs): {payload}")
            out.append(payload)
        if errors:
            self.close()
            raise RuntimeError("; ".join(errors))
        return out

    def _call(self, cmd: str, args: list | None = None) -> list:
        for k, c in enumerate(self._conns):
            c.send((cmd, None if args is None else args[k]))
        return self._gather()

    def reset(self) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(self._call("reset")))

    def step(self, actions: torch.Tensor) -> StepResult:
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions, dtype=np.float32)
        if a.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.act_dim}) = (num_envs, act_dim), got {a.shape}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        bounds = np.cumsum([0] + self.sizes)
        parts = self._call("step", [a[bounds[k]:bounds[k + 1]] for k in range(len(self.sizes))])
        cat = lambda i: torch.as_tensor(np.concatenate([p[i] for p in parts]))  # noqa: E731
        info = {key: torch.as_tensor(np.concatenate([p[3][key] for p in parts])) for key in parts[0][3]}
        return StepResult(cat(0), cat(1), cat(2), info)

    def rebuild(self, delta_mm: float | None = None) -> None:
        self._absorb(self._call("rebuild", [delta_mm] * len(self.sizes)))
        if delta_mm is not None:
            self.cfg = replace(self.cfg, delta_mm=float(delta_mm))

    def state_dict(self) -> dict:
        return {"shards": self._call("state_dict"), "sizes": list(self.sizes)}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("sizes", [])) != list(self.sizes):
            raise ValueError(f"env state is for shards of {state.get('sizes')} envs, this env has {self.sizes}")
        self._call("load_state_dict", state["shards"])

    def close(self) -> None:
        for c in self._conns:
            try:
                c.send(("close", None))
            except (OSError, BrokenPipeError):
                pass
        for p in self._procs:
            p.join(_JOIN_TIMEOUT_S)
            if p.is_alive():
                p.kill()
        for c in self._conns:
            c.close()
        self._conns, self._procs = [], []

    def __del__(self):
        if getattr(self, "_procs", None):
            self.close()


__all__ = ["SHARD_SEED_STRIDE", "ShardedEnv", "shard_sizes"]
