"""``excavation-train train --view``: a Rerun recording of the run (``RUN_DIR/view.rrd``, docs/view.md).

- Every iteration: the PRPD curves on the ``iteration`` timeline (``train/success_rate``, ``prpd/alpha``,
  ``prpd/resolution_mm``; the TensorBoard tags of the same metrics).
- At each stage change and at the end: ``view.episodes`` evaluation episodes of the policy as it is
  then (deterministic mean action), at the resolution it just trained at, one world each: the soil,
  the rock, the bucket and its path (``world/...``, the live view's names, ``excavation_sim.scene_view``)
  on ``sim_time``, each episode after the previous one, so one timeline plays them all in turn; and each
  episode's success, reward and steps (``episode/...``) and their success rate (``eval/success_rate``).

It hooks into the runner through ``PRPDRunner.learn``'s ``callback`` (called after every iteration,
after the stage change and the checkpoint), so the runner knows nothing of it. The episodes run in an
env of their own (``view.episodes`` worlds, one process), never the training env: training's
observations, random streams and metrics are the same with ``--view`` as without.

Rerun is imported only when a ``TrainingView`` is built (``excavation_sim.scene_view`` imports it then).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from excavation_sim.scene_view import SceneState, open_view, scene_state

from ..config import TrainConfig
from .env_factory import EvalEnvFactory, build_eval_factory, dotted_options

EPISODE_GAP_S = 1.0  # simulated seconds between two logged episodes on sim_time, so they do not touch


def view_env_factory(cfg: TrainConfig) -> EvalEnvFactory:
    """Envs of ``view.episodes`` worlds in this process: a sharded env has no scene to read back."""
    vcfg = copy.deepcopy(cfg)
    if vcfg.env.name == "excavation":
        vcfg.env.options = {**dotted_options(vcfg.env.options), "shards": 1}
    return build_eval_factory(vcfg, num_envs=cfg.view.episodes)


def _toy_state(env, i: int) -> SceneState:
    """The toy envs' bucket tip and rock centre where they have them (no soil, no shapes)."""
    s = SceneState()
    if hasattr(env, "tip"):
        s.tip = env.tip[i].detach().cpu().numpy().astype(float)
        s.pitch = float(env.pitch[i]) if hasattr(env, "pitch") else 0.0
    if hasattr(env, "rock"):
        s.rock_position = env.rock[i].detach().cpu().numpy().astype(float)
    return s


class TrainingView:
    """Callback of ``PRPDRunner.learn`` writing the recording; ``finish(runner)`` after ``learn`` returns."""

    def __init__(self, cfg: TrainConfig, path: str | Path, make_env: EvalEnvFactory | None = None, *, stages_done: int = 0) -> None:
        """``stages_done``: stages the run had finished before this recording (a resumed run's ``history``)."""
        self.cfg = cfg.view
        self.path = Path(path)
        self.make_env = make_env or view_env_factory(cfg)
        self.view = open_view(record=str(self.path), application_id="excavation_training")
        self.clock = 0.0  # sim_time where the next logged episode starts
        self.episodes_logged = 0
        self.stages_seen = int(stages_done)
        self.evaluated_at: int | None = None  # iteration of the last evaluation logged
        self.evaluations: list[dict] = []

    # ------------------------------------------------------------------ the hook
    def __call__(self, runner, metrics: dict) -> None:
        v = self.view
        v.at_iteration(metrics["iteration"])
        v.scalar("train/success_rate", metrics.get("success_rate"))
        v.scalar("prpd/alpha", metrics.get("alpha"))
        v.scalar("prpd/resolution_mm", metrics.get("resolution_mm"))
        if len(runner.history) > self.stages_seen:  # the iteration ended a stage: the policy that finished it
            self.stages_seen = len(runner.history)
            self.log_episodes(runner, float(runner.history[-1]["resolution_mm"]), f"end of stage {runner.history[-1]['stage']}")

    def finish(self, runner, episodes: bool = True) -> None:
        """The end of training: the final policy's episodes (unless that iteration's stage end logged them,
        or not ``episodes``: after an interrupt, stop now), then close the recording."""
        try:
            if episodes and runner.iteration > 0 and self.evaluated_at != runner.iteration:
                s = runner.scheduler
                delta = float(runner.history[-1]["resolution_mm"]) if s.finished and runner.history else float(s.delta_mm)
                self.log_episodes(runner, delta, "end of training")
        finally:
            self.view.close()

    # ------------------------------------------------------------------ the episodes
    @torch.no_grad()
    def log_episodes(self, runner, delta_mm: float, why: str) -> dict:
        from ..export.torchscript import DeterministicPolicy

        policy = DeterministicPolicy(runner.policy, runner.action_low, runner.action_high).eval()
        env = self.make_env(delta_mm, self.cfg.randomize)
        try:
            frames, results = self._run(env, policy)
            period = float(getattr(env, "control_period", 0.1))
        finally:
            env.close()
        v = self.view
        for i, (ep_frames, res) in enumerate(zip(frames, results)):
            v.at_iteration(runner.iteration)
            v.new_episode()
            for k, s in enumerate(ep_frames):
                v.at(self.clock + k * period)
                v.scene(s, soil=(k % self.cfg.soil_every == 0) or k == len(ep_frames) - 1)
            self.episodes_logged += 1
            v.episode(self.episodes_logged, res["success"], res["reward"], res["steps"])
            self.clock += len(ep_frames) * period + EPISODE_GAP_S
        v.at_iteration(runner.iteration)
        rate = float(np.mean([r["success"] for r in results])) if results else math.nan
        v.scalar("eval/success_rate", rate)
        v.flush()
        self.evaluated_at = runner.iteration
        record = {"iteration": runner.iteration, "resolution_mm": delta_mm, "why": why, "success_rate": rate,
                  "episodes": results}
        self.evaluations.append(record)
        return record

    def _run(self, env, policy) -> tuple[list[list[SceneState]], list[dict]]:
        """Each world's first episode: a frame before every step (an ended episode is reset at once, so its
        last state is the one before its last step), and how it ended."""
        n = env.num_envs
        read = (lambda i, first: scene_state(env, i, self.cfg.max_soil_points, shapes=first)) \
            if hasattr(env, "soil_particles") else (lambda i, first: _toy_state(env, i))
        frames: list[list[SceneState]] = [[] for _ in range(n)]
        results: list[dict | None] = [None] * n
        obs = env.reset()
        for _ in range(int(env.max_episode_steps) + 1):
            for i in range(n):
                if results[i] is None:
                    frames[i].append(read(i, not frames[i]))
            res = env.step(policy(obs.float().cpu()).to(obs.device))
            done = res.done.cpu().bool()
            info = {k: t.cpu() for k, t in res.info.items()}
            for i in torch.nonzero(done).flatten().tolist():
                if results[i] is None:
                    results[i] = {
                        "success": bool(info["episode_success"][i]),
                        "reward": float(info["episode_return"][i]) if "episode_return" in info else None,
                        "steps": int(info["episode_length"][i]) if "episode_length" in info else len(frames[i]),
                    }
            obs = res.obs
            if all(r is not None for r in results):
                break
        # An env truncates every episode at max_episode_steps; one still running here did not succeed.
        results = [r if r is not None else {"success": False, "reward": None, "steps": len(frames[i])} for i, r in enumerate(results)]
        return frames, results


__all__ = ["TrainingView", "view_env_factory"]
