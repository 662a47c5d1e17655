"""Simulator speed: env-steps/s, particle-substeps/s and the distance to a roofline, per
(code, device, delta_mm, num_envs, shards), the code of another revision measured in the same sitting.

Every configuration runs in its own process (its peak RSS is its own; a crash does not end the
sweep). ``--baseline-rev REV`` checks REV out into a temporary git worktree and times it with that
revision's own bench worker, alternating with the current code configuration by configuration, so
both see the same machine; each row records the revision it ran, the machine and the load average.

Roofline: the particle-particle contact pass dominates a fine step (``bench/results`` rows carry
the measured contacts per particle). Per awake particle and solver iteration it reads its own state
and each neighbour's (position, velocity, inverse mass, radius, flags: 36 bytes) and spends ~40
flops per neighbour (distance, normal, friction). The roofline is the particle-iterations per second
this core could do if the pass ran at the measured single-core memory bandwidth or the measured
single-core float32 peak, whichever binds; ``roofline_fraction`` is the measured rate over it.

    python bench/sim_scaling.py --delta-mm 10 20 70 --num-envs 64 --shards 1 2 --baseline-rev HEAD~5
    python bench/sim_scaling.py --device cuda --delta-mm 70 20 10 --num-envs 1024 4096 --no-cold
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

from provenance import revision  # noqa: E402  (bench/ is the script's own folder)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PAPER_ISAAC_GYM_MS_PER_STEP = {"70": 0.24, "10": 5.03}
BYTES_PER_NEIGHBOUR = 36
FLOPS_PER_NEIGHBOUR = 40
TARGETS = {"10": 100.0, "70": 5000.0}  # env-steps/s at 64 envs on a 2-core CPU (the speed issue)


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version()}


def contacts_per_particle(env, world: int = 0) -> float:
    """Mean neighbours within contact distance of the awake soil of one world (all soil if none sleeps)."""
    import torch

    sl = slice(env.scene.worlds[world].particle_start, env.scene.worlds[world].particle_start + env.scene.worlds[world].particle_count)
    q = env._pq[0][sl]
    soil = env._in_episode[sl]
    awake = env._sleep.awake[sl] if env.cfg.physics.sleep else soil
    if int(awake.sum()) == 0 or int(soil.sum()) < 2:
        return 0.0
    d = torch.cdist(q[awake], q[soil])
    # Newton's particle-particle contact (solve_particle_particle_contacts): d <= r_i + r_j + cohesion.
    # (Until 2026-12-04 this used the particle-shape gap as well, 15 mm at 10 mm: ~3x the neighbours.)
    reach = 2 * env.particle_radius + float(env.model.particle_cohesion)
    return float(((d < reach).sum(dim=1) - 1).float().mean())


def worker(delta_mm: float, num_envs: int, device: str, min_steps: int, budget_s: float, shards: int, sleep: bool) -> dict:
    import resource

    import torch

    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv, make_env

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = ExcavationEnvConfig(num_envs=num_envs, delta_mm=delta_mm, device=device, shards=shards)
    cfg.physics.sleep = sleep
    env = make_env(delta_mm, cfg) if shards > 1 else ExcavationEnv(cfg)
    gen = torch.Generator().manual_seed(0)
    high = env.action_high.cpu()

    def act():
        return ((torch.rand(num_envs, 4, generator=gen) * 2 - 1) * high).to(env.device)

    env.step(act())  # first step: lazy kernel loads, allocations
    startup = time.perf_counter() - t0
    steps, awake, t1 = 0, [], time.perf_counter()
    while steps < min_steps or (time.perf_counter() - t1 < budget_s and steps < 200):
        env.step(act())
        steps += 1
        if shards == 1:
            awake.append(float(env._sleep.awake.float().mean()) if env.cfg.physics.sleep else 1.0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    el = time.perf_counter() - t1
    row = {
        "device": device,
        "delta_mm": delta_mm,
        "num_envs": num_envs,
        "shards": shards,
        "sleep": sleep,
        "particles_per_env": float(env.particles_per_env.mean()),
        "steps_timed": steps,
        "ms_per_step": 1000 * el / steps,
        "env_steps_per_s": num_envs * steps / el,
        "physics_substeps_per_step": cfg.physics.substeps,
        "solver_iterations": cfg.physics.solver_iterations,
        "startup_s": startup,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        # Host memory of the parent only; shards and the GPU's own allocations are not in it.
        "accelerator": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None,
        "torch": torch.__version__,
    }
    if shards == 1:
        row["awake_fraction"] = sum(awake) / max(1, len(awake))
        row["contacts_per_particle"] = contacts_per_particle(env)
        row["settle_steps"] = getattr(env, "settle_steps", None)
    env.close()
    return row


def core_peaks() -> dict:
    """Single-core float32 peak (matmul) and memory bandwidth (large copy), measured here."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    a = torch.rand(1024, 1024)
    torch.mm(a, a)
    t = time.perf_counter()
    for _ in range(8):
        torch.mm(a, a)
    flops = 8 * 2 * 1024**3 / (time.perf_counter() - t)
    x = np.ones(64 * 1024 * 1024 // 4, dtype=np.float32)
    y = np.empty_like(x)
    np.copyto(y, x)
    t = time.perf_counter()
    for _ in range(8):
        np.copyto(y, x)
    bw = 8 * 2 * x.nbytes / (time.perf_counter() - t)
    return {"flops_per_s": flops, "bytes_per_s": bw}


def roofline(row: dict, peaks: dict) -> None:
    """Add particle-substeps/s and the roofline of the contact pass to a row (CPU rows with contacts)."""
    p_total = row["particles_per_env"] * row["num_envs"]
    sub_per_s = row["env_steps_per_s"] / row["num_envs"] * row["physics_substeps_per_step"]
    row["particle_substeps_per_s"] = p_total * sub_per_s
    k = row.get("contacts_per_particle")
    if row["device"] != "cpu" or not k:
        return
    cores = row.get("shards", 1)
    per_iter_bytes = BYTES_PER_NEIGHBOUR * (k + 1)
    per_iter_flops = FLOPS_PER_NEIGHBOUR * max(k, 1.0)
    rate = min(peaks["bytes_per_s"] / per_iter_bytes, peaks["flops_per_s"] / per_iter_flops) * cores
    awake = row.get("awake_fraction", 1.0) * p_total
    measured = awake * sub_per_s * row["solver_iterations"]
    row["particle_iterations_per_s"] = measured
    row["roofline_particle_iterations_per_s"] = rate
    row["roofline_fraction"] = measured / rate


def run_worker(args, tree: Path, delta: float, n: int, shards: int, code: str, extra_env=None, sleep: bool = False) -> dict | None:
    script = tree / "bench" / "sim_scaling.py"
    cmd = [sys.executable, str(script), "--worker", str(delta), str(n), "--device", args.device,
           "--min-steps", str(args.min_steps), "--budget-s", str(args.budget_s)]
    if code == "current":
        cmd += ["--shards", str(shards), "--sleep", "on" if sleep else "off"]
    env = dict(os.environ, **(extra_env or {}))
    if code != "current":
        env["PYTHONPATH"] = os.pathsep.join(str(tree / p) for p in ("sim", "ros2_ws/src/excavation_contract"))
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout_s)
    except subprocess.TimeoutExpired:
        print(f"  {code} {delta} x {n}: over {args.timeout_s} s", file=sys.stderr)
        return None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            row = json.loads(line)
            row.setdefault("shards", 1)
            row.setdefault("sleep", False)
            row.update(code=code, revision=revision(tree), load_avg_1min_before=load, load_avg_1min_after=os.getloadavg()[0],
                       machine=machine())
            return row
    print(f"  {code} {delta} x {n}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None


def baseline_tree(rev: str, stack) -> Path:
    d = Path(tempfile.mkdtemp(prefix="sim-baseline-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(d), rev], check=True, capture_output=True)
    stack.append(lambda: subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(d)], capture_output=True))
    # The baseline must import its own simulator, not this checkout's editable install.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(d / p) for p in ("sim", "ros2_ws/src/excavation_contract")))
    where = subprocess.run([sys.executable, "-c", "import excavation_sim; print(excavation_sim.__file__)"],
                           capture_output=True, text=True, env=env).stdout.strip()
    if not where.startswith(str(d)):
        raise SystemExit(f"baseline revision {rev} does not import from its worktree (got {where!r})")
    return d


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    key = lambda r: (r["code"], r["device"], r["num_envs"], r.get("shards", 1), bool(r.get("sleep")))  # noqa: E731
    for k in sorted({key(r) for r in rows}):
        code, dev, n, sh, zz = k
        sel = sorted((r for r in rows if key(r) == k), key=lambda r: r["delta_mm"])
        style = "o-" if code == "current" else "s--"
        label = f"{code} {dev} {n} envs" + (f" x{sh} shards" if sh > 1 else "") + (" sleep" if zz else "")
        axes[0].plot([r["delta_mm"] for r in sel], [r["env_steps_per_s"] for r in sel], style, label=label)
        roof = [r for r in sel if r.get("roofline_fraction")]
        if roof:
            axes[1].plot([r["delta_mm"] for r in roof], [r["particle_iterations_per_s"] for r in roof], style, label=label)
            axes[1].plot([r["delta_mm"] for r in roof], [r["roofline_particle_iterations_per_s"] for r in roof], ":", color="gray")
    for d, t in TARGETS.items():
        axes[0].plot([float(d)], [t], "k*", ms=10)
    axes[0].set_ylabel("env-steps / s (stars: targets at 64 envs)")
    axes[1].set_ylabel("awake particle-iterations / s (dotted: roofline)")
    for ax in axes:
        ax.set_xlabel("resolution delta (mm)")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Newton excavation env: speed per resolution")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--delta-mm", type=float, nargs="+", default=[70, 40, 20, 10], help="resolutions (default 70 40 20 10)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[64], help="env counts (default 64)")
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2], help="processes sharing the worlds, current code only (default 1 2)")
    p.add_argument("--sleep", nargs="+", choices=("off", "on"), default=["off", "on"],
                   help="soil sleeping (physics.sleep) for the current code (default: off and on)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--baseline-rev", help="also time this git revision, alternating with the current code")
    p.add_argument("--min-steps", type=int, default=3, help="timed control steps at least (default 3)")
    p.add_argument("--budget-s", type=float, default=5.0, help="time each configuration about this long (default 5 s)")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="give up on one configuration after this (default 1800 s)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start (empty kernel cache) measurement")
    p.add_argument("--out", default=str(RESULTS / "sim_scaling.json"))
    p.add_argument("--worker", nargs=2, metavar=("DELTA_MM", "NUM_ENVS"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        shards = args.shards[0] if args.shards else 1
        print(json.dumps(worker(float(args.worker[0]), int(args.worker[1]), args.device, args.min_steps, args.budget_s, shards,
                                args.sleep[0] == "on")))
        return 0

    from tqdm import tqdm

    cleanup: list = []
    try:
        base = baseline_tree(args.baseline_rev, cleanup) if args.baseline_rev else None
        peaks = core_peaks() if args.device == "cpu" else {}
        plan = []
        for d in args.delta_mm:
            for n in args.num_envs:
                if base is not None:
                    plan.append(("baseline", base, d, n, 1, False))
                plan += [("current", ROOT, d, n, s, z == "on") for s in args.shards for z in args.sleep]
        rows = []
        for code, tree, d, n, s, *z in tqdm(plan, desc="sim scaling"):
            r = run_worker(args, tree, d, n, s, code, sleep=bool(z and z[0]))
            if r:
                if peaks:
                    roofline(r, peaks)
                rows.append(r)
                tqdm.write(f"{code:8s} {args.device} {d:4.0f} mm x {n:5d} envs x {s} shards sleep {r['sleep']!s:5}: {r['ms_per_step']:9.1f} ms/step "
                           f"{r['env_steps_per_s']:8.1f} env-steps/s  {r['particles_per_env']:6.0f} particles/env  "
                           f"load {r['load_avg_1min_before']:.2f}")
        start = {}
        if not args.no_cold:
            with tempfile.TemporaryDirectory() as cold_cache:
                cold = run_worker(args, ROOT, 70, 1, 1, "current", {"EXCAVATION_WARP_CACHE": cold_cache})
            warm = run_worker(args, ROOT, 70, 1, 1, "current")
            if cold and warm:
                start = {"cold_start_s": cold["startup_s"], "warm_start_s": warm["startup_s"], "config": "70 mm, 1 env, first step included",
                         "revision": cold["revision"], "machine": cold["machine"]}
    finally:
        for f in reversed(cleanup):
            f()
    out = {
        "benchmark": "sim_scaling",
        "command": "python bench/sim_scaling.py " + " ".join(sys.argv[1:]),
        "note": "each row in its own process with its machine, revision and load average; random bounded actions; "
                "ms_per_step covers all envs of one control step",
        "paper_isaac_gym_ms_per_step": PAPER_ISAAC_GYM_MS_PER_STEP,
        "targets_env_steps_per_s_64_envs_cpu": TARGETS,
        "core_peaks": peaks,
        "roofline_model": {"bytes_per_neighbour": BYTES_PER_NEIGHBOUR, "flops_per_neighbour": FLOPS_PER_NEIGHBOUR},
        "start_up": start,
        "rows": rows,
    }
    path = Path(args.out)
    if path.exists():
        # Keep other devices' rows (a GPU sweep and a CPU sweep share the file); rows that do not
        # name their machine and revision came from an older script and are dropped.
        old = json.loads(path.read_text())
        kept = [r for r in old.get("rows", []) if r["device"] != args.device and "machine" in r and "revision" in r]
        out["rows"] = kept + rows
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    if out["rows"]:
        plot(out["rows"], path.with_suffix(".png"))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
