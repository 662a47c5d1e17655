"""Solver settings against cost and behaviour at one resolution: for each (substeps, XPBD iterations,
contact relaxation), the settled bed's depth, how many settle steps it took (``settle_max_steps`` means
it never came to rest), env-steps per second, and the scripted scoop's success (each world's first
episode, Wilson 95 % CI) on seeds never used to train or evaluate.

A step costs about substeps x iterations particle-contact passes, so fewer passes is the obvious
speed-up; this measures what it does to the soil and to the scoop before anyone adopts it.

    python bench/sim_solver_sweep.py --delta-mm 10 --num-envs 32 --settings 8,4,0.3 16,2,0.3 16,1,0.6

Writes bench/results/sim_solver_sweep.json (rows name the machine, load and code revision) + .png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from provenance import revision  # noqa: E402  (bench/ is the script's own folder)

RESULTS = Path(__file__).resolve().parent / "results"


def parse_setting(text: str) -> tuple[int, int, float]:
    try:
        sub, it, relax = text.split(",")
        return int(sub), int(it), float(relax)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a setting is SUBSTEPS,ITERATIONS,RELAXATION (e.g. 8,4,0.3), got {text!r}") from None


def measure(delta_mm: float, num_envs: int, seed: int, setting: tuple[int, int, float], budget_s: float) -> dict:
    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv
    from excavation_sim.scripted import run_scripted

    sub, it, relax = setting
    cfg = ExcavationEnvConfig(delta_mm=delta_mm, num_envs=num_envs, seed=seed)
    cfg = replace(cfg, physics=replace(cfg.physics, substeps=sub, solver_iterations=it, contact_relaxation=relax))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    env = ExcavationEnv(cfg)
    build_s = time.perf_counter() - t0
    depth = float((env.surface_z - env.floor_z).mean())
    env.reset()
    zero = torch.zeros(num_envs, env.act_dim)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget_s or steps < 2:
        env.step(zero)
        steps += 1
    step_s = (time.perf_counter() - t0) / steps
    scripted = run_scripted(env, num_envs)  # a fresh reset: each world's first episode
    env.close()
    return {"delta_mm": delta_mm, "num_envs": num_envs, "seed": seed, "substeps": sub, "iterations": it,
            "relaxation": relax, "passes_per_step": sub * it, "build_s": round(build_s, 2),
            "settle_steps": env.settle_steps, "settle_max_steps": cfg.physics.settle_max_steps,
            "settle_residual_m": float(env.settle_residual), "bed_depth_mm": round(depth * 1e3, 1),
            "step_s": round(step_s, 4), "env_steps_per_s": round(num_envs / step_s, 2),
            "scripted_successes": round(scripted["success_rate"] * scripted["episodes"]),
            "scripted_episodes": scripted["episodes"], "scripted_success_rate": scripted["success_rate"],
            "scripted_ci95": scripted["success_ci95"], "loadavg_1min_start": load0,
            "loadavg_1min_end": os.getloadavg()[0]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        lo, hi = r["scripted_ci95"]
        y = r["scripted_success_rate"]
        ax.errorbar(r["env_steps_per_s"], y, yerr=[[y - lo], [hi - y]], fmt="o", capsize=3)
        ax.annotate(f"{r['substeps']}x{r['iterations']}, {r['relaxation']:g}\nbed {r['bed_depth_mm']:g} mm",
                    (r["env_steps_per_s"], y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel(f"env-steps/s ({rows[0]['num_envs']} envs, 1 process)")
    ax.set_ylabel("scripted scoop success (each world's first episode)")
    ax.set_title(f"solver settings at {rows[0]['delta_mm']:g} mm: speed vs behaviour")
    ax.set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delta-mm", type=float, default=10.0, help="resolution (default 10)")
    p.add_argument("--num-envs", type=int, default=32, help="worlds, one scripted episode each (default 32)")
    p.add_argument("--seed", type=int, default=7001, help="scene seed (default 7001: never used to train or evaluate)")
    p.add_argument("--settings", type=parse_setting, nargs="+", default=[(8, 4, 0.3), (16, 2, 0.3), (16, 1, 0.6)],
                   help="SUBSTEPS,ITERATIONS,RELAXATION ... (default: 8,4,0.3 (the default) 16,2,0.3 16,1,0.6)")
    p.add_argument("--budget-s", type=float, default=8.0, help="seconds of stepping to time each setting (default 8)")
    p.add_argument("--out", type=Path, default=RESULTS / "sim_solver_sweep.json")
    args = p.parse_args()
    result = {"benchmark": "sim_solver_sweep", "revision": revision(),
              "machine": {"host_cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "command": "python bench/sim_solver_sweep.py " + " ".join(sys.argv[1:]), "rows": []}
    for setting in args.settings:
        row = measure(args.delta_mm, args.num_envs, args.seed, setting, args.budget_s)
        print(json.dumps(row), flush=True)
        result["rows"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))  # after every row: an interrupted sweep keeps its rows
    plot(result["rows"], args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
