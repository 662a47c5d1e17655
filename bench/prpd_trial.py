"""One PRPD-bench trial (one method, one seed, one profile): the code path that ``prpd_vs_fixed.py`` and
``prpd_sweep.py`` share.

``run_trial`` trains a method (or continues it from its last checkpoint), keeps one JSON row per
iteration in ``<run_dir>/bench_rows.jsonl`` and marks how it ended; ``trial_row`` turns those rows
into the trial's result row (time to tau at the finest resolution, or the follow-up when censored).

A profile ``p`` is any object with the attributes of ``prpd_vs_fixed.py``'s arguments (an argparse
namespace, or ``types.SimpleNamespace(**settings)``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

ROWS_FILE = "bench_rows.jsonl"
METHODS = ("prpd", "fixed_fine", "direct", "alpha0", "alpha1")
# The keys of every iteration row; sampling_s is the runner's time inside env.step (counters.sim_seconds).
ROW_KEYS = ("iteration", "stage", "resolution_mm", "success_rate", "advance_success_rate", "samples", "alpha",
            "episodes", "successes", "wall_s", "sampling_s", "load1")


def method_overrides(method: str, resolutions: list[float]) -> list[str]:
    finest = resolutions[-1]
    res = lambda rs: "prpd.resolutions_mm=[" + ",".join(f"{r:g}" for r in rs) + "]"  # noqa: E731
    return {
        "prpd": [res(resolutions), "prpd.alpha_mode=dynamic"],
        "fixed_fine": [res([finest]), "prpd.finish_on_threshold=true"],
        "direct": [res([resolutions[0], finest]), "prpd.alpha_mode=dynamic"],
        "alpha0": [res(resolutions), "prpd.alpha_mode=fixed", "prpd.alpha_fixed=0.0"],
        "alpha1": [res(resolutions), "prpd.alpha_mode=fixed", "prpd.alpha_fixed=1.0"],
    }[method]


def make_config(p, method: str):
    """The training config of ``method`` under profile ``p`` (the CPU preset plus the profile)."""
    from excavation_training.config import TrainConfig, apply_preset, set_dotted

    cfg = apply_preset(TrainConfig(), "cpu")
    cfg.env.name = p.env
    items = [
        f"env.num_envs={p.num_envs}",
        f"runner.steps_per_iteration={p.steps}",
        f"runner.seed={p.seed}",
        f"runner.device={p.device}",
        f"runner.max_iterations={p.budget_iterations}",
        f"prpd.success_threshold={p.tau}",
        f"prpd.max_iterations_per_stage={p.max_stage_iterations}",
        "runner.progress=false",
        "runner.tensorboard=false",
        f"runner.checkpoint_every={p.checkpoint_every}",
        f"runner.torch_threads={p.torch_threads}",
        f"demo.steps={p.demo_steps}",
        f"demo.dagger_rounds={p.dagger_rounds}",
        f"demo.critic_warmup_iterations={p.critic_warmup}",
        f"demo.init_noise_std={p.demo_noise}",
        *method_overrides(method, list(p.resolutions)),
    ]
    if getattr(p, "advance_window", None):
        items.append(f"prpd.advance_window_episodes={p.advance_window}")
    for item in items:
        key, value = item.split("=", 1)
        set_dotted(cfg, key, value)
    return cfg.validate()


def read_rows(path: Path) -> tuple[list[dict], str | None]:
    """A method's rows so far and how it ended (None while it has not)."""
    rows, end = [], None
    if path.exists():
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if "end" in rec:
                end = rec["end"]
            else:
                rows.append(rec)
                end = None
    return rows, end


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def latest_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "latest.pt"


def run_trial(p, method: str, run_dir: str | Path, *, resume: bool = False, sitting_iterations: int | None = None,
              on_row: Callable[[dict, object], None] | None = None, env_factory=None) -> tuple[list[dict], str]:
    """Train ``method`` under ``p`` in ``run_dir`` (from its last checkpoint when ``resume`` and there is one).

    Every iteration appends a row to ``bench_rows.jsonl`` and calls ``on_row(row, runner)`` (after the
    runner's checkpoint of that iteration, if it wrote one). On resume the rows after the checkpoint
    are dropped and the wall clock continues from the checkpoint's row. Returns (rows, end), end one of
    "finished" (the schedule ended), "budget" (the iteration budget), "stopped" (a sitting or a signal)."""
    from excavation_training.runners.checkpoint import load_checkpoint
    from excavation_training.runners.env_factory import build_env_factory
    from excavation_training.runners.prpd_runner import PRPDRunner

    run_dir = Path(run_dir)
    rows_path = run_dir / ROWS_FILE
    latest = latest_checkpoint(run_dir)
    t0 = time.perf_counter()
    offset = 0.0
    if resume and latest.exists():
        iteration = int(load_checkpoint(latest)["iteration"])
        rows = [r for r in read_rows(rows_path)[0] if r["iteration"] <= iteration]
        offset = rows[-1]["wall_s"] if rows else 0.0
        write_rows(rows_path, rows)
        runner = PRPDRunner.from_checkpoint(latest, env_factory=env_factory, log_dir=run_dir)
    else:
        write_rows(rows_path, [])
        cfg = make_config(p, method)
        runner = PRPDRunner(cfg, env_factory or build_env_factory(cfg), run_dir)
    sink = rows_path.open("a")

    def report(runner, m):
        # successes is a count (success_rate is NaN below prpd.min_episodes_for_success).
        row = {k: m.get(k) for k in ("iteration", "stage", "resolution_mm", "success_rate", "advance_success_rate", "samples", "alpha",
                                     "episodes", "successes")}
        row["wall_s"] = offset + time.perf_counter() - t0
        row["sampling_s"] = m.get("sim_seconds")  # cumulative time inside env.step, checkpointed with the runner
        row["load1"] = os.getloadavg()[0]  # the machine's 1-min load: times from a busy machine say so
        row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}  # NaN -> null (strict JSON)
        sink.write(json.dumps(row) + "\n")
        sink.flush()
        if on_row is not None:
            on_row(row, runner)

    try:
        result = runner.learn(num_iterations=sitting_iterations or None, callback=report)
    finally:
        sink.close()
    end = "finished" if result.finished else ("budget" if runner.iteration >= p.budget_iterations else "stopped")
    with rows_path.open("a") as f:
        f.write(json.dumps({"end": end, "wall_s": offset + time.perf_counter() - t0}) + "\n")
    return read_rows(rows_path)[0], end


# Confirmation worlds: the env seed is this plus the trial's seed, so no trial (seeds are small
# integers) trains on its geometry or its episode draws.
CONFIRM_SEED_OFFSET = 900_001


def confirm(p, method: str, run_dir: str | Path, episodes: int = 128) -> dict:
    """Deterministic evaluation of the trial's last policy at its finest resolution, ``episodes``
    episodes (each env's first, DR as in training) on worlds of a seed never trained on."""
    from excavation_sim.scripted import wilson_interval
    from excavation_training.evaluation import evaluate, policy_from_file
    from excavation_training.runners.env_factory import build_eval_factory

    policy, _ = policy_from_file(latest_checkpoint(Path(run_dir)))
    cfg = make_config(p, method)
    cfg.runner.seed = CONFIRM_SEED_OFFSET + int(p.seed)
    finest = float(list(p.resolutions)[-1])
    factory = build_eval_factory(cfg, num_envs=min(episodes, cfg.env.num_envs))
    t0 = time.perf_counter()
    res = evaluate(policy, factory, finest, episodes=episodes, randomize=cfg.env.randomize)
    k = int(round(res.success_rate * res.episodes))
    lo, hi = wilson_interval(k, res.episodes)
    return {"resolution_mm": finest, "seed": cfg.runner.seed, "randomize": bool(cfg.env.randomize),
            "episodes": res.episodes, "successes": k, "success_rate": res.success_rate, "ci95": [lo, hi],
            "reaches_tau": res.success_rate >= float(p.tau), "wall_s": time.perf_counter() - t0}


def reached(row: dict, finest: float, tau: float) -> bool:
    """Whether an iteration row counts as tau reached at the finest resolution: the scheduler's own
    criterion (the success of the last advance_window_episodes episodes), or the iteration's success
    rate for rows written before the runner logged the window."""
    if row["resolution_mm"] != finest:
        return False
    rate = row["advance_success_rate"] if "advance_success_rate" in row else row.get("success_rate")
    return rate is not None and rate == rate and rate >= tau


def first_reach(rows: list[dict], finest: float, tau: float) -> dict | None:
    return next((r for r in rows if reached(r, finest, tau)), None)


def trial_row(method: str, seed: int, settings: dict, rows: list[dict], end: str | None, *, machine: dict, revision: str,
              trial_id: str | None = None) -> dict:
    """The result row of one trial. ``time_to_tau_*`` are null when tau was not reached (censored);
    ``followup_*`` are then what the trial spent, the censoring times (never times to tau)."""
    finest, tau = float(settings["resolutions"][-1]), float(settings["tau"])
    hit = first_reach(rows, finest, tau)
    last = rows[-1] if rows else {"wall_s": 0.0, "sampling_s": 0.0, "samples": 0}
    upto = rows[: rows.index(hit) + 1] if hit else rows
    per_stage: list[dict] = []
    for r in rows:
        if not per_stage or per_stage[-1]["stage"] != r["stage"]:
            per_stage.append({"stage": r["stage"], "resolution_mm": r["resolution_mm"], "iterations": 0})
        per_stage[-1]["iterations"] += 1
    ended = end in ("finished", "budget", "time_limit")
    at = hit or last
    return {
        "trial_id": trial_id,
        "method": method,
        "seed": int(seed),
        "settings": settings,
        "reached_tau": hit is not None,
        # censored: tau not reached at the finest resolution by the end of the run (its budget, its
        # schedule, or a stop); complete=False says the run has not ended yet (it can be resumed)
        "censored": hit is None,
        "complete": ended,
        "end": end,
        "time_to_tau_wall_s": hit["wall_s"] if hit else None,
        "time_to_tau_sampling_s": hit.get("sampling_s") if hit else None,
        "samples_to_tau": hit["samples"] if hit else None,
        "followup_wall_s": at["wall_s"],
        "followup_sampling_s": at.get("sampling_s"),
        "followup_samples": at["samples"],
        "iterations_to_tau": len(upto) if hit else None,
        "episodes_to_tau": sum(r.get("episodes") or 0 for r in upto) if hit else None,
        "wall_s": last["wall_s"],
        "sampling_s": last.get("sampling_s"),
        "samples": last["samples"],
        "episodes": sum(r.get("episodes") or 0 for r in rows),
        "successes": sum(r.get("successes") or 0 for r in rows),
        "iterations": len(rows),
        "load1_max": max((r["load1"] for r in rows if r.get("load1") is not None), default=None),
        "updates_per_resolution": per_stage,
        "machine": machine,
        "revision": revision,
    }


def machine() -> dict:
    import platform

    info = {"platform": platform.platform(), "node": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
