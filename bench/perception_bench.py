#!/usr/bin/env python3
"""Benchmark of the rock perception pipeline: accuracy, detection rates and time per frame.

Frames come from a *frame source* (a function yielding :class:`Frame`); ``--source synthetic``
ray-casts boxes (tray, soil, a partly buried rock, the bucket) with depth noise and dropouts,
``--source sim`` is the place for the Newton simulator's camera. Prints its figures and writes
``bench/results/perception.json`` and a picture of a few frames with the estimates drawn on.

    python bench/perception_bench.py --frames 200
"""

from __future__ import annotations

import os

# Time one core, as the target says; set before numpy/OpenCV load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable, Iterator  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(REPO, "ros2_ws", "src", "excavation")
if PKG not in sys.path:
    sys.path.insert(0, PKG)

import cv2  # noqa: E402

from excavation.perception import (  # noqa: E402
    BucketPose,
    CameraIntrinsics,
    PerceptionConfig,
    Reason,
    RockDetector,
    decode_depth,
    load_calibration,
)
from excavation.perception.bucket_volume import bucket_hull  # noqa: E402
from excavation.perception.depth import project_points  # noqa: E402
from excavation.perception.synthetic import (  # noqa: E402
    ID_ROCK,
    TrayScene,
    add_noise,
    render,
    rock_on_ground,
    to_16uc1,
)

DEFAULT_CALIBRATION = os.path.join(PKG, "config", "calibration_sim.yaml")


@dataclass
class Frame:
    """One depth frame with its ground truth (tray frame)."""

    image: np.ndarray  # as published: uint16 mm (16UC1) or float32 m (32FC1)
    encoding: str
    intrinsics: CameraIntrinsics
    T_tray_camera: np.ndarray
    bucket: BucketPose | None
    rock_centre: np.ndarray | None  # None: no rock in the tray
    ground_height: float  # soil height at the tray centre
    rock_visible_fraction: float  # of the rock's pixels without the bucket, how many the camera sees
    kind: str


FrameSource = Callable[[argparse.Namespace, CameraIntrinsics, np.ndarray, tuple], Iterator[Frame]]


def _bucket_clear_of_rock(pose: BucketPose, rock: np.ndarray | None, half: float) -> bool:
    if rock is None:
        return True
    lo, hi = bucket_hull(margin=0.02 + half)
    pb = pose.rotation.T @ (rock - np.asarray(pose.tip_xyz))
    return not bool(np.all((pb >= lo) & (pb <= hi)))


def synthetic_frames(args, intr: CameraIntrinsics, T: np.ndarray, tray_size: tuple) -> Iterator[Frame]:
    """Random tray scenes: ground offset/tilt, low bumps, a partly buried rock or none, the bucket
    in view in some frames; 16UC1 frames with ~1 % depth noise and dropouts."""
    rng = np.random.default_rng(args.seed)
    hx, hy = tray_size[0] / 2, tray_size[1] / 2
    for i in range(args.frames):
        scene = TrayScene(tray_size=tray_size, wall_height=0.06, wall_thickness=0.05,
                          ground_offset=float(rng.uniform(-0.015, 0.015)),
                          ground_tilt=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))))
        for _ in range(int(rng.integers(0, 4))):  # soil unevenness, lower than the detection threshold
            c = np.array([rng.uniform(-hx, hx) * 0.7, rng.uniform(-hy, hy) * 0.7, scene.ground_offset])
            scene.bumps.append((c, np.array([rng.uniform(0.01, 0.03), rng.uniform(0.01, 0.03), rng.uniform(0.002, 0.005)])))
        empty = rng.random() < args.empty_fraction
        rock = None
        if not empty:
            side = float(rng.uniform(0.047, 0.053))
            m = 0.5 * side * np.sqrt(2) + 0.005
            xy = (rng.uniform(-hx + m, hx - m), rng.uniform(-hy + m, hy - m))
            scene.rocks.append(rock_on_ground(scene, xy, side, float(rng.uniform(0.0, args.max_burial)), float(rng.uniform(0, np.pi / 2))))
            rock = scene.rocks[0][0]
        bucket = None
        if rng.random() < args.bucket_fraction:
            for _ in range(50):
                pose = BucketPose((rng.uniform(-0.12, 0.12), rng.uniform(-0.06, 0.06), rng.uniform(0.01, 0.12)),
                                  rng.uniform(-0.3, 0.5))
                if _bucket_clear_of_rock(pose, rock, 0.04):
                    bucket = pose
                    break
        scene.bucket = bucket
        depth, ids = render(scene.boxes(), intr, T, scene.floor_z)
        visible = 1.0
        if rock is not None and bucket is not None:
            scene.bucket = None
            _, ids_free = render(scene.boxes(), intr, T, scene.floor_z)
            scene.bucket = bucket
            visible = float((ids == ID_ROCK).sum()) / max(1, int((ids_free == ID_ROCK).sum()))
        noisy = add_noise(depth, rng, args.noise, args.dropout)
        kind = ("empty" if rock is None else "rock") + ("+bucket" if bucket is not None else "")
        yield Frame(to_16uc1(noisy), "16UC1", intr, T, bucket, rock, scene.ground_height_at(0.0, 0.0), visible, kind)


def sim_frames(args, intr, T, tray_size) -> Iterator[Frame]:
    raise NotImplementedError(
        "--source sim: frames from the Newton simulator's camera (newton.sensors.SensorCamera, forward "
        "depth) are not wired in yet; implement sim_frames() in bench/perception_bench.py to yield Frame "
        "objects with the scene's rock centre, soil height and bucket pose, then rerun with --source sim"
    )


SOURCES: dict[str, FrameSource] = {"synthetic": synthetic_frames, "sim": sim_frames}


def p95(v) -> float | None:
    return None if len(v) == 0 else float(np.percentile(v, 95))


def draw(samples, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    for ax, (fr, est) in zip(axes.ravel(), samples):
        d = decode_depth(fr.image, fr.encoding, fr.intrinsics)
        dm = np.where(d > 0, d, np.nan)
        ax.imshow(dm, cmap="viridis_r", vmin=np.nanpercentile(dm, 2), vmax=np.nanpercentile(dm, 98))
        title = f"{fr.kind}: {est.reason}"
        if fr.rock_centre is not None:
            uv, _ = project_points(fr.rock_centre[None], fr.intrinsics, fr.T_tray_camera)
            ax.plot(*uv[0], "o", mfc="none", mec="lime", ms=14, mew=2, label="truth centre")
        if est.position is not None:
            uv, _ = project_points(est.position[None], fr.intrinsics, fr.T_tray_camera)
            ax.plot(*uv[0], "x", color="red", ms=12, mew=2, label="estimate")
            if fr.rock_centre is not None:
                e = (est.position - fr.rock_centre) * 1000
                title += f"\nxy err {np.hypot(e[0], e[1]):.1f} mm, z err {e[2]:+.1f} mm, conf {est.confidence:.2f}"
        if fr.bucket is not None:
            uv, _ = project_points(np.asarray(fr.bucket.tip_xyz)[None], fr.intrinsics, fr.T_tray_camera)
            ax.plot(*uv[0], "^", color="orange", ms=9, label="bucket tip")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="lower right", fontsize=7)
    fig.suptitle("rock perception on synthetic frames (depth; green = true centre, red = estimate)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=sorted(SOURCES), default="synthetic")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calibration", default=DEFAULT_CALIBRATION, help="calibration YAML (camera pose, tray, intrinsics)")
    p.add_argument("--noise", type=float, default=0.01, help="relative depth noise std (synthetic)")
    p.add_argument("--dropout", type=float, default=0.02, help="fraction of pixels without depth (synthetic)")
    p.add_argument("--empty-fraction", type=float, default=0.2, help="frames without a rock (synthetic)")
    p.add_argument("--max-burial", type=float, default=0.7,
                   help="rock burial drawn from [0, this] of its height (synthetic); 0.7 leaves 15 mm, the detection threshold")
    p.add_argument("--bucket-fraction", type=float, default=0.35, help="frames with the bucket in view (synthetic)")
    p.add_argument("--min-visible", type=float, default=0.5,
                   help="a rock counts as detectable when at least this fraction of it is not hidden by the bucket")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results", "perception.json"))
    p.add_argument("--png", default=os.path.join(REPO, "bench", "results", "perception.png"))
    args = p.parse_args(argv)

    cv2.setNumThreads(1)
    cal = load_calibration(args.calibration)
    if cal.intrinsics is None:
        p.error(f"{args.calibration} has no camera intrinsics (camera: K, width, height)")
    intr, T = cal.intrinsics, cal.T_tray_camera
    cfg = PerceptionConfig(tray_size=cal.tray_size)
    detector = RockDetector(cfg)

    xy_err, z_err, g_err, ms, xy_err_partial = [], [], [], [], []
    n_detectable = n_detected = n_empty = n_false = n_hidden = 0
    reasons: dict[str, dict[str, int]] = {}
    by_kind: dict[str, list] = {}  # a couple of frames of each kind for the picture
    try:
        frames = SOURCES[args.source](args, intr, T, cal.tray_size)
        first = True
        for fr in frames:
            t0 = time.perf_counter()
            depth = decode_depth(fr.image, fr.encoding, fr.intrinsics)
            est = detector.detect(depth, fr.intrinsics, fr.T_tray_camera, fr.bucket)
            dt = (time.perf_counter() - t0) * 1000
            if not first:  # the first frame builds the ray cache
                ms.append(dt)
            first = False
            reasons.setdefault(fr.kind, {}).setdefault(est.reason, 0)
            reasons[fr.kind][est.reason] += 1
            if est.ground_height is not None:
                g_err.append(abs(est.ground_height - fr.ground_height) * 1000)
            if fr.rock_centre is None:
                n_empty += 1
                n_false += int(est.detected)
            elif fr.rock_visible_fraction >= args.min_visible:
                n_detectable += 1
                if est.detected:
                    n_detected += 1
                    e = (est.position - fr.rock_centre) * 1000
                    xy_err.append(float(np.hypot(e[0], e[1])))
                    z_err.append(abs(float(e[2])))
            else:
                n_hidden += 1
                if est.detected:  # a partly hidden rock still found: how good is that estimate?
                    e = (est.position - fr.rock_centre) * 1000
                    xy_err_partial.append(float(np.hypot(e[0], e[1])))
            if len(by_kind.setdefault(fr.kind, [])) < 2:
                by_kind[fr.kind].append((fr, est))
    except NotImplementedError as exc:
        print(f"perception_bench: {exc}", file=sys.stderr)
        return 2

    res = {
        "source": args.source,
        "frames": args.frames,
        "detectable_rock_frames": n_detectable,
        "rock_frames_hidden_by_bucket": n_hidden,
        "empty_frames": n_empty,
        "detection_rate": n_detected / n_detectable if n_detectable else None,
        "false_detection_rate": n_false / n_empty if n_empty else None,
        "xy_error_p95_mm": p95(xy_err),
        "xy_error_median_mm": float(np.median(xy_err)) if xy_err else None,
        "z_error_p95_mm": p95(z_err),
        "z_error_median_mm": float(np.median(z_err)) if z_err else None,
        "hidden_rocks_detected": len(xy_err_partial),
        "hidden_rocks_xy_error_max_mm": max(xy_err_partial) if xy_err_partial else None,
        "ground_error_p95_mm": p95(g_err),
        "ms_per_frame": float(np.mean(ms)) if ms else None,
        "ms_per_frame_p95": p95(ms),
        "reasons_by_frame_kind": reasons,
        "settings": {"seed": args.seed, "noise_rel_std": args.noise, "dropout": args.dropout,
                     "empty_fraction": args.empty_fraction, "max_burial": args.max_burial, "bucket_fraction": args.bucket_fraction,
                     "min_visible": args.min_visible, "image": [intr.width, intr.height],
                     "calibration": os.path.relpath(os.path.abspath(args.calibration), REPO),
                     "tray_size": list(cal.tray_size), "decimation": cfg.decimation,
                     "median_ksize": cfg.median_ksize, "threads": 1},
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                    "processor": platform.machine()},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=2)
    if args.png:
        # One frame of each kind first, then the second ones, rock frames first.
        order = sorted(by_kind, key=lambda k: (not k.startswith("rock"), k))
        samples = [by_kind[k][0] for k in order] + [v[1] for k in order for v in [by_kind[k]] if len(v) > 1]
        draw(samples[:6], args.png)

    def fmt(v, f="{:.2f}"):
        return "n/a" if v is None else f.format(v)

    print(f"source {args.source}: {args.frames} frames ({n_detectable} with a detectable rock, "
          f"{n_hidden} rock hidden by the bucket, {n_empty} empty)")
    print(f"  detection rate        {fmt(res['detection_rate'], '{:.3f}')}")
    print(f"  false detection rate  {fmt(res['false_detection_rate'], '{:.3f}')}")
    print(f"  xy error p95 / median {fmt(res['xy_error_p95_mm'])} / {fmt(res['xy_error_median_mm'])} mm")
    print(f"  z error p95 / median  {fmt(res['z_error_p95_mm'])} / {fmt(res['z_error_median_mm'])} mm")
    print(f"  ground error p95      {fmt(res['ground_error_p95_mm'])} mm")
    print(f"  mostly hidden rocks still detected: {len(xy_err_partial)}, worst xy error "
          f"{fmt(res['hidden_rocks_xy_error_max_mm'])} mm")
    print(f"  time per frame        {fmt(res['ms_per_frame'])} ms mean, {fmt(res['ms_per_frame_p95'])} ms p95 (one thread)")
    print(f"  wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
