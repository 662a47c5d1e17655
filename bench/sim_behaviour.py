"""What the simulator does, before and after a change: scripted-scoop success per resolution and the
shipped policies' success, each for the current code and a baseline revision, on the same seeds.

Episodes come in rounds: every round builds a fresh env (``--num-envs`` worlds, seed ``--seed`` +
round, so fresh soil and rock geometry), resets it and counts each world's first episode only, so
quick successes cannot crowd out slow time-outs. Domain randomisation is on. The baseline runs in a
temporary git worktree of ``--baseline-rev`` with this script as its worker, so both codes are
counted by the same loop. Rows carry the revision, the machine and a Wilson 95 % interval; the
summary compares each pair with a two-proportion z-test.

    python bench/sim_behaviour.py --baseline-rev 6fa0876
    python bench/sim_behaviour.py --scripted 70 20 --policy default:20 --episodes 64 --policy-episodes 128
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provenance import revision  # noqa: E402  (bench/ is the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def wilson(k: int, n: int) -> list[float]:
    from excavation_sim.scripted import wilson_interval

    return list(wilson_interval(k, n))


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of 'same success probability' (pooled z-test)."""
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(k1 / n1 - k2 / n2) / se
    return math.erfc(z / math.sqrt(2))


def worker(job: str, delta_mm: float, episodes: int, num_envs: int, seed: int) -> dict:
    import torch

    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv
    from excavation_sim.scripted import ScriptedScoop

    torch.set_num_threads(1)
    policy = None
    if job != "scripted":
        policy = torch.jit.load(str(ROOT / "policies" / job / "policy.pt"), map_location="cpu")
    successes, steps, t0 = [], 0, time.perf_counter()
    rnd = 0
    while len(successes) < episodes:
        n = min(num_envs, episodes - len(successes))
        env = ExcavationEnv(ExcavationEnvConfig(num_envs=n, delta_mm=delta_mm, seed=seed + rnd))
        ctrl = ScriptedScoop(n, env.device)
        obs = env.reset()
        first = torch.zeros(n, dtype=torch.bool)
        ok = torch.zeros(n, dtype=torch.bool)
        for _ in range(env.max_episode_steps + 1):
            with torch.no_grad():
                act = ctrl.act(obs) if policy is None else policy(obs.float())
            res = env.step(act)
            steps += 1
            ctrl.reset(res.done)
            new = res.done & ~first
            ok[new] = res.info["episode_success"][new]
            first |= res.done
            obs = res.obs
            if first.all():
                break
        successes += ok[first].tolist()
        env.close()
        rnd += 1
    return {"job": job, "delta_mm": delta_mm, "episodes": len(successes), "successes": int(sum(successes)),
            "rounds": rnd, "control_steps": steps, "wall_s": time.perf_counter() - t0}


def run(args, code: str, tree: Path, job: str, delta: float, episodes: int) -> dict | None:
    cmd = [sys.executable, str(ROOT / "bench" / "sim_behaviour.py"), "--worker", job, str(delta), str(episodes),
           "--num-envs", str(args.num_envs), "--seed", str(args.seed)]
    env = dict(os.environ)
    if code == "baseline":
        env["PYTHONPATH"] = os.pathsep.join(str(tree / p) for p in ("sim", "ros2_ws/src/excavation_contract"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            row = json.loads(line)
            row.update(code=code, revision=revision(tree), success_rate=row["successes"] / row["episodes"],
                       success_ci95=wilson(row["successes"], row["episodes"]),
                       machine={"platform": platform.platform(), "cpu_count": os.cpu_count()})
            print(f"{code:8s} {job:18s} {delta:4.0f} mm: {row['successes']}/{row['episodes']} "
                  f"({row['success_rate']:.2f}, CI {row['success_ci95'][0]:.2f}-{row['success_ci95'][1]:.2f}) in {row['wall_s']:.0f} s", flush=True)
            return row
    print(f"{code} {job} {delta}: failed\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
    return None


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for cur in (r for r in rows if r["code"] == "current"):
        base = next((r for r in rows if r["code"] == "baseline" and r["job"] == cur["job"] and r["delta_mm"] == cur["delta_mm"]), None)
        if base is None:
            continue
        p = two_proportion_p(cur["successes"], cur["episodes"], base["successes"], base["episodes"])
        out.append({"job": cur["job"], "delta_mm": cur["delta_mm"], "baseline_rate": base["success_rate"], "current_rate": cur["success_rate"],
                    "difference": cur["success_rate"] - base["success_rate"], "p_value_same_rate": p,
                    "finding": ("no significant change" if p >= 0.05 else ("better" if cur["success_rate"] > base["success_rate"] else "worse"))
                    + f" (p = {p:.3f}, two-proportion z-test)"})
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({(r["job"], r["delta_mm"]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
    for off, code in ((-0.18, "baseline"), (0.18, "current")):
        for i, key in enumerate(labels):
            r = next((r for r in rows if r["code"] == code and (r["job"], r["delta_mm"]) == key), None)
            if r:
                lo, hi = r["success_ci95"]
                ax.errorbar(i + off, r["success_rate"], yerr=[[r["success_rate"] - lo], [hi - r["success_rate"]]], fmt="o" if code == "current" else "s",
                            color="C1" if code == "current" else "C0", capsize=4, label=code if i == 0 else None)
    ax.set_xticks(range(len(labels)), [f"{j}\n{d:g} mm" for j, d in labels], fontsize=8)
    ax.set_ylabel("success (Wilson 95 % CI)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-rev", help="also run this git revision (in a temporary worktree)")
    p.add_argument("--scripted", type=float, nargs="*", default=[70, 20, 10], help="scripted-scoop resolutions, mm (default 70 20 10)")
    p.add_argument("--policy", nargs="*", default=["default:20", "prpd_scratch_10mm:10"], help="NAME:DELTA_MM of shipped bundles under policies/")
    p.add_argument("--episodes", type=int, default=64, help="scripted episodes per resolution (default 64)")
    p.add_argument("--policy-episodes", type=int, default=128, help="episodes per policy (default 128)")
    p.add_argument("--num-envs", type=int, default=32, help="worlds per round (default 32)")
    p.add_argument("--seed", type=int, default=7001, help="seed of round 0 (default 7001: never used to train or evaluate the shipped bundles)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once (default: the cores)")
    p.add_argument("--out", default=str(RESULTS / "sim_behaviour.json"))
    p.add_argument("--worker", nargs=3, metavar=("JOB", "DELTA_MM", "EPISODES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]), int(args.worker[2]), args.num_envs, args.seed)))
        return 0

    trees = [("current", ROOT)]
    tmp = None
    if args.baseline_rev:
        tmp = Path(tempfile.mkdtemp(prefix="sim-behaviour-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp), args.baseline_rev], check=True, capture_output=True)
        trees.append(("baseline", tmp))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(tmp / p) for p in ("sim", "ros2_ws/src/excavation_contract")))
        where = subprocess.run([sys.executable, "-c", "import excavation_sim; print(excavation_sim.__file__)"],
                               capture_output=True, text=True, env=env).stdout.strip()
        if not where.startswith(str(tmp)):
            raise SystemExit(f"baseline revision {args.baseline_rev} does not import from its worktree (got {where!r})")
    tasks = [(c, t, "scripted", d, args.episodes) for d in args.scripted for c, t in trees]
    for spec in args.policy:
        name, d = spec.split(":")
        tasks += [(c, t, name, float(d), args.policy_episodes) for c, t in trees]
    # Finest and longest first, so the two slowest runs do not end up alone at the tail.
    tasks.sort(key=lambda t: (t[3], -t[4], t[0]))
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = [r for r in pool.map(lambda a: run(args, *a), tasks) if r]
    finally:
        if tmp is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp)], capture_output=True)
    out = {"benchmark": "sim_behaviour", "command": "python bench/sim_behaviour.py " + " ".join(sys.argv[1:]),
           "note": "domain randomisation on; each round a fresh env (seed + round); each world's first episode counted",
           "rows": rows, "summary": summary(rows)}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    if rows:
        plot(rows, path.with_suffix(".png"))
    for s in out["summary"]:
        print(f"{s['job']} {s['delta_mm']:g} mm: baseline {s['baseline_rate']:.2f} -> current {s['current_rate']:.2f}: {s['finding']}")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
