"""Closed-loop benchmark: the shipped policy through the whole simulated stack (depth camera ->
perception -> policy -> simulated UR5e -> Newton world) vs its in-training success at the same resolution.

    python bench/closed_loop_bench.py                     # policies/default, results/closed_loop.json
    python bench/closed_loop_bench.py --policy DIR --smoke  # any bundle, results/closed_loop_smoke.json

Latency: wall time from the arrival of a depth frame's CameraInfo to the arrival of the bucket target
carrying that frame's stamp (the policy puts its source frame's stamp in the target header), measured
by the episode runner. Target: p95 <= 30 ms.

Training success is read from the bundle's policy.json ``evaluation`` (the success rate recorded for
this resolution); null when the bundle records none.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LATENCY_TARGET_P95_MS = 30.0


def training_success(meta: dict, resolution_mm: float):
    """The success rate policy.json's ``evaluation`` records for ``resolution_mm`` (keys like "50",
    "50.0" or "50mm", possibly under "success_rate" or "success_rate_by_resolution")."""
    ev = meta.get("evaluation") or {}
    for key in ("success_rate", "success_rate_by_resolution", "success_by_resolution"):
        table = ev.get(key)
        if isinstance(table, dict):
            for k, v in table.items():
                try:
                    if abs(float(str(k).lower().replace("mm", "")) - resolution_mm) < 1e-6:
                        return float(v["success_rate"] if isinstance(v, dict) else v)
                except (TypeError, ValueError, KeyError):
                    continue
    return None


def success_without_observation_noise(policy_dir: str, resolution_mm: float, episodes: int, seed: int) -> float:
    """The bundle's success in the training env at ``resolution_mm`` with randomisation on except the
    observation rows of Table II (rock position noise and bias, rock-in-bucket flips, ground bias).

    The stack replaces that noise model with real perception, so this is the like-for-like reference:
    the training figure in policy.json includes +-25 mm noise and bias the stack does not add.
    """
    from dataclasses import replace

    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv
    from excavation_training.evaluation import evaluate, policy_from_file

    policy, _ = policy_from_file(policy_dir)

    def make(delta_mm: float, randomize: bool):
        cfg = ExcavationEnvConfig(num_envs=min(episodes, 32), delta_mm=delta_mm, seed=seed)
        cfg.randomization = replace(cfg.randomization, enabled=randomize, rock_obs_noise_xy=0.0, rock_obs_bias_xy=0.0,
                                    rock_in_bucket_error_rate=0.0, ground_height_bias=0.0)
        return ExcavationEnv(cfg)

    return evaluate(policy, make, resolution_mm, episodes=episodes, randomize=True).success_rate


def policy_label(path: str) -> str:
    """Repository-relative for bundles in the repository; otherwise just the folder name (no machine paths)."""
    full = os.path.abspath(path)
    return os.path.relpath(full, REPO) if full.startswith(REPO + os.sep) else os.path.basename(full.rstrip(os.sep))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default=os.path.join(REPO, "policies", "default"))
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--resolution", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-randomization", action="store_true", help="nominal scenes (training evaluated with randomisation)")
    ap.add_argument("--smoke", action="store_true", help="a check with a test bundle: saved as closed_loop_smoke.json")
    ap.add_argument("--out", default=None, help="output JSON (default bench/results/closed_loop[_smoke].json)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--reference-episodes", type=int, default=32,
                    help="episodes of the like-for-like training reference (training env, randomisation on, observation "
                         "noise off); 0 skips it (default 32)")
    ap.add_argument("launcher_args", nargs="*", help="extra launch_stack arguments (after --)")
    a = ap.parse_args(argv)

    meta_path = os.path.join(a.policy, "policy.json")
    if not os.path.isfile(meta_path):
        print(f"closed_loop_bench: no policy bundle at {a.policy}; pass --policy (and --smoke for a test bundle)", file=sys.stderr)
        return 2
    meta = json.load(open(meta_path))
    out = a.out or os.path.join(HERE, "results", "closed_loop_smoke.json" if a.smoke else "closed_loop.json")
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = os.path.join(tmp, "summary.json")
        cmd = [sys.executable, "-m", "excavation_simulation.launcher", "--policy", a.policy, "--episodes", str(a.episodes),
               "--resolution", str(a.resolution), "--seed", str(a.seed), "--summary-json", summary_path,
               "--timeout", str(a.timeout), "--quiet",
               "--no-randomization" if a.no_randomization else "--randomization", *a.launcher_args]
        t0 = time.monotonic()
        proc = subprocess.run(cmd)
        if proc.returncode != 0 or not os.path.isfile(summary_path):
            print(f"closed_loop_bench: the stack failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        s = json.load(open(summary_path))
    train = training_success(meta, a.resolution)
    ref = None
    if a.reference_episodes > 0 and not a.no_randomization:
        ref = success_without_observation_noise(a.policy, a.resolution, a.reference_episodes, a.seed)
    result = {
        "policy": policy_label(a.policy),
        "smoke": bool(a.smoke),
        "resolution_mm": a.resolution,
        "episodes": s["episodes"],
        "randomization": not a.no_randomization,
        "closed_loop_success": s["success_rate"],
        "training_success": train,
        "success_gap": None if train is None else s["success_rate"] - train,
        "training_success_without_observation_noise": ref,
        "reference_episodes": a.reference_episodes if ref is not None else 0,
        "success_gap_vs_without_observation_noise": None if ref is None else s["success_rate"] - ref,
        "steps_to_success_mean": s["steps_to_success_mean"],
        "latency_p50_ms": s["latency_p50_ms"],
        "latency_p95_ms": s["latency_p95_ms"],
        "latency_p99_ms": s["latency_p99_ms"],
        "latency_samples": s["latency_samples"],
        "latency_target_p95_ms": LATENCY_TARGET_P95_MS,
        "latency_target_met": s["latency_p95_ms"] is not None and s["latency_p95_ms"] <= LATENCY_TARGET_P95_MS,
        "results": s["results"],
        "wall_s": round(time.monotonic() - t0, 1),
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
