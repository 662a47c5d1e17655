"""``excavation-train``: train, resume, evaluate and export PRPD policies.

Examples::

    excavation-train train --preset cpu --env toy --log-dir runs/toy
    excavation-train train --preset cpu --log-dir runs/see --view   # and runs/see/view.rrd for Rerun
    excavation-train train --config my.yaml --set prpd.alpha_mode=fixed --set prpd.alpha_fixed=0
    excavation-train resume runs/toy
    excavation-train evaluate runs/toy --matrix --dr off
    excavation-train export runs/toy --out policies/toy_demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import PRESETS, ConfigError, TrainConfig, apply_preset


def _parse_resolutions(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"--resolutions must be comma-separated numbers of mm (e.g. 70,40,10), got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"--resolutions must list positive resolutions in mm, got {text!r}")
    return values


def _dr(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"--dr must be 'on' or 'off', got {text!r}")
    return text == "on"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="excavation-train",
        description="Train rock-excavation policies with PPO and Progressive-Resolution Policy Distillation (PRPD).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train from scratch", description="Train from scratch. Config layers apply in "
                       "order: defaults, --config YAML, --preset (each, in order), --env, --set overrides.")
    t.add_argument("--config", type=Path, help="YAML file with (part of) the TrainConfig tree")
    t.add_argument("--preset", action="append", default=[], choices=PRESETS,
                   help="experiment/profile preset: prpd, fixed (fixed-resolution PPO), direct (70->10), alpha0, alpha1, paper (128x128), cpu (small)")
    t.add_argument("--env", choices=("excavation", "toy", "point"), help="env to train on (default: excavation, the Newton simulator)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (the value is parsed as YAML), e.g. --set ppo.learning_rate=3e-4 "
                   "--set prpd.resolutions_mm=[70,40,10] --set env.options.physics.substeps=4")
    t.add_argument("--log-dir", type=Path, help="run folder (default: runner.log_dir)")
    t.add_argument("--iterations", type=int, help="stop after this many iterations (a checkpoint is written)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    t.add_argument("--view", action="store_true",
                   help="also write a Rerun recording to RUN_DIR/view.rrd: the PRPD curves, and view.episodes (default 2) "
                   "evaluation episodes at each stage change and at the end (soil, rock, bucket path); settings under "
                   "view.* (--set view.episodes=4); needs the optional rerun-sdk; docs/view.md")

    r = sub.add_parser("resume", help="continue a run from its checkpoint", description="Continue a run exactly "
                       "where it stopped (same stage, optimiser, normaliser, teacher, RNG states).")
    r.add_argument("path", type=Path, help="run folder (uses checkpoints/latest.pt) or checkpoint file")
    r.add_argument("--iterations", type=int, help="stop after this many more iterations")
    r.add_argument("--log-dir", type=Path, help="write to another run folder (default: the original)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--view", action="store_true",
                   help="as train --view, to RUN_DIR/view_from_<ITERATION>.rrd (the first run's recording is kept)")

    e = sub.add_parser("evaluate", help="success rate at given resolutions, or the cross-resolution matrix",
                       description="Evaluate the deterministic (mean) action. PATH: checkpoint, stage snapshot, "
                       "bundle folder, or run folder (latest checkpoint; with --matrix: every stage's final policy).")
    e.add_argument("path", type=Path)
    e.add_argument("--resolutions", help="comma-separated evaluation resolutions in mm (default: the training schedule)")
    e.add_argument("--episodes", type=int, default=128, help="episodes per resolution (default 128)")
    e.add_argument("--dr", type=_dr, default=False, metavar="on|off", help="domain randomisation (default off)")
    e.add_argument("--matrix", action="store_true", help="rows: the policy each stage of the run finished with")
    e.add_argument("--out", type=Path, help="folder for results (JSON, and the matrix heatmap PNG)")
    e.add_argument("--env", choices=("excavation", "toy", "point"), help="evaluate on another env than the training one")
    e.add_argument("--num-envs", type=int, help="parallel envs for evaluation (default: min(episodes, training num_envs))")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override fields of the training config used to build the env (env.*, runner.device)")

    x = sub.add_parser("export", help="write a TorchScript policy bundle (policy.pt + policy.json)",
                       description="Export a checkpoint or stage snapshot as a bundle; evaluates it first so "
                       "policy.json records the success rate per resolution.")
    x.add_argument("path", type=Path, help="run folder, checkpoint or stage snapshot")
    x.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    x.add_argument("--eval-resolutions", help="comma-separated resolutions to evaluate (default: the schedule)")
    x.add_argument("--episodes", type=int, default=128)
    x.add_argument("--dr", type=_dr, default=False, metavar="on|off")
    x.add_argument("--no-eval", action="store_true", help="skip evaluation (policy.json records none)")
    x.add_argument("--num-envs", type=int)
    x.add_argument("--overwrite", action="store_true")
    return parser


# ---------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .runners import PRPDRunner, build_env_factory

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    for name in args.preset:
        apply_preset(cfg, name)
    if args.env:
        cfg.env.name = args.env
    cfg.apply_overrides(args.overrides)
    if args.log_dir:
        cfg.runner.log_dir = str(args.log_dir)
    if args.no_progress:
        cfg.runner.progress = False
    cfg.validate()
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    log_dir = Path(cfg.runner.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(log_dir / "config.yaml")
    view = _open_training_view(cfg, log_dir / cfg.view.file) if args.view else None
    runner = PRPDRunner(cfg, build_env_factory(cfg), log_dir)
    return _report(_learn(runner, args.iterations, view))


def cmd_resume(args) -> int:
    from .runners import PRPDRunner

    runner = PRPDRunner.from_checkpoint(args.path, log_dir=args.log_dir)
    if args.no_progress:
        runner.cfg.runner.progress = False
    print(f"resuming at iteration {runner.iteration}, stage {runner.scheduler.stage + 1}/{runner.scheduler.num_stages} "
          f"({runner.scheduler.delta_mm:g} mm)", file=sys.stderr)
    view = None
    if args.view:
        name = Path(runner.cfg.view.file)
        view = _open_training_view(runner.cfg, runner.log_dir / f"{name.stem}_from_{runner.iteration:06d}{name.suffix}",
                                   stages_done=len(runner.history))
    return _report(_learn(runner, args.iterations, view))


def _open_training_view(cfg: TrainConfig, path: Path, stages_done: int = 0):
    """The --view recording (Rerun is imported here, and only with --view)."""
    from excavation_sim.scene_view import RerunMissing

    from .runners.view_logger import TrainingView

    try:
        return TrainingView(cfg, path, stages_done=stages_done)
    except RerunMissing as exc:
        raise ConfigError(f"--view: {exc}") from None


def _learn(runner, iterations: int | None, view):
    """``runner.learn``, with the --view recording as its per-iteration callback and closed at the end."""
    if view is None:
        return runner.learn(num_iterations=iterations)
    result = None
    try:
        result = runner.learn(num_iterations=iterations, callback=view)
    finally:
        view.finish(runner, episodes=result is not None and not result.interrupted)
    print(f"view: {view.path} ({view.episodes_logged} episodes; replay: rerun {view.path})", file=sys.stderr)
    return result


def _report(result) -> int:
    print(json.dumps({
        "iterations": result.iterations,
        "finished": result.finished,
        "interrupted": result.interrupted,
        "checkpoint": result.checkpoint,
        "final_success_rate": None if result.final_success_rate != result.final_success_rate else result.final_success_rate,
        "stages": result.stages,
    }, indent=2))
    return 130 if result.interrupted else 0


def _config_of(meta: dict, env: str | None, overrides: list[str]) -> TrainConfig:
    cfg = TrainConfig.from_dict(meta["config"]) if "config" in meta else TrainConfig()
    if env:
        cfg.env.name = env
    cfg.apply_overrides(overrides)
    return cfg.validate()


def cmd_evaluate(args) -> int:
    from .evaluation import cross_resolution_matrix, evaluate, policy_from_file, save_matrix, stage_snapshots
    from .runners import build_eval_factory
    from .runners.checkpoint import resolve_checkpoint_path

    if args.episodes <= 0:
        raise ConfigError(f"--episodes must be a positive integer, got {args.episodes}")
    if args.matrix:
        snaps = stage_snapshots(args.path)
        if not snaps:
            raise ConfigError(f"--matrix needs a run folder with stage snapshots (stages/stage*_*mm.pt); none in {args.path}")
        policies, meta = {}, None
        for delta, p in snaps.items():
            policies[delta], meta = policy_from_file(p)
        cfg = _config_of(meta, args.env, args.overrides)
        cols = _parse_resolutions(args.resolutions) or list(cfg.prpd.resolutions_mm)
        factory = build_eval_factory(cfg, num_envs=args.num_envs or min(args.episodes, cfg.env.num_envs))
        matrix = cross_resolution_matrix(policies, cols, factory, episodes=args.episodes, randomize=args.dr,
                                         progress=lambda s: print(s, file=sys.stderr))
        out = args.out or Path(args.path) / "evaluation"
        json_path, png_path = save_matrix(matrix, out)
        print(json.dumps({**matrix, "json": str(json_path), "png": str(png_path)}, indent=2))
        return 0

    path = args.path
    if path.is_dir() and not (path / "policy.json").is_file():
        path = resolve_checkpoint_path(path)
    policy, meta = policy_from_file(path)
    cfg = _config_of(meta, args.env, args.overrides)
    cols = _parse_resolutions(args.resolutions) or list(cfg.prpd.resolutions_mm)
    factory = build_eval_factory(cfg, num_envs=args.num_envs or min(args.episodes, cfg.env.num_envs))
    results = [evaluate(policy, factory, d, episodes=args.episodes, randomize=args.dr).__dict__ for d in cols]
    report = {"policy": str(path), "results": results}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def cmd_export(args) -> int:
    from .evaluation import evaluate
    from .export.torchscript import DeterministicPolicy, export_bundle
    from .runners import build_eval_factory
    from .runners.checkpoint import load_policy, resolve_checkpoint_path

    policy, ckpt = load_policy(resolve_checkpoint_path(args.path))
    cfg = TrainConfig.from_dict(ckpt["config"]).validate()
    history = list(ckpt.get("history") or [])
    record = ckpt.get("stage_record")
    if record is not None:  # a stage snapshot: the schedule is complete only if it is the last stage's
        final_res = record["resolution_mm"]
        complete = abs(float(final_res) - float(cfg.prpd.resolutions_mm[-1])) < 1e-9
    else:
        sched = ckpt["scheduler"]
        complete = sched["finished"]
        final_res = history[-1]["resolution_mm"] if complete and history else sched["resolutions_mm"][sched["stage"]]
    evaluation = {"success_rate": {}, "randomize": args.dr, "episodes": 0, "action": "deterministic mean"}
    if not args.no_eval:
        if args.episodes <= 0:
            raise ConfigError(f"--episodes must be a positive integer, got {args.episodes}")
        fn = DeterministicPolicy(policy, ckpt["action_low"], ckpt["action_high"]).eval()
        factory = build_eval_factory(cfg, num_envs=args.num_envs or min(args.episodes, cfg.env.num_envs))
        for d in _parse_resolutions(args.eval_resolutions) or list(cfg.prpd.resolutions_mm):
            res = evaluate(fn, factory, d, episodes=args.episodes, randomize=args.dr)
            evaluation["success_rate"][f"{d:g}"] = res.success_rate
            print(f"{d:g} mm: success {res.success_rate:.3f} over {res.episodes} episodes", file=sys.stderr)
        evaluation["episodes"] = args.episodes
    training = {
        "resolution_schedule_mm": list(cfg.prpd.resolutions_mm),
        "final_resolution_mm": final_res,
        "schedule_complete": bool(complete),
        "iterations": ckpt.get("iteration"),
        "stages": history,
        "env": cfg.env.name,
        "alpha_mode": cfg.prpd.alpha_mode,
        "source": str(args.path),
    }
    from .runners.checkpoint import code_revision

    out = export_bundle(
        policy, args.out, action_low=ckpt["action_low"], action_high=ckpt["action_high"], training=training,
        evaluation=evaluation, config=ckpt["config"],
        code_revision={"training": ckpt.get("code_revision"), "export": code_revision()},
        overwrite=args.overwrite,
    )
    print(str(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"train": cmd_train, "resume": cmd_resume, "evaluate": cmd_evaluate, "export": cmd_export}
    try:
        return handlers[args.command](args)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"excavation-train {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last completed iteration was checkpointed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
