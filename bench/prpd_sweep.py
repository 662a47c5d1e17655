"""PRPD bench sweep: trials = methods x seeds x settings, on Ray Tune (or sequentially, --no-ray).

Each trial trains one method from scratch with one seed under one settings combination, through the
same code as ``prpd_vs_fixed.py`` (``prpd_trial.run_trial``), and reports every iteration to Tune;
whenever the runner writes its checkpoint the report carries it (the runner's ``latest.pt`` and the
trial's rows), so ``--restore`` (``Tuner.restore``) continues every unfinished or errored trial from
its last checkpoint, its wall clock continuing from that iteration's. Ray runs on this machine by
default (``ray.init()``); ``--address`` joins a cluster (every node needs this checkout's training
packages installed; the bench modules travel with the trial).

Each trial's row: method, seed, settings, reached_tau, time to tau at the finest resolution (wall
time, sampling time = time inside ``env.step``, samples) or, when it did not reach tau by its budget,
censored=true and its follow-up; samples, episodes, successes, iterations per resolution, machine and
code revision. The aggregation (``prpd_stats``) gives per method the Kaplan-Meier median of time to
tau with a bootstrap 95 % CI, censored runs kept censored, and the PRPD / fixed-fine ratio (a bound
when a median is censored). Writes ``--out`` (default ``bench/results/prpd_vs_fixed.json``) and a PNG.

    pip install -r requirements-sweep.txt           # ray[tune], pinned (or: pip install -e 'training[sweep]')
    python bench/prpd_sweep.py --methods prpd fixed_fine --seeds 0 1 2 3 4 --resolutions 70,40,10 \\
        --num-envs 32 --steps 64 --budget-iterations 300 --cpus-per-trial 1
    python bench/prpd_sweep.py --restore runs/prpd_sweep/prpd_sweep     # continue it after a stop
    python bench/prpd_sweep.py --address auto ...                       # on a running Ray cluster
    python bench/prpd_sweep.py --no-ray ...                             # the same trials, one after another
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import prpd_stats  # noqa: E402
import prpd_trial  # noqa: E402
from provenance import revision  # noqa: E402

RESULTS = BENCH / "results"
SWEEP_FILE = "sweep.json"
TRIAL_ROW_FILE = "trial_row.json"
# swept settings: CLI option -> settings key
SWEPT = {"tau": "tau", "resolutions": "resolutions", "num_envs": "num_envs", "steps": "steps",
         "budget_iterations": "budget_iterations", "max_stage_iterations": "max_stage_iterations",
         "advance_window": "advance_window"}
# the same for every trial
COMMON = ("env", "device", "demo_steps", "dagger_rounds", "demo_noise", "critic_warmup", "torch_threads", "checkpoint_every",
          "confirm_episodes")


def trial_specs(methods, seeds, grid: dict, common: dict) -> list[dict]:
    """Every (settings, seed, method), named; settings = one value of every swept key."""
    keys = list(grid)
    specs = []
    for si, values in enumerate(itertools.product(*(grid[k] for k in keys))):
        settings = dict(zip(keys, values))
        for seed in seeds:
            for method in methods:
                specs.append({"trial_id": f"{method}-seed{seed}-set{si}", "method": method, "seed": int(seed),
                              "settings": settings, "common": common})
    return specs


def profile_of(spec: dict) -> SimpleNamespace:
    return SimpleNamespace(**spec["common"], **spec["settings"], seed=spec["seed"])


def finish_row(spec: dict, rows: list[dict], end: str, rev: str, run_dir: Path) -> dict:
    """The trial's result row; a trial that reached tau is confirmed by a deterministic evaluation on
    worlds it never trained on (``--confirm-episodes``, ``prpd_trial.confirm``)."""
    row = prpd_trial.trial_row(spec["method"], spec["seed"], spec["settings"], rows, end, machine=prpd_trial.machine(),
                               revision=rev, trial_id=spec["trial_id"])
    episodes = spec["common"].get("confirm_episodes", 0)
    row["confirmation"] = (prpd_trial.confirm(profile_of(spec), spec["method"], run_dir, episodes=episodes)
                           if episodes and row["reached_tau"] else None)
    row["curve"] = rows
    return row


# ---------------------------------------------------------------------- Ray Tune
def tune_trainable(config: dict) -> None:
    """One trial under Tune: resume from Tune's checkpoint if there is one, report every iteration."""
    from ray import tune

    spec = config["trial"]
    # The trial's scratch (the runner's run folder, the checkpoints being handed to Tune) lives outside
    # get_trial_dir(): Tune copies that folder to storage in the background, and a file the runner
    # replaces or a stash copy removed mid-copy fails the experiment-state save. Everything a resume
    # needs comes back from Tune's checkpoint.
    scratch = Path(tempfile.mkdtemp(prefix=f"prpd-sweep-{spec['trial_id']}-"))
    run_dir = scratch / "run"
    stash = scratch / "report_checkpoints"
    resume = False
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(d) / "latest.pt", prpd_trial.latest_checkpoint(run_dir))
            shutil.copyfile(Path(d) / prpd_trial.ROWS_FILE, run_dir / prpd_trial.ROWS_FILE)
        resume = True
    resumed_from = prpd_trial.read_rows(run_dir / prpd_trial.ROWS_FILE)[0][-1]["iteration"] if resume else None
    fail_at = config.get("fail_at_iteration") if not resume else None  # testing: a crash before any restore
    p = profile_of(spec)
    previous: list[Path] = []

    def checkpoint_dir(tag: str, extra: dict | None = None):
        d = stash / tag
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prpd_trial.latest_checkpoint(run_dir), d / "latest.pt")
        shutil.copyfile(run_dir / prpd_trial.ROWS_FILE, d / prpd_trial.ROWS_FILE)
        for name, obj in (extra or {}).items():
            (d / name).write_text(json.dumps(obj))
        return d

    def report(metrics: dict, d: Path | None) -> None:
        clean = {k: (float("nan") if v is None else v) for k, v in metrics.items()}
        tune.report(clean, checkpoint=tune.Checkpoint.from_directory(str(d)) if d else None)
        if d is not None:  # Tune has persisted it; the previous stash copy is no longer needed
            for old in previous:
                shutil.rmtree(old, ignore_errors=True)
            previous[:] = [d]

    def on_row(row: dict, runner) -> None:
        every = runner.cfg.runner.checkpoint_every
        # the runner checkpointed this iteration (its period, or a stage that ended)
        saved = runner.iteration % every == 0 or row["stage"] != runner.scheduler.stage or runner.scheduler.finished
        report(row, checkpoint_dir(f"it{row['iteration']:06d}") if saved else None)
        if fail_at and row["iteration"] >= fail_at:
            raise RuntimeError(f"--fail-at-iteration {fail_at}: this trial stops here, to be continued with --restore")

    try:
        rows, end = prpd_trial.run_trial(p, spec["method"], run_dir, resume=resume, on_row=on_row)
        result = finish_row(spec, rows, end, config.get("revision", "unknown"), run_dir)
        result["resumed_from_iteration"] = resumed_from
        (run_dir / TRIAL_ROW_FILE).write_text(json.dumps(result))
        final = {k: v for k, v in (rows[-1] if rows else {}).items()}
        final.update(trial_done=True, trial_row=json.dumps(result))
        report(final, checkpoint_dir("final", {TRIAL_ROW_FILE: result}))
    finally:  # a crashed trial resumes from Tune's checkpoint, not from this folder
        shutil.rmtree(scratch, ignore_errors=True)


def trial_dirname(trial) -> str:
    return trial.config["trial"]["trial_id"]


def run_ray(args, specs: list[dict], rev: str, exp_dir: Path) -> tuple[list[dict], list[str]]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # a checkpoint per few iterations is meant
    import ray
    import ray.cloudpickle
    from ray import tune

    # the trainable's modules travel by value: a worker needs no bench/ on its path
    for mod in (prpd_trial, sys.modules[tune_trainable.__module__]):
        if mod.__name__ != "__main__":
            ray.cloudpickle.register_pickle_by_value(mod)
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus or None, num_gpus=args.num_gpus, include_dashboard=False, log_to_driver=args.verbose > 0)
    try:
        resources = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
        trainable = tune.with_resources(tune_trainable, resources)
        if args.restore:
            tuner = tune.Tuner.restore(str(exp_dir), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search(specs), "revision": rev, "fail_at_iteration": args.fail_at_iteration},
                tune_config=tune.TuneConfig(max_concurrent_trials=args.max_concurrent or None, trial_dirname_creator=trial_dirname),
                run_config=tune.RunConfig(
                    name=exp_dir.name, storage_path=str(exp_dir.parent.resolve()), verbose=args.verbose,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    failure_config=tune.FailureConfig(max_failures=args.max_failures),
                ),
            )
        grid = tuner.fit()
        rows, errors = [], []
        for r in grid:
            if r.metrics and "trial_row" in r.metrics:
                rows.append(json.loads(r.metrics["trial_row"]))
            elif r.error is not None:
                spec = (r.config or {}).get("trial", {})
                errors.append(f"{spec.get('trial_id', '?')}: {type(r.error).__name__}: {r.error}")
        return rows, errors
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------- without Ray
def run_sequential(args, specs: list[dict], rev: str, exp_dir: Path) -> tuple[list[dict], list[str]]:
    rows = []
    for spec in specs:
        run_dir = exp_dir / spec["trial_id"]
        done = run_dir / TRIAL_ROW_FILE
        if args.restore and done.exists():
            rows.append(json.loads(done.read_text()))
            print(f"  {spec['trial_id']}: read back", flush=True)
            continue
        trial_rows, end = prpd_trial.run_trial(profile_of(spec), spec["method"], run_dir, resume=bool(args.restore))
        row = finish_row(spec, trial_rows, end, rev, run_dir)
        done.write_text(json.dumps(row))
        rows.append(row)
        print(f"  {spec['trial_id']}: {end}, reached tau: {row['reached_tau']}, {row['wall_s']:.1f} s", flush=True)
    return rows, []


# ---------------------------------------------------------------------- output
def portable_command(command: str) -> str:
    """``command`` as the result file keeps it: paths inside this checkout relative to it, others
    reduced to their file name (a result file names no machine's folders)."""
    root = BENCH.parent.resolve()
    out = []
    for token in shlex.split(command):
        if token.startswith("/"):
            path = Path(token)
            token = str(path.relative_to(root)) if path.is_relative_to(root) else f"<elsewhere>/{path.name}"
        out.append(token)
    return shlex.join(out)


def write_result(out_path: Path, rows: list[dict], errors: list[str], sweep: dict, *, bootstrap: int, runner: str) -> dict:
    order = {s["trial_id"]: i for i, s in enumerate(sweep["specs"])}
    rows = sorted(rows, key=lambda r: order.get(r["trial_id"], len(order)))
    curves = {r["trial_id"]: r.pop("curve", []) for r in rows}
    summary = prpd_stats.aggregate(rows, bootstrap=bootstrap)
    out = {
        "benchmark": "prpd_vs_fixed",
        "runner": runner,
        "criterion": ("tau reached = the success of the last prpd.advance_window_episodes rollout episodes at the finest "
                      "resolution >= tau (the scheduler's own test); a trial that did not reach it is right-censored at "
                      "its follow-up"),
        "sweep": {"methods": sweep["methods"], "seeds": sweep["seeds"], "grid": sweep["grid"], "common": sweep["common"]},
        "trials": rows,
        "summary": prpd_stats.strip_private(summary),
        "statements": prpd_stats.summary_lines(summary),
        "complete": len(rows) == len(sweep["specs"]) and all(r["complete"] for r in rows),
        "missing_trials": sorted(set(order) - {r["trial_id"] for r in rows}),
        "errored_trials": errors,
        "machine": prpd_trial.machine(),
        "revision": revision(),
        "commands": [{**c, "command": portable_command(c["command"])} for c in sweep["commands"]],
        "curves": curves,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(prpd_stats.strip_private(out), indent=1))
    if rows:
        prpd_stats.plot(summary, rows, out_path.with_suffix(".png"))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("trials (lists: every combination is a settings combination)")
    g.add_argument("--methods", nargs="+", default=["prpd", "fixed_fine"], choices=prpd_trial.METHODS)
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    g.add_argument("--resolutions", nargs="+", default=["70,60,50,40,30,20,10"],
                   help="schedules, each comma-separated coarse to fine; the last is the fine one (default 70,...,10)")
    g.add_argument("--tau", type=float, nargs="+", default=[0.8], help="success rate that counts as reached (default 0.8)")
    g.add_argument("--num-envs", type=int, nargs="+", default=[32])
    g.add_argument("--steps", type=int, nargs="+", default=[64], help="steps per iteration (default 64)")
    g.add_argument("--budget-iterations", type=int, nargs="+", default=[300], help="iteration budget per trial (default 300)")
    g.add_argument("--max-stage-iterations", type=int, nargs="+", default=[100], help="PRPD's per-stage cap (default 100)")
    g.add_argument("--advance-window", type=int, nargs="+", default=[0],
                   help="episodes the advance / tau test is judged on (default 0: the config's, 128)")
    c = p.add_argument_group("the same for every trial")
    c.add_argument("--env", choices=["excavation", "toy", "point"], default="excavation")
    c.add_argument("--device", default="cpu")
    c.add_argument("--demo-steps", type=int, default=0, help="warm start (default 0: from scratch); see prpd_vs_fixed.py")
    c.add_argument("--dagger-rounds", type=int, default=1)
    c.add_argument("--demo-noise", type=float, default=0.1)
    c.add_argument("--critic-warmup", type=int, default=10)
    c.add_argument("--torch-threads", type=int, default=0, help="torch threads per trial (default 0: --cpus-per-trial)")
    c.add_argument("--confirm-episodes", type=int, default=128,
                   help="episodes of the confirmation evaluation of a trial that reached tau, on unseen worlds (0: none)")
    c.add_argument("--checkpoint-every", type=int, default=2, help="runner checkpoint period = Tune checkpoint period (default 2)")
    r = p.add_argument_group("running")
    r.add_argument("--no-ray", action="store_true", help="run the trials one after another in this process, without Ray")
    r.add_argument("--address", help="Ray cluster to join (e.g. auto, or ray://host:10001); default: ray.init() on this machine")
    r.add_argument("--num-cpus", type=int, default=0, help="CPUs of the local Ray instance (default 0: all)")
    r.add_argument("--num-gpus", type=int, default=None, help="GPUs of the local Ray instance (default: detected)")
    r.add_argument("--cpus-per-trial", type=float, default=1.0, help="Tune resources per trial (default 1 CPU)")
    r.add_argument("--gpus-per-trial", type=float, default=0.0)
    r.add_argument("--max-concurrent", type=int, default=0, help="trials at once (default 0: as resources allow)")
    r.add_argument("--max-failures", type=int, default=0, help="retries of a failed trial from its checkpoint (default 0)")
    r.add_argument("--storage", default="runs/prpd_sweep", help="sweep folder root (Tune storage path; default runs/prpd_sweep)")
    r.add_argument("--name", default="prpd_sweep", help="sweep name: its folder is <storage>/<name>")
    r.add_argument("--restore", metavar="DIR",
                   help="continue the sweep in DIR (<storage>/<name>): finished trials are kept, the others resume from "
                        "their last checkpoint; the trial settings are the first run's (the command line's are ignored)")
    r.add_argument("--bootstrap", type=int, default=prpd_stats.BOOTSTRAP, help="bootstrap resamples (default 2000)")
    r.add_argument("--out", default=str(RESULTS / "prpd_vs_fixed.json"))
    r.add_argument("--fail-at-iteration", type=int, default=0, help=argparse.SUPPRESS)  # tests: crash every trial there once
    r.add_argument("--verbose", type=int, default=1, help="Tune verbosity 0-3 (default 1)")
    args = p.parse_args(argv)
    args.resolutions = [[float(x) for x in s.split(",")] for s in args.resolutions]
    if not args.torch_threads:
        args.torch_threads = max(1, int(args.cpus_per_trial))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python bench/prpd_sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    exp_dir = Path(args.restore).resolve() if args.restore else Path(args.storage) / args.name  # Tune wants an absolute path
    sweep_path = exp_dir / SWEEP_FILE
    entry = {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command}
    if args.restore:
        if not sweep_path.exists():
            print(f"--restore: {exp_dir} holds no {SWEEP_FILE}: not a sweep folder", file=sys.stderr)
            return 2
        sweep = json.loads(sweep_path.read_text())
        if sweep["runner"] != ("sequential" if args.no_ray else "ray_tune"):
            print(f"--restore: {exp_dir} was run {'with' if sweep['runner'] == 'ray_tune' else 'without'} Ray; "
                  "restore it the same way", file=sys.stderr)
            return 2
        sweep["commands"].append(entry)
    else:
        grid = {key: getattr(args, opt) for opt, key in SWEPT.items()}
        common = {k: getattr(args, k) for k in COMMON}
        sweep = {"runner": "sequential" if args.no_ray else "ray_tune", "methods": args.methods, "seeds": args.seeds,
                 "grid": grid, "common": common, "commands": [entry]}
        sweep["specs"] = trial_specs(args.methods, args.seeds, grid, common)
        if exp_dir.exists() and any(exp_dir.iterdir()):
            print(f"{exp_dir} is not empty: continue it with --restore {exp_dir}, or pick another --name/--storage", file=sys.stderr)
            return 2
    exp_dir.mkdir(parents=True, exist_ok=True)
    sweep_path.write_text(json.dumps(sweep, indent=1))
    rev = revision()
    print(f"{len(sweep['specs'])} trials in {exp_dir} ({sweep['runner']})", flush=True)
    run = run_sequential if args.no_ray else run_ray
    rows, errors = run(args, sweep["specs"], rev, exp_dir)
    out = write_result(Path(args.out), rows, errors, sweep, bootstrap=args.bootstrap, runner=sweep["runner"])
    for line in out["statements"]:
        print(line)
    if errors:
        print("errored trials:\n  " + "\n  ".join(errors))
    if not out["complete"]:
        print(f"not complete (missing: {out['missing_trials']}); continue with --restore {exp_dir}")
    print(f"saved {args.out}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
