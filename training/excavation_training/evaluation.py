"""Success rate of a policy at any resolution (DR on or off), and the cross-resolution matrix.

A policy here is any callable ``obs (N, obs_dim) -> physical action (N, act_dim)``: a
``DeterministicPolicy`` built from a checkpoint or stage snapshot, or a loaded bundle. Evaluation
always uses the deterministic mean action.

Each evaluation round resets all envs and counts each env's *first* episode only, so quick
failures cannot outnumber slow successes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from excavation_sim.vec_env import VecEnv

PolicyFn = Callable[[torch.Tensor], torch.Tensor]
EvalEnvFactory = Callable[[float, bool], VecEnv]


@dataclass
class EvalResult:
    delta_mm: float
    randomize: bool
    episodes: int
    success_rate: float
    mean_return: float
    mean_length: float


@torch.no_grad()
def evaluate(policy: PolicyFn, make_env: EvalEnvFactory, delta_mm: float, *, episodes: int = 128, randomize: bool = False) -> EvalResult:
    """Run ``episodes`` episodes at ``delta_mm`` with the deterministic policy; report the success rate."""
    if episodes <= 0:
        raise ValueError(f"episodes must be a positive integer, got {episodes}")
    env = make_env(float(delta_mm), bool(randomize))
    try:
        successes, returns, lengths = [], [], []
        while len(successes) < episodes:
            obs = env.reset()
            finished = torch.zeros(env.num_envs, dtype=torch.bool)
            # Every env ends its first episode within max_episode_steps (the env truncates it).
            for _ in range(int(env.max_episode_steps) + 1):
                result = env.step(policy(obs.float().cpu()).to(obs.device))
                done = result.done.cpu().bool()
                first = done & ~finished
                if first.any():
                    successes += result.info["episode_success"].cpu()[first].float().tolist()
                    if "episode_return" in result.info:
                        returns += result.info["episode_return"].cpu()[first].float().tolist()
                    if "episode_length" in result.info:
                        lengths += result.info["episode_length"].cpu()[first].float().tolist()
                finished |= done
                obs = result.obs
                if finished.all():
                    break
            if not finished.any():
                raise RuntimeError(f"no episode ended within {env.max_episode_steps + 1} steps at {delta_mm} mm")
    finally:
        env.close()
    successes = successes[:episodes]
    mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
    return EvalResult(float(delta_mm), bool(randomize), len(successes), mean(successes), mean(returns[:episodes]), mean(lengths[:episodes]))


def cross_resolution_matrix(
    policies: Mapping[float, PolicyFn],
    eval_resolutions_mm: Sequence[float],
    make_env: EvalEnvFactory,
    *,
    episodes: int = 128,
    randomize: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Success rates: rows = resolution each policy finished training at, columns = evaluation resolution."""
    rows = sorted(policies, reverse=True)
    cols = [float(c) for c in eval_resolutions_mm]
    matrix = []
    for r in rows:
        row = []
        for c in cols:
            res = evaluate(policies[r], make_env, c, episodes=episodes, randomize=randomize)
            row.append(res.success_rate)
            if progress is not None:
                progress(f"policy {r:g} mm on {c:g} mm: success {res.success_rate:.3f}")
        matrix.append(row)
    return {
        "rows_trained_mm": [float(r) for r in rows],
        "cols_eval_mm": cols,
        "success_rate": matrix,
        "episodes": episodes,
        "randomize": bool(randomize),
    }


def save_matrix(matrix: dict, out_dir: str | Path, name: str = "cross_resolution") -> tuple[Path, Path]:
    """Write ``<name>.json`` and a heatmap ``<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / f"{name}.json", out_dir / f"{name}.png"
    json_path.write_text(json.dumps(matrix, indent=2) + "\n")
    data = torch.tensor(matrix["success_rate"], dtype=torch.float32).numpy()
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * data.shape[1], 1.0 + 0.6 * data.shape[0]))
    im = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(matrix["cols_eval_mm"])), [f"{c:g}" for c in matrix["cols_eval_mm"]])
    ax.set_yticks(range(len(matrix["rows_trained_mm"])), [f"{r:g}" for r in matrix["rows_trained_mm"]])
    ax.set_xlabel("evaluation resolution (mm)")
    ax.set_ylabel("policy finished at (mm)")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, "-" if math.isnan(data[i, j]) else f"{data[i, j]:.2f}", ha="center", va="center",
                    color="white" if data[i, j] < 0.6 else "black", fontsize=8)
    ax.set_title(f"success rate (DR {'on' if matrix['randomize'] else 'off'}, {matrix['episodes']} episodes)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path


def policy_from_file(path: str | Path) -> tuple[PolicyFn, dict]:
    """A deterministic policy from a checkpoint, a stage snapshot or a bundle folder, with its metadata."""
    path = Path(path)
    if path.is_dir() and (path / "policy.json").is_file():
        from .export.bundle import load_bundle

        bundle = load_bundle(path, check_contract=False)
        return bundle.module, {"kind": "bundle", **bundle.meta}
    from .export.torchscript import DeterministicPolicy
    from .runners.checkpoint import load_policy

    policy, ckpt = load_policy(path)
    return DeterministicPolicy(policy, ckpt["action_low"], ckpt["action_high"]).eval(), ckpt


def stage_snapshots(run_dir: str | Path) -> dict[float, Path]:
    """The policy each stage of a run finished with: ``{resolution_mm: snapshot path}``."""
    from .runners.checkpoint import load_checkpoint

    out = {}
    for p in sorted((Path(run_dir) / "stages").glob("stage*_*mm.pt")):
        rec = load_checkpoint(p).get("stage_record") or {}
        if "resolution_mm" in rec:
            out[float(rec["resolution_mm"])] = p
    return out


__all__ = ["EvalResult", "cross_resolution_matrix", "evaluate", "policy_from_file", "save_matrix", "stage_snapshots"]
