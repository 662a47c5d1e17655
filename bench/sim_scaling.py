"""Simulator scaling: ms per control step and env-steps/s per (device, delta_mm, num_envs).

Every configuration runs in its own process, so its peak RSS is its own and a crash in one does not
end the sweep. Also measures a cold start (empty Warp kernel cache: compiling) against a warm one.
The paper's Isaac Gym figures (GPU) are saved beside ours for reference.

    python bench/sim_scaling.py                      # CPU sweep, 70..10 mm x {1, 16, 64}
    python bench/sim_scaling.py --device cuda --num-envs 1 16 64 256 1024
    python bench/sim_scaling.py --delta-mm 70 40 --num-envs 1 16 --no-cold
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_ISAAC_GYM_MS_PER_STEP = {"70": 0.24, "10": 5.03}


def worker(delta_mm: float, num_envs: int, device: str, min_steps: int, budget_s: float) -> dict:
    import resource

    import torch

    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = ExcavationEnv(ExcavationEnvConfig(num_envs=num_envs, delta_mm=delta_mm, device=device))
    gen = torch.Generator().manual_seed(0)
    high = env.action_high.cpu()

    def act():
        return ((torch.rand(num_envs, 4, generator=gen) * 2 - 1) * high).to(env.device)

    env.step(act())  # first step: lazy kernel loads, allocations
    startup = time.perf_counter() - t0
    steps, t1 = 0, time.perf_counter()
    while steps < min_steps or (time.perf_counter() - t1 < budget_s and steps < 200):
        env.step(act())
        steps += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    el = time.perf_counter() - t1
    return {
        "device": device,
        "delta_mm": delta_mm,
        "num_envs": num_envs,
        "particles_per_env": float(env.particles_per_env.mean()),
        "steps_timed": steps,
        "ms_per_step": 1000 * el / steps,
        "env_steps_per_s": num_envs * steps / el,
        "physics_substeps_per_step": env.cfg.physics.substeps,
        "startup_s": startup,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        # Host memory only; the GPU's own allocations are not in peak_rss_mb.
        "accelerator": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None,
        "torch": torch.__version__,
    }


def run_worker(args, delta, n, extra_env=None) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", str(delta), str(n), "--device", args.device,
           "--min-steps", str(args.min_steps), "--budget-s", str(args.budget_s)]
    env = dict(os.environ, **(extra_env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout_s)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print(f"  delta {delta} x {n}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for n in sorted({r["num_envs"] for r in rows}):
        sel = sorted((r for r in rows if r["num_envs"] == n), key=lambda r: r["delta_mm"])
        axes[0].plot([r["delta_mm"] for r in sel], [r["env_steps_per_s"] for r in sel], "o-", label=f"{n} envs")
        axes[1].plot([r["delta_mm"] for r in sel], [r["ms_per_step"] for r in sel], "o-", label=f"{n} envs")
    axes[0].axhline(400, color="gray", ls="--", lw=0.8, label="target 400 @ 70 mm, 64 envs")
    axes[1].plot([70, 10], [PAPER_ISAAC_GYM_MS_PER_STEP["70"], PAPER_ISAAC_GYM_MS_PER_STEP["10"]], "k*--", label="paper (Isaac Gym, GPU)")
    for ax, label in zip(axes, ("env-steps / s", "ms per control step (all envs)")):
        ax.set_xlabel("resolution delta (mm)")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Newton excavation env on {rows[0]['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--delta-mm", type=float, nargs="+", default=[70, 60, 50, 40, 30, 20, 10])
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--device", default="cpu")
    p.add_argument("--min-steps", type=int, default=3, help="timed control steps at least (default 3)")
    p.add_argument("--budget-s", type=float, default=5.0, help="time each configuration about this long (default 5 s)")
    p.add_argument("--timeout-s", type=float, default=900.0, help="give up on one configuration after this (default 900 s)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start (empty kernel cache) measurement")
    p.add_argument("--out", default=str(RESULTS / "sim_scaling.json"))
    p.add_argument("--worker", nargs=2, metavar=("DELTA_MM", "NUM_ENVS"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        print(json.dumps(worker(float(args.worker[0]), int(args.worker[1]), args.device, args.min_steps, args.budget_s)))
        return 0

    from tqdm import tqdm

    rows = []
    combos = [(d, n) for d in args.delta_mm for n in args.num_envs]
    for d, n in tqdm(combos, desc="sim scaling"):
        r = run_worker(args, d, n)
        if r:
            rows.append(r)
            tqdm.write(f"{args.device} {d:4.0f} mm x {n:5d} envs: {r['ms_per_step']:9.1f} ms/step  {r['env_steps_per_s']:8.1f} env-steps/s  "
                       f"{r['particles_per_env']:6.0f} particles/env  {r['peak_rss_mb']:6.0f} MB")
    start = {}
    if not args.no_cold:
        with tempfile.TemporaryDirectory() as cold_cache:
            cold = run_worker(args, 70, 1, {"EXCAVATION_WARP_CACHE": cold_cache})
        warm = run_worker(args, 70, 1)
        if cold and warm:
            start = {"cold_start_s": cold["startup_s"], "warm_start_s": warm["startup_s"], "config": "70 mm, 1 env, first step included"}
            print(f"start-up: cold (empty kernel cache) {cold['startup_s']:.1f} s, warm {warm['startup_s']:.1f} s")
    out = {
        "benchmark": "sim_scaling",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "note": "each row in its own process; random bounded actions; ms_per_step covers all envs of one control step",
        "paper_isaac_gym_ms_per_step": PAPER_ISAAC_GYM_MS_PER_STEP,
        "target": "env_steps_per_s >= 400 at 70 mm with 64 envs (CPU)",
        "start_up": start,
        "rows": rows,
    }
    target = [r for r in rows if r["delta_mm"] == 70 and r["num_envs"] == 64 and r["device"] == "cpu"]
    if target:
        out["target_met"] = target[0]["env_steps_per_s"] >= 400
    path = Path(args.out)
    if path.exists() and args.device != "cpu":
        # Keep the CPU rows when adding a CUDA sweep to the same file.
        old = json.loads(path.read_text())
        out["rows"] = [r for r in old.get("rows", []) if r["device"] != args.device] + rows
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    if rows:
        plot(rows, path.with_suffix(".png"))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
