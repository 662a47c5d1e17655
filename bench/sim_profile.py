"""Where a control step's time goes, per resolution: Warp launches per kernel, their share of the
step, and the share spent outside launches (Python, torch glue).

On the CPU a Warp launch runs its kernel before it returns, so the wall time of ``wp.launch`` is the
kernel's time plus its launch overhead. Each configuration runs in its own process.

    python bench/sim_profile.py --delta-mm 70 20 10 --num-envs 64 --steps 20 10 3
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from provenance import revision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def worker(delta_mm: float, num_envs: int, steps: int) -> dict:
    import torch
    import warp as wp

    import newton._src.solvers.xpbd.solver_xpbd as xpbd_module
    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv

    torch.set_num_threads(1)
    env = ExcavationEnv(ExcavationEnvConfig(num_envs=num_envs, delta_mm=delta_mm))
    gen = torch.Generator().manual_seed(0)
    act = lambda: (torch.rand(num_envs, 4, generator=gen) * 2 - 1) * env.action_high  # noqa: E731
    env.step(act())
    total, count = collections.Counter(), collections.Counter()
    original = wp.launch

    def timed(kernel, *a, **k):
        t = time.perf_counter()
        out = original(kernel, *a, **k)
        name = getattr(kernel, "key", str(kernel))
        total[name] += time.perf_counter() - t
        count[name] += 1
        return out

    # Newton's modules hold their own reference to warp; patch the ones a step goes through.
    patched = [wp, xpbd_module.wp]
    import newton._src.sim.collide as collide_module

    patched.append(collide_module.wp)
    for m in patched:
        m.launch = timed
    t0 = time.perf_counter()
    try:
        for _ in range(steps):
            env.step(act())
    finally:
        for m in patched:
            m.launch = original
    wall = time.perf_counter() - t0
    kernels = [{"kernel": k, "share": v / wall, "launches_per_step": count[k] / steps, "us_per_launch": 1e6 * v / count[k]}
               for k, v in total.most_common()]
    return {"delta_mm": delta_mm, "num_envs": num_envs, "steps": steps, "ms_per_step": 1000 * wall / steps,
            "launches_per_step": sum(count.values()) / steps, "launch_share": sum(total.values()) / wall,
            "awake_fraction": float(env._sleep.awake.float().mean()) if env.cfg.physics.sleep else 1.0,
            "kernels": kernels[:12]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for r in rows:
        names += [k["kernel"] for k in r["kernels"][:4] if k["kernel"] not in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(len(rows))
    bottom = [0.0] * len(rows)
    for name in names:
        share = [next((k["share"] for k in r["kernels"] if k["kernel"] == name), 0.0) for r in rows]
        ax.bar(x, share, bottom=bottom, label=name[:40])
        bottom = [b + s for b, s in zip(bottom, share)]
    rest = [r["launch_share"] - b for r, b in zip(rows, bottom)]
    ax.bar(x, rest, bottom=bottom, color="lightgray", label="other launches")
    ax.bar(x, [1 - r["launch_share"] for r in rows], bottom=[r["launch_share"] for r in rows], color="white", edgecolor="gray", hatch="//", label="outside launches")
    ax.set_xticks(list(x), [f"{r['delta_mm']:g} mm\n{r['ms_per_step']:.0f} ms/step" for r in rows])
    ax.set_ylabel("share of a control step")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--delta-mm", type=float, nargs="+", default=[70, 20, 10])
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--steps", type=int, nargs="+", default=[20, 10, 3], help="timed steps per resolution (default 20 10 3)")
    p.add_argument("--out", default=str(RESULTS / "sim_profile.json"))
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(float(args.worker[0]), int(args.worker[1]), int(args.worker[2]))))
        return 0
    rev = revision()
    rows = []
    steps = args.steps + [args.steps[-1]] * (len(args.delta_mm) - len(args.steps))
    for d, n in zip(args.delta_mm, steps):
        load = os.getloadavg()[0]
        proc = subprocess.run([sys.executable, __file__, "--worker", str(d), str(args.num_envs), str(n)], capture_output=True, text=True)
        line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith("{")), None)
        if line is None:
            print(f"{d} mm failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(line)
        row.update(revision=rev, load_avg_1min_before=load, machine={"platform": platform.platform(), "cpu_count": os.cpu_count()})
        rows.append(row)
        top = ", ".join(f"{k['kernel'][:40]} {100 * k['share']:.0f} %" for k in row["kernels"][:3])
        print(f"{d:4.0f} mm x {args.num_envs}: {row['ms_per_step']:.1f} ms/step, {row['launches_per_step']:.0f} launches, "
              f"{100 * row['launch_share']:.0f} % in launches; {top}")
    if rows:
        plot(rows, Path(args.out).with_suffix(".png"))
    out = {"benchmark": "sim_profile", "command": "python bench/sim_profile.py " + " ".join(sys.argv[1:]), "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
