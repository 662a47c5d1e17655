"""``excavation-sim``: run the scripted scoop in the Newton excavation env, or save a picture of a scene.

Examples::

    excavation-sim run --delta-mm 70 50 30 --num-envs 8 --episodes 16
    excavation-sim picture --delta-mm 20 --out scene.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import DEFAULT_RESOLUTIONS_MM, ExcavationEnvConfig


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

    cfg = _env_config(args, args.delta_mm[0])
    env = ExcavationEnv(cfg)
    ctrl = ScriptedScoop(env.num_envs, env.device)
    obs = env.reset()
    for _ in range(args.steps):
        res = env.step(ctrl.act(obs))
        obs = res.obs
        ctrl.reset(res.done)
    frame = DepthCamera(env, seed=args.seed).render(0, noise=not args.no_noise)
    save_scene_picture(env, frame, args.out)
    valid = frame.depth > 0
    print(f"saved {args.out}: depth {frame.depth.shape[1]}x{frame.depth.shape[0]}, {valid.mean() * 100:.0f}% valid, "
          f"range {frame.depth[valid].min():.3f}-{frame.depth[valid].max():.3f} m")
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

    pic = sub.add_parser("picture", help="save a PNG: rendered depth image and a 3D view of world 0")
    common(pic, many=False)
    pic.add_argument("--out", default="scene.png", help="output PNG (default scene.png)")
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
    except ValueError as exc:  # bad input named by the env's validation
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
