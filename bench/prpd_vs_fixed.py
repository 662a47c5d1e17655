"""PRPD vs fixed-fine PPO vs direct coarse-to-fine transfer, plus the alpha 0 / 1 / dynamic ablation.

Every method trains from the same seed under the same sample budget, each in its own process,
from scratch by default (as in the paper). A method "reaches" the finest resolution when its
training success there (over the last ``prpd.advance_window_episodes`` episodes, the scheduler's own
criterion) hits ``tau``; the wall time and samples until then are compared (a
method that never reaches it is charged what it spent and flagged: its true time is longer, so a
ratio against it is an upper bound). Saves ``bench/results/prpd_vs_fixed.json`` and a PNG of success
over wall time.

A run can be resumed (``--resume``): every method checkpoints every ``--checkpoint-every``
iterations and keeps its rows in ``<log-root>/<method>/bench_rows.jsonl``; finished methods are
read back, the others continue from their last checkpoint with their wall clock continuing from
that iteration's (work after the checkpoint is redone and not charged twice). This lets the 70 -> 10
mm CPU profile, hours at 10 mm from scratch, be measured over several sittings.

    python bench/prpd_vs_fixed.py --jobs 2              # CPU profile, 70 -> 10 mm from scratch (see --help)
    python bench/prpd_vs_fixed.py --jobs 2 --resume     # the next sitting of the same run
    python bench/prpd_vs_fixed.py --resolutions 70 60 50 40 30 20 10 --num-envs 128 --steps 128 \\
        --device cuda --budget-iterations 2000          # the paper's profile on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import threading
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROFILE_FILE = "bench_profile.json"
COMMANDS_FILE = "bench_commands.jsonl"
# arguments that define what is measured: a resumed run must use the same ones
PROFILE_ARGS = ("env", "resolutions", "num_envs", "steps", "tau", "budget_iterations", "max_stage_iterations", "seed",
                "demo_steps", "dagger_rounds", "demo_noise", "critic_warmup", "torch_threads", "device", "jobs")


from prpd_stats import aggregate, strip_private, summary_lines  # noqa: E402
from provenance import revision  # noqa: E402
from prpd_trial import machine, trial_row  # noqa: E402
from prpd_trial import ROWS_FILE, first_reach, make_config as _make_config, method_overrides, read_rows, run_trial, write_rows  # noqa: E402,F401


def worker(args) -> None:
    """One method: train (or continue from its checkpoint), print and keep one JSON row per iteration."""

    def on_row(row, runner):
        try:
            print("ROW " + json.dumps(row), flush=True)
        except BrokenPipeError:
            pass  # the parent is gone; the rows file is the record, and --resume / --report-only read it

    run_trial(args, args.worker, Path(args.log_root) / args.worker, resume=args.resume,
              sitting_iterations=args.sitting_iterations or None, on_row=on_row)


def make_config(args):
    return _make_config(args, args.worker)


def _nan(x):
    return float("nan") if x is None else x


def summarise(method: str, rows: list[dict], finest: float, tau: float, budget_samples: int) -> dict:
    hit = first_reach(rows, finest, tau)
    at_finest = [r["success_rate"] for r in rows if r["resolution_mm"] == finest and r["success_rate"] is not None]
    last = rows[-1] if rows else {"wall_s": float("nan"), "samples": budget_samples}
    return {
        "method": method,
        "reached_tau_at_finest": hit is not None,
        "wall_s_to_tau": hit["wall_s"] if hit else last["wall_s"],
        "samples_to_tau": hit["samples"] if hit else last["samples"],
        "success_at_finest": max(at_finest[-5:]) if at_finest else 0.0,
        "iterations": len(rows),
        "curve": [{"wall_s": r["wall_s"], "samples": r["samples"], "resolution_mm": r["resolution_mm"], "success_rate": _nan(r["success_rate"]), "alpha": r.get("alpha"), "advance_success_rate": r.get("advance_success_rate"),
                   "sampling_s": r.get("sampling_s")} for r in rows],
    }


def plot(results: dict, path: Path, finest: float, tau: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, res in results.items():
        xs = [c["wall_s"] / 60 for c in res["curve"]]
        ys = [c["success_rate"] if c["resolution_mm"] == finest else float("nan") for c in res["curve"]]
        ax.plot(xs, ys, marker="o", markersize=3, label=f"{name} (at {finest:g} mm)")  # markers: one iteration is a point
        stages = [c for c in res["curve"] if c["resolution_mm"] != finest]
        if stages:
            ax.plot([c["wall_s"] / 60 for c in stages], [c["success_rate"] for c in stages], ":", alpha=0.5, color=ax.lines[-1].get_color())
    if tau is not None:
        ax.axhline(tau, color="grey", linestyle="--", linewidth=0.8, label=f"tau {tau:g}")
    ax.set_xlabel("wall time (min)")
    ax.set_ylabel("training success rate")
    ax.set_title("success at the finest resolution over wall time (dotted: coarser stages)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", type=float, nargs="+", default=[70, 60, 50, 40, 30, 20, 10],
                   help="PRPD schedule; the last is the 'fine' one (default 70 .. 10, the paper's: on a 2-core CPU at 32 envs "
                        "a 20 mm step costs 6x a 70 mm one and 70 -> 20 from scratch gave a ratio of 0.41 only; a 10 mm step "
                        "costs 71x, and fixed-fine at 10 mm takes hours, so run it in sittings with --resume)")
    p.add_argument("--methods", nargs="+", default=["prpd", "fixed_fine", "direct", "alpha0", "alpha1"])
    p.add_argument("--num-envs", type=int, default=32, help="parallel envs (default 32; with 16 the warm start had too few demonstrations)")
    p.add_argument("--steps", type=int, default=64, help="steps per iteration (default 64)")
    p.add_argument("--tau", type=float, default=0.8, help="success rate that counts as reached (default 0.8 on the CPU profile; paper 0.95)")
    p.add_argument("--budget-iterations", type=int, default=300, help="iteration budget per method, the same for all (default 300)")
    p.add_argument("--max-stage-iterations", type=int, default=100, help="PRPD's per-stage cap I (default 100 on the CPU profile; paper 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--demo-steps", type=int, default=0,
                   help="warm start of every method (at its first resolution): steps of scripted-scoop demonstrations "
                        "for behaviour cloning (default 0: from scratch, as in the paper; with a warm start every method "
                        "reaches tau in its first PPO iteration and the comparison only measures where the warm start is paid)")
    p.add_argument("--dagger-rounds", type=int, default=1, help="DAgger rounds of the warm start (default 1)")
    p.add_argument("--demo-noise", type=float, default=0.1,
                   help="exploration std after the warm start (normalised actions; default 0.1: at 0.3 the training "
                        "success, which decides the stage changes, stayed ~0.3 below the deterministic policy's)")
    p.add_argument("--critic-warmup", type=int, default=10, help="critic-only iterations after the warm start (default 10)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1,
                   help="methods trained at once (default 1: wall times comparable on a small CPU; on a GPU machine with "
                        "many cores the processes share the GPU, so compare wall times only between runs with the same --jobs)")
    p.add_argument("--method-timeout-s", type=float, default=0,
                   help="stop a method after this many seconds (0: no limit); a stopped method keeps its rows and counts "
                        "as not reached unless it reached tau before")
    p.add_argument("--checkpoint-every", type=int, default=2,
                   help="checkpoint every this many iterations, for --resume (default 2: a 10 mm iteration is ~5 min on a CPU)")
    p.add_argument("--sitting-iterations", type=int, default=0,
                   help="stop each method after this many more iterations, checkpointed (0: no limit); continue with --resume")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the JSON and plot from the rows kept in --log-root (e.g. after stopping a run)")
    p.add_argument("--env", choices=["excavation", "toy", "point"], default="excavation",
                   help="env to train on (default: the Newton simulator; toy envs check the bench itself in seconds)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --log-root: finished methods are read back, the others resume from their "
                        "last checkpoint; the profile arguments must be the same as the first sitting's")
    p.add_argument("--log-root", default="runs/bench_prpd")
    p.add_argument("--out", default=str(RESULTS / "prpd_vs_fixed.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    budget_samples = args.budget_iterations * args.num_envs * args.steps
    finest = args.resolutions[-1]
    results = {}
    log_root = Path(args.log_root)
    profile = {k: getattr(args, k) for k in PROFILE_ARGS}
    profile_path = log_root / PROFILE_FILE
    if (args.resume or args.report_only) and profile_path.exists():
        first = json.loads(profile_path.read_text())
        changed = {k: (first.get(k), v) for k, v in profile.items() if first.get(k) != v}
        if changed:
            print(f"--resume: {log_root} was measured with other settings (first sitting, now): {changed}; "
                  "use the same arguments or another --log-root", file=sys.stderr)
            return 2
    log_root.mkdir(parents=True, exist_ok=True)
    profile_path.write_text(json.dumps(profile, indent=2))
    # every sitting's command, so the result names how it was produced
    with (log_root / COMMANDS_FILE).open("a") as f:
        f.write(json.dumps({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "command": "python bench/prpd_vs_fixed.py " + shlex.join(sys.argv[1:])}) + "\n")

    def run(method: str) -> None:
        rows_path = log_root / method / ROWS_FILE
        rows, end = read_rows(rows_path) if (args.resume or args.report_only) else ([], None)
        timed_out = threading.Event()
        spent = rows[-1]["wall_s"] if rows else 0.0
        left = args.method_timeout_s - spent if args.method_timeout_s > 0 else math.inf
        if args.report_only or end in ("finished", "budget") or left <= 0:
            state = end or ("time limit" if left <= 0 else "not finished")
            print(f"  {method:10s} read back: {len(rows)} iterations, {state}", flush=True)
        else:
            cmd = [sys.executable, __file__, "--worker", method] + [a for a in sys.argv[1:] if a != "--worker"]
            with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
                # SIGTERM: the runner finishes its iteration and checkpoints, so a timed-out method can resume
                timer = threading.Timer(left, lambda: (timed_out.set(), proc.terminate())) if math.isfinite(left) else None
                if timer:
                    timer.start()
                try:
                    for line in proc.stdout:
                        if line.startswith("ROW "):
                            row = json.loads(line[4:])
                            print(f"  {method:10s} it {row['iteration']:4d}  {row['resolution_mm']:4.0f} mm  success {_nan(row['success_rate']):.2f}  "
                                  f"{row['wall_s'] / 60:6.1f} min", flush=True)
                finally:
                    if timer:
                        timer.cancel()
            rows, end = read_rows(rows_path)
        if timed_out.is_set() or (left <= 0 and end not in ("finished", "budget")):
            end = "time_limit"
        results[method] = summarise(method, rows, finest, args.tau, budget_samples)
        results[method]["end"] = end or "killed"
        trials[method] = trial_row(method, args.seed, settings, rows, end or "killed", machine=machine(), revision=rev)

    trials: dict[str, dict] = {}
    rev = revision()
    settings = {"tau": args.tau, "resolutions": args.resolutions, "num_envs": args.num_envs, "steps": args.steps,
                "budget_iterations": args.budget_iterations, "max_stage_iterations": args.max_stage_iterations}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(run, args.methods))
    results = {m: results[m] for m in args.methods}
    out = {
        "benchmark": "prpd_vs_fixed",
        "profile": {
            "device": args.device, "resolutions_mm": args.resolutions, "finest_mm": finest, "num_envs": args.num_envs,
            "steps_per_iteration": args.steps, "tau": args.tau, "budget_iterations": args.budget_iterations,
            "max_stage_iterations": args.max_stage_iterations, "seed": args.seed, "jobs": args.jobs,
            "method_timeout_s": args.method_timeout_s,
            "warm_start": ({"demo_steps": args.demo_steps, "dagger_rounds": args.dagger_rounds, "critic_warmup_iterations": args.critic_warmup,
                            "init_noise_std": args.demo_noise,
                            "note": "every method clones the scripted scoop at its own first resolution; its cost counts in wall time"}
                           if args.demo_steps > 0 else None),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        },
        "methods": {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in results.items()},
        "success_at_finest": {k: v["success_at_finest"] for k, v in results.items()},
        "curves": {k: v["curve"] for k, v in results.items()},
        # the same trial rows and censoring-aware summary as bench/prpd_sweep.py (one seed: one trial a method)
        "trials": [trials[m] for m in args.methods],
        "summary": strip_private(summary := aggregate([trials[m] for m in args.methods])),
        "statements": summary_lines(summary),
        "revision": rev,
        "sittings": [json.loads(line) for line in (log_root / COMMANDS_FILE).read_text().splitlines() if line.strip()],
    }
    unfinished = [m for m, v in results.items() if v["end"] in ("stopped", "killed")]
    out["complete"] = not unfinished
    if unfinished:
        out["unfinished_methods"] = unfinished
    # The ratio of PRPD to fixed-fine is in summary (prpd_stats: Kaplan-Meier medians, a bound when censored).
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    plot(results, path.with_suffix(".png"), finest, args.tau)
    for k, v in out["methods"].items():
        print(f"{k:11s} reached={v['reached_tau_at_finest']!s:5s} wall {v['wall_s_to_tau'] / 60:6.1f} min  samples {v['samples_to_tau']:8d}  success@finest {v['success_at_finest']:.2f}")
    for line in out["statements"]:
        print(line)
    print(f"saved {path}")
    if unfinished:
        print(f"not finished yet: {', '.join(unfinished)}; continue with the same arguments and --resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
