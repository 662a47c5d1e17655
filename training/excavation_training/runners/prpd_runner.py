"""PRPD training loop: PPO at one resolution at a time, coarse to fine, with conservative transfer.

The runner only loops; the learning is ``algorithms.prpd.PRPD`` (its docstring states the objective).
One iteration = roll out ``num_envs`` envs for ``steps_per_iteration`` steps through the algorithm
(``act`` / ``process_env_step`` / ``compute_returns``), ``update()``, log, checkpoint, and ask the
scheduler whether this resolution is done. When it is: snapshot the policy, rebuild the env at the
next resolution (via the EnvFactory) and ``PRPD.start_stage()``, which freezes a copy of the policy
as the teacher and keeps training the same networks.

Fixed-resolution PPO is the one-resolution schedule; direct transfer is the schedule (70, 10).
"""

from __future__ import annotations

import copy
import math
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import excavation_contract as contract

from ..algorithms import PRPD
from ..config import TrainConfig
from excavation_sim.vec_env import EnvFactory, VecEnv
from ..models import ActorCritic
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    SNAPSHOT_FORMAT,
    atomic_copy,
    atomic_torch_save,
    code_revision,
    load_checkpoint,
)
from .logger import TrainLogger
from .scheduler import ResolutionScheduler


@dataclass
class TrainResult:
    iterations: int
    stages: list[dict] = field(default_factory=list)
    finished: bool = False  # the schedule ran to its end
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (a checkpoint was written)
    checkpoint: str | None = None
    final_success_rate: float = float("nan")


class PRPDRunner:
    """Train with PRPD.

    ``PRPDRunner(cfg, env_factory, log_dir).learn()`` trains from scratch;
    ``PRPDRunner.from_checkpoint(path, env_factory).learn()`` continues a run exactly where it stopped.
    ``env_factory(delta_mm)`` builds the batched env at a resolution (see ``env.vec_env``); envs that
    also have ``state_dict()``/``load_state_dict()`` are checkpointed with it, which makes resume exact.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        env_factory: EnvFactory,
        log_dir: str | Path | None = None,
        *,
        checkpoint: dict | None = None,
    ) -> None:
        self.cfg = copy.deepcopy(cfg).validate()
        cfg = self.cfg
        if cfg.runner.torch_threads:
            torch.set_num_threads(cfg.runner.torch_threads)
        self.env_factory = env_factory
        self.log_dir = Path(log_dir if log_dir is not None else cfg.runner.log_dir)
        self.device = torch.device(cfg.runner.device)

        torch.manual_seed(cfg.runner.seed)
        np.random.seed(cfg.runner.seed)
        random.seed(cfg.runner.seed)
        # Every random draw of the learner (action noise, minibatch order) comes from this generator,
        # so its state in the checkpoint is all resume needs to continue the same random stream.
        self.generator = torch.Generator().manual_seed(cfg.runner.seed)

        self.scheduler = ResolutionScheduler(cfg.prpd)
        if checkpoint is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.env = self._make_env(self.scheduler.delta_mm)
        self.obs_dim, self.act_dim = int(self.env.obs_dim), int(self.env.act_dim)
        self.action_low = self.env.action_low.detach().float().cpu().clone()
        self.action_high = self.env.action_high.detach().float().cpu().clone()
        self.control_period = float(getattr(self.env, "control_period", contract.CONTROL_PERIOD_S))

        self.policy = ActorCritic(self.obs_dim, self.act_dim, cfg.policy).to(self.device)
        self.alg = PRPD(self.policy, cfg, self.generator, self.device)
        self.alg.init_storage(self.env.num_envs, cfg.runner.steps_per_iteration)

        self.iteration = 0
        self.counters = {"samples": 0, "sim_seconds": 0.0, "simulated_seconds": 0.0, "wall_seconds": 0.0}
        self.history: list[dict] = []
        self.last_success_rate = float("nan")
        self.code_revision = code_revision()
        if checkpoint is None and cfg.demo.steps > 0:
            self._warm_start_from_demonstrations()
        self.obs = self.env.reset()
        self._boundary: dict | None = None
        if checkpoint is not None:
            self._load_state(checkpoint)

    def _warm_start_from_demonstrations(self) -> None:
        from ..algorithms.demonstrations import behaviour_clone, collect_demonstrations
        from excavation_sim.scripted import ScriptedScoop

        d = self.cfg.demo
        n, dev = self.env.num_envs, self.env.device
        obs, act = collect_demonstrations(self.env, d.steps, ScriptedScoop(n, dev))

        def fit(obs: torch.Tensor, act: torch.Tensor) -> float:
            return behaviour_clone(
                self.policy, obs.to(self.device), act.to(self.device), self.action_low.to(self.device), self.action_high.to(self.device),
                epochs=d.epochs, learning_rate=d.learning_rate, batch_size=d.batch_size, generator=self.generator,
                init_noise_std=d.init_noise_std,
            )

        def student(o: torch.Tensor) -> torch.Tensor:
            return self._to_env_action(self.policy.action_mean(o.to(self.device))).to(o.device)

        mse = fit(obs, act)
        for _ in range(d.dagger_rounds):
            o, a = collect_demonstrations(self.env, max(1, d.steps // 2), ScriptedScoop(n, dev), student)
            obs, act = torch.cat([obs, o]), torch.cat([act, a])
            mse = fit(obs, act)
        self.counters["samples"] += int(obs.shape[0])
        self.alg.reset_optimizer(learning_rate=d.ppo_learning_rate)
        self.demo_record = {"samples": int(obs.shape[0]), "bc_mse": mse, "dagger_rounds": d.dagger_rounds}

    @property
    def ppo(self) -> PRPD:
        """The algorithm under its former name (``runner.ppo.learning_rate``, ``.optimizer``, ...)."""
        return self.alg

    @property
    def storage(self):
        """The algorithm's rollout storage of the current stage."""
        return self.alg.storage

    # ------------------------------------------------------------------ construction helpers
    def _make_env(self, delta_mm: float) -> VecEnv:
        env = self.env_factory(delta_mm)
        missing = [a for a in ("num_envs", "obs_dim", "act_dim", "action_low", "action_high", "reset", "step") if not hasattr(env, a)]
        if missing:
            raise TypeError(f"env_factory({delta_mm}) returned {type(env).__name__}, which lacks VecEnv members {missing}")
        if hasattr(self, "obs_dim"):
            same = (
                (env.obs_dim, env.act_dim) == (self.obs_dim, self.act_dim)
                and torch.allclose(env.action_low.float().cpu(), self.action_low)
                and torch.allclose(env.action_high.float().cpu(), self.action_high)
            )
            if not same:
                raise ValueError(
                    f"the env at {delta_mm} mm has obs/act dims ({env.obs_dim}, {env.act_dim}) or action bounds "
                    f"that differ from the first stage's ({self.obs_dim}, {self.act_dim}); a policy cannot move between them"
                )
        return env

    def _to_env_action(self, actions: torch.Tensor) -> torch.Tensor:
        low, high = self.action_low.to(actions.device), self.action_high.to(actions.device)
        return (high + low) / 2 + (high - low) / 2 * actions.clamp(-1.0, 1.0)

    # ------------------------------------------------------------------ one iteration
    def _iteration(self) -> dict:
        t_start = time.perf_counter()
        rollout = self._collect()
        warming = self.cfg.demo.steps > 0 and self.iteration < self.cfg.demo.critic_warmup_iterations
        stats = self.alg.update(train_actor=not warming)
        samples = self.cfg.runner.steps_per_iteration * self.env.num_envs
        self.iteration += 1
        self.counters["samples"] += samples
        self.counters["sim_seconds"] += rollout["sim_seconds"]
        self.counters["simulated_seconds"] += samples * self.control_period
        iteration_seconds = time.perf_counter() - t_start
        self.counters["wall_seconds"] += iteration_seconds
        transfer_keys = ("alpha", "teacher_advantage", "teacher_kl", "distill_loss", "q_loss")
        return {
            "iteration": self.iteration,
            "stage": self.scheduler.stage,
            "resolution_mm": self.scheduler.delta_mm,
            "stage_iteration": self.scheduler.stage_iterations + 1,
            **{k: v for k, v in rollout.items() if k != "sim_seconds"},
            **{k: stats.get(k, float("nan")) for k in transfer_keys},
            **{k: v for k, v in stats.items() if k not in transfer_keys},
            **self.counters,
            "iteration_seconds": iteration_seconds,
        }

    def _collect(self) -> dict:
        """One rollout into the algorithm's storage, and its episode statistics."""
        cfg, env = self.cfg, self.env
        obs = env.reset() if cfg.runner.reset_every_iteration else self.obs
        sim_seconds, step_reward = 0.0, 0.0
        successes, returns, lengths = [], [], []
        # With a reset at the iteration start, only each env's first episode counts: the episodes that
        # follow a quick success and also end in the window are biased toward quick successes.
        first_only = cfg.runner.reset_every_iteration
        counted = torch.zeros(env.num_envs, dtype=torch.bool, device=self.device)
        for _ in range(cfg.runner.steps_per_iteration):
            obs = obs.to(self.device)
            actions = self.alg.act(obs).actions
            t0 = time.perf_counter()
            result = env.step(self._to_env_action(actions))
            sim_seconds += time.perf_counter() - t0
            done = result.done.to(self.device).bool()
            reward = result.reward.to(self.device).float()
            step_reward += reward.mean().item()
            self.alg.process_env_step(reward, done, result.info.get("time_out"))
            ended = done & ~counted if first_only else done
            if ended.any():
                if "episode_success" not in result.info:
                    raise KeyError("env step info lacks 'episode_success' (see env.vec_env for the info keys)")
                info = {k: v.to(self.device) for k, v in result.info.items() if k.startswith("episode_")}
                successes.append(info["episode_success"][ended].float().cpu())
                if "episode_return" in info:
                    returns.append(info["episode_return"][ended].float().cpu())
                if "episode_length" in info:
                    lengths.append(info["episode_length"][ended].float().cpu())
                if first_only:
                    counted |= done
            obs = result.obs
        self.obs = obs.to(self.device)
        self.alg.compute_returns(self.obs)

        # An env whose first episode is still running at the window's end has not succeeded within
        # it; leaving it out would count only the episodes that ended early.
        if first_only and not counted.all():
            successes.append(torch.zeros(int((~counted).sum())))
        succ = torch.cat(successes) if successes else torch.zeros(0)
        self._iteration_outcomes = succ.bool().tolist()  # for the scheduler's advance window
        n_episodes = int(succ.numel())
        nan = float("nan")
        return {
            "success_rate": float(succ.mean()) if n_episodes >= cfg.prpd.min_episodes_for_success else nan,
            "episodes": n_episodes,
            "successes": int(succ.sum()),
            "episode_return": float(torch.cat(returns).mean()) if returns else nan,
            "episode_length": float(torch.cat(lengths).mean()) if lengths else nan,
            "step_reward": step_reward / cfg.runner.steps_per_iteration,
            "sim_seconds": sim_seconds,
        }

    # ------------------------------------------------------------------ stages
    def _end_stage(self, reason: str, success_rate: float) -> None:
        """Record and snapshot the stage that ended; move to the next resolution if there is one."""
        s = self.scheduler
        record = {
            "stage": s.stage,
            "resolution_mm": s.delta_mm,
            "iterations": s.stage_iterations,
            "end_iteration": self.iteration,
            "success_rate": success_rate,
            "reason": reason,
            "samples": self.counters["samples"],
            "sim_seconds": self.counters["sim_seconds"],
        }
        self.history.append(record)
        self.save_policy_snapshot(self.log_dir / "stages" / f"stage{s.stage}_{s.delta_mm:g}mm.pt", record)
        if not s.advance():
            return
        self.env.close()
        self.env = self._make_env(s.delta_mm)
        self.alg.init_storage(self.env.num_envs, self.cfg.runner.steps_per_iteration)
        self.obs = self.env.reset()
        self.alg.start_stage()

    # ------------------------------------------------------------------ main loop
    def learn(self, num_iterations: int | None = None, callback: Callable[[PRPDRunner, dict], None] | None = None) -> TrainResult:
        """Train until the schedule finishes, ``runner.max_iterations`` in total, or ``num_iterations`` more.

        SIGINT/SIGTERM stop training after the current iteration with a checkpoint; a second SIGINT
        interrupts at once and checkpoints the state of the last completed iteration.
        """
        cfg = self.cfg
        stop_at = math.inf
        if cfg.runner.max_iterations:
            stop_at = cfg.runner.max_iterations
        if num_iterations is not None:
            stop_at = min(stop_at, self.iteration + num_iterations)
        logger = TrainLogger(self.log_dir, start_iteration=self.iteration, tensorboard=cfg.runner.tensorboard)
        bar = _progress(cfg.runner.progress, self.iteration, self._bound(stop_at))
        result = TrainResult(iterations=self.iteration)
        stopper = _StopRequest()
        self._boundary = self.state_dict()
        try:
            with stopper:
                while not self.scheduler.finished and self.iteration < stop_at:
                    if stopper.requested:
                        result.interrupted = True
                        break
                    metrics = self._iteration()
                    self.last_success_rate = metrics["success_rate"]
                    reason = self.scheduler.step(metrics["success_rate"], outcomes=self._iteration_outcomes)
                    metrics["advance_success_rate"] = self.scheduler.window_rate
                    metrics["advance_window_episodes"] = len(self.scheduler.window)
                    logger.log(metrics)
                    if bar is not None:
                        _update_bar(bar, metrics, self.scheduler, self._bound(stop_at))
                    if reason is not None:
                        self._end_stage(reason, metrics["advance_success_rate"])
                    if reason is not None or self.iteration % cfg.runner.checkpoint_every == 0:
                        result.checkpoint = str(self.save_checkpoint())
                    self._boundary = self.state_dict()
                    if callback is not None:
                        callback(self, metrics)
                if stopper.requested:
                    result.interrupted = True
            result.checkpoint = str(self.save_checkpoint())
        except KeyboardInterrupt:
            # Mid-iteration state is half-updated; what is saved is the last completed iteration.
            result.interrupted = True
            result.checkpoint = str(self.save_checkpoint(state=self._boundary))
            raise
        finally:
            logger.close()
            if bar is not None:
                bar.close()
        result.iterations = self.iteration
        result.stages = list(self.history)
        result.finished = self.scheduler.finished
        result.final_success_rate = self.last_success_rate
        return result

    def _bound(self, stop_at: float) -> int:
        return int(min(stop_at, self.iteration + self.scheduler.remaining_iterations_bound()))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: networks, optimisers, normaliser, teacher, Q, schedule,
        RNG states, env state (if the env provides it), counters."""
        env_state = self.env.state_dict() if hasattr(self.env, "state_dict") else None
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.cfg.to_dict(),
            "code_revision": self.code_revision,
            "log_dir": str(self.log_dir),
            "iteration": self.iteration,
            "counters": dict(self.counters),
            "history": list(self.history),
            "last_success_rate": self.last_success_rate,
            "scheduler": self.scheduler.state_dict(),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "action_low": self.action_low,
            "action_high": self.action_high,
            "control_period": self.control_period,
            **self.alg.state_dict(),  # policy, ppo (optimiser, learning rate, beta), teacher, q
            "rng": {
                "generator": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            "env": env_state,
            "obs": self.obs,
        }
        return copy.deepcopy(state)

    def _load_state(self, ckpt: dict) -> None:
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a training checkpoint (a stage snapshot holds a policy only and cannot be resumed)")
        if (ckpt["obs_dim"], ckpt["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(
                f"checkpoint dims (obs {ckpt['obs_dim']}, act {ckpt['act_dim']}) differ from the env's "
                f"({self.obs_dim}, {self.act_dim})"
            )
        self.iteration = ckpt["iteration"]
        self.counters = dict(ckpt["counters"])
        self.history = list(ckpt["history"])
        self.last_success_rate = ckpt.get("last_success_rate", float("nan"))
        self.alg.load_state_dict(ckpt)
        if ckpt["env"] is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(ckpt["env"])
        self.obs = ckpt["obs"].to(self.device)
        rng = ckpt["rng"]
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, env_factory: EnvFactory | None = None, log_dir: str | Path | None = None
    ) -> PRPDRunner:
        """Continue a run: same resolution stage, networks, optimiser, normaliser, teacher, Q, RNGs."""
        ckpt = load_checkpoint(path)
        cfg = TrainConfig.from_dict(ckpt["config"])
        if env_factory is None:
            from .env_factory import build_env_factory

            env_factory = build_env_factory(cfg)
        if log_dir is None:
            # The run folder the checkpoint sits in, so a moved run folder resumes in place.
            ckpt_path = Path(ckpt["_path"])
            log_dir = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt["log_dir"]
        return cls(cfg, env_factory, log_dir, checkpoint=ckpt)

    def save_checkpoint(self, path: str | Path | None = None, state: dict | None = None) -> Path:
        """Atomically write a checkpoint (``checkpoints/ckpt_<iteration>.pt``) and refresh ``latest.pt``."""
        state = state if state is not None else self.state_dict()
        folder = self.log_dir / "checkpoints"
        path = Path(path) if path is not None else folder / f"ckpt_{state['iteration']:06d}.pt"
        atomic_torch_save(state, path)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_copy(path, folder / "latest.pt")
        return path

    def save_policy_snapshot(self, path: str | Path, stage_record: dict | None = None) -> Path:
        """The current policy alone (for evaluation, the cross-resolution matrix and export)."""
        return atomic_torch_save(
            {
                "format": SNAPSHOT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "config": self.cfg.to_dict(),
                "code_revision": self.code_revision,
                "obs_dim": self.obs_dim,
                "act_dim": self.act_dim,
                "action_low": self.action_low,
                "action_high": self.action_high,
                "control_period": self.control_period,
                "policy": copy.deepcopy(self.policy.state_dict()),
                "stage_record": stage_record,
                "history": list(self.history),
                "iteration": self.iteration,
            },
            path,
        )


# ---------------------------------------------------------------------- helpers
class _StopRequest:
    """SIGINT/SIGTERM -> stop after the current iteration; a second SIGINT raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _progress(enabled: bool, initial: int, total: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True)


def _update_bar(bar, metrics: dict, scheduler: ResolutionScheduler, total: int) -> None:
    # The total is an upper bound (every stage to its cap); it shrinks when a stage ends early.
    bar.total = total
    s = metrics["success_rate"]
    alpha = metrics.get("alpha", float("nan"))
    bar.set_description(f"stage {metrics['stage'] + 1}/{scheduler.num_stages} {metrics['resolution_mm']:g} mm", refresh=False)
    bar.set_postfix_str(
        f"success {s:.2f}" + ("" if math.isnan(alpha) else f" alpha {alpha:.2f}"), refresh=False
    )
    bar.update(1)
