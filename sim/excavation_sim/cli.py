"""``excavation-sim``: run the scripted scoop in the Newton excavation env, or save a picture of a scene.

Examples::

    excavation-sim run --delta-mm 70 50 30 --num-envs 8 --episodes 16
    excavation-sim picture --delta-mm 20 --out scene.png
    excavation-sim picture --delta-mm 20 --num-envs 1 --rrd scene.rrd    # the same scene for Rerun
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import DEFAULT_RESOLUTIONS_MM, ExcavationEnvConfig
from .scene_view import DEFAULT_MAX_SOIL_POINTS, RerunMissing


def _env_config(args: argparse.Namespace, delta_mm: float) -> ExcavationEnvConfig:
    cfg = ExcavationEnvConfig(num_envs=args.num_envs, delta_mm=delta_mm, device=args.device, seed=args.seed)
    cfg.randomization.enabled = not args.no_dr
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    from .excavation_env import ExcavationEnv
    from .scripted import run_scripted

    rows = []
    for delta in args.delta_mm:
        env = ExcavationEnv(_env_config(args, delta))
        stats = run_scripted(env, args.episodes, progress=not args.quiet)
        stats["particles_per_env"] = int(env.particles_per_env.mean())
        stats["domain_randomization"] = not args.no_dr
        rows.append(stats)
        steps = stats["mean_steps_to_success"]
        print(
            f"delta {delta:5.1f} mm | particles/env {stats['particles_per_env']:5d} | "
            f"success {stats['success_rate'] * 100:5.1f}% of {stats['episodes']} episodes | "
            f"steps to success {steps if steps is None else round(steps, 1)}"
        )
        env.close()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
        print(f"saved {args.json}")
    return 0


def cmd_picture(args: argparse.Namespace) -> int:
    from .camera import DepthCamera
    from .excavation_env import ExcavationEnv
    from .scripted import ScriptedScoop
    from .visualize import save_scene_picture

    recording = None
    if args.rrd:
        from .scene_view import PictureRecording

        # Opened first: a missing Rerun or a bad path fails before the env is built (tens of seconds).
        recording = PictureRecording(args.rrd, max_soil_points=args.max_soil_points)
    # The PNG as before unless only a recording was asked for.
    png = args.out if args.out is not None else (None if recording is not None else "scene.png")
    cfg = _env_config(args, args.delta_mm[0])
    env = ExcavationEnv(cfg)
    ctrl = ScriptedScoop(env.num_envs, env.device)
    obs = env.reset()
    for _ in range(args.steps):
        if recording is not None:
            recording.step(env)
        res = env.step(ctrl.act(obs))
        obs = res.obs
        ctrl.reset(res.done)
        if recording is not None and bool(res.done[0]):
            recording.episode_ended()
    frame = DepthCamera(env, seed=args.seed).render(0, noise=not args.no_noise)
    valid = frame.depth > 0
    summary = (f"depth {frame.depth.shape[1]}x{frame.depth.shape[0]}, {valid.mean() * 100:.0f}% valid, "
               f"range {frame.depth[valid].min():.3f}-{frame.depth[valid].max():.3f} m")
    if png is not None:
        save_scene_picture(env, frame, png)
        print(f"saved {png}: {summary}")
    if recording is not None:
        recording.depth_frame(env, frame)
        recording.close()
        print(f"saved {args.rrd}: {recording.frames} frames of world 0 and the depth image ({summary}); "
              f"replay: rerun {args.rrd}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="excavation-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser, many: bool) -> None:
        sp.add_argument(
            "--delta-mm", type=float, nargs="+" if many else 1, default=[70.0] if not many else [70.0],
            help=f"resolution(s): soil particle diameter in mm (paper schedule: {', '.join(f'{d:g}' for d in DEFAULT_RESOLUTIONS_MM)})",
        )
        sp.add_argument("--num-envs", type=int, default=8, help="parallel worlds (default 8)")
        sp.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
        sp.add_argument("--seed", type=int, default=0, help="seed of scene, randomisation and noise (default 0)")
        sp.add_argument("--no-dr", action="store_true", help="disable domain randomisation (nominal scene)")

    r = sub.add_parser("run", help="run the scripted scoop controller and print its success rate per resolution")
    common(r, many=True)
    r.add_argument("--episodes", type=int, default=16, help="episodes per resolution (default 16)")
    r.add_argument("--json", help="also save the results to this JSON file")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    pic = sub.add_parser("picture", help="save a PNG (rendered depth image and a 3D view of world 0) and/or a Rerun recording of it",
                         description="Run the scripted scoop for --steps steps, then picture world 0: a PNG of the depth "
                         "image beside a 3D view, and with --rrd the same scene as a Rerun recording (every step's "
                         "bucket, bucket path, rock and soil, then the depth image; the live view's entity names, "
                         "docs/view.md). --rrd needs the optional rerun-sdk.")
    common(pic, many=False)
    pic.add_argument("--out", default=None, help="output PNG (default scene.png; with --rrd, none unless given)")
    pic.add_argument("--rrd", default=None, metavar="FILE.rrd",
                     help="also write the scene as a Rerun recording (replay: rerun FILE.rrd); needs rerun-sdk")
    pic.add_argument("--max-soil-points", type=int, default=DEFAULT_MAX_SOIL_POINTS, metavar="N",
                     help=f"--rrd: soil particles per frame at most, evenly strided (default {DEFAULT_MAX_SOIL_POINTS})")
    pic.add_argument("--steps", type=int, default=12, help="scripted control steps before the picture (default 12)")
    pic.add_argument("--no-noise", action="store_true", help="render the depth image without the noise model")
    pic.set_defaults(func=cmd_picture)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "num_envs", 1) <= 0:
        print(f"error: --num-envs must be > 0, got {args.num_envs}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, RerunMissing) as exc:  # bad input named by the env's validation; the optional SDK missing
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
