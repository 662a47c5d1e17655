#!/usr/bin/env python3
"""Benchmark of the rock perception pipeline: detection, false reports, accuracy and time per frame,
per scene family, on two sources it was not tuned on.

``--source both`` (default) runs scenegen's families (an independent renderer, ``bench/scenegen``,
scored by ``scenegen_eval.py``, the library's default configuration) and the Newton simulator's
depth camera over worlds at every soil resolution (70..10 mm, the detector configured as the
simulated stack runs it), and writes both, per family, with the issue's targets checked, to
``bench/results/perception.json`` and a plot of the families (.png). ``--source scenegen`` / ``sim`` /
``synthetic`` (ray-cast boxes, bench/box_scenes.py) run one source; a single source other than the
simulator's goes to ``perception_<source>.json``.

    python bench/perception_bench.py                        # both sources, ~20 min on 2 cores
    python bench/perception_bench.py --source scenegen --scenes-per-family 5

``--save-frames DIR`` also writes every frame with its truth; ``--source saved --frames-dir DIR`` re-runs
the detector on exactly those frames without the simulator (seconds instead of minutes), e.g. to
compare detector versions on the same depth images.

Sim truth (see ``settings`` in the JSON): the ground is the settled soil top (upper envelope of the
particles the camera sees), not the world's nominal surface_z, which the bed leaves within the first
steps; a detectable rock is also split by whether its top clears the grains right around it
(``*_clear_of_grains``) or is level with them (``*_level_with_grains``): with grains as big as the
rock (50-70 mm) the latter differ from a grain by shape only.
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
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable, Iterator  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(REPO, "ros2_ws", "src", "excavation")
SIM_PKG = os.path.join(REPO, "ros2_ws", "src", "excavation_simulation")

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
from provenance import revision  # noqa: E402
from box_scenes import (  # noqa: E402
    ID_ROCK,
    TrayScene,
    add_noise,
    render,
    rock_on_ground,
    to_16uc1,
)

DEFAULT_CALIBRATION = os.path.join(SIM_PKG, "config", "calibration_sim.yaml")


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
    kind: str  # "rock", "empty" (+ "+bucket"); the sim adds "rock buried" and "rock in bucket"
    info: dict | None = None  # source-specific extras (sim: resolution_mm, seed, step, ...)


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


# --------------------------------------------------------------------------- simulator frames
SIM_RESOLUTIONS_MM = (70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0)


def _sim_modules():
    """The simulator (excavation_sim, Newton/Warp) is imported only for ``--source sim``."""
    import torch

    from excavation_sim.camera import CameraConfig, DepthCamera
    from excavation_sim.config import ExcavationEnvConfig
    from excavation_sim.excavation_env import ExcavationEnv
    from excavation_sim.scripted import ScriptedScoop

    return torch, CameraConfig, DepthCamera, ExcavationEnvConfig, ExcavationEnv, ScriptedScoop


def _rock_geometry(env, pos: np.ndarray, quat_xyzw: np.ndarray) -> tuple[float, float]:
    """(top z, horizontal radius about the centre) of world 0's rock in the tray frame (truth)."""
    from scipy.spatial.transform import Rotation

    rock = env.scene.worlds[0].rock
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    corners = (rock.centers[:, None, :] + signs[None] * rock.half_extents[:, None, :]).reshape(-1, 3)
    world = Rotation.from_quat(quat_xyzw).apply(corners)
    return float(pos[2] + world[:, 2].max()), float(np.hypot(world[:, 0], world[:, 1]).max())


def _local_soil_top(env, rock_xy: np.ndarray, rock_radius: float) -> float | None:
    """Height of the soil's visible top around the rock: particle tops (centre + radius) in a ring
    just outside the rock's footprint, highest per grid cell, median over the cells."""
    p = env.soil_particles(0)
    r = float(env.particle_radius)
    d = np.hypot(p[:, 0] - rock_xy[0], p[:, 1] - rock_xy[1])
    ring = p[(d > rock_radius) & (d <= rock_radius + max(2 * r, 0.02))]
    if len(ring) == 0:
        return None
    cell = max(2 * r, 0.01)
    keys = np.floor(ring[:, :2] / cell).astype(np.int64)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    tops = np.full(inv.max() + 1, -np.inf)
    np.maximum.at(tops, inv.ravel(), ring[:, 2] + r)
    return float(np.median(tops))


def _exposed_tops(env) -> tuple[np.ndarray, np.ndarray]:
    """(xy (N,2), top z (N,)) of world 0's soil particles that the camera can see from above: no other
    particle's top is higher within one particle radius (horizontally) of the particle's centre."""
    p = env.soil_particles(0)
    r = float(env.particle_radius)
    top = p[:, 2] + r
    exposed = np.ones(len(p), bool)
    for i0 in range(0, len(p), 512):  # pairwise in blocks: a few thousand particles at 10 mm
        q = p[i0 : i0 + 512]
        d2 = (q[:, None, 0] - p[None, :, 0]) ** 2 + (q[:, None, 1] - p[None, :, 1]) ** 2
        exposed[i0 : i0 + 512] = ~np.any((d2 < r * r) & (top[None, :] > top[i0 : i0 + 512, None] + 1e-6), axis=1)
    return p[exposed, :2], top[exposed]


def _soil_top(env, half: float) -> float | None:
    """The settled soil surface: 75th percentile of the tops of the exposed particles (see
    _exposed_tops) over the tray (|x|, |y| <= half). The upper envelope of the grains the camera sees:
    on a bed whose top layer is sparse (coarse grains) the lower layer showing between its grains does
    not pull it down; on fine soil it is the surface. The ground truth of the ground error."""
    xy, top = _exposed_tops(env)
    top = top[(np.abs(xy[:, 0]) <= half) & (np.abs(xy[:, 1]) <= half)]
    return float(np.percentile(top, 75)) if len(top) else None


def _rock_clearance(env, pos: np.ndarray, quat_xyzw: np.ndarray, rock_top: float) -> float | None:
    """How far the rock's top stands above the grains right around it (m): rock top minus the highest
    top of the exposed particles whose centres lie outside the rock's footprint and within one
    particle radius + 15 mm of it. Below ~15 mm the rock is level with (or under) the grains next to
    it: neither its height nor its size tells it from them when the grains are as big as the rock;
    only its shape does (a flat voxel top vs a dome)."""
    from scipy.spatial.transform import Rotation

    rock = env.scene.worlds[0].rock
    g = np.linspace(-1.0, 1.0, 6)
    unit = np.array([[a, b, c] for a in g for b in g for c in g])
    unit = unit[np.abs(unit).max(axis=1) >= 1.0 - 1e-9]  # box surfaces
    pts = (rock.centers[:, None, :] + unit[None] * rock.half_extents[:, None, :]).reshape(-1, 3)
    fp = pos[:2] + Rotation.from_quat(quat_xyzw).apply(pts)[:, :2]  # the footprint, sampled
    spacing = 2.0 * float(rock.half_extents.max()) / 5.0
    xy, top = _exposed_tops(env)
    if len(xy) == 0:
        return None
    d = np.sqrt(((xy[:, None, :] - fp[None, :, :]) ** 2).sum(-1)).min(axis=1)
    r = float(env.particle_radius)
    near = (d > spacing) & (d <= r + 0.015)
    return float(rock_top - top[near].max()) if near.any() else None


def _frames_per_resolution(args) -> dict[float, int]:
    """``--frames`` spread over the resolutions; 10 mm worlds step ~5x slower, so they get a third of a share."""
    res = [float(v) for v in args.resolutions.split(",")]
    w = np.array([1.0 / 3.0 if d <= 10.0 else 1.0 for d in res])
    n = np.maximum(1, np.round(args.frames * w / w.sum())).astype(int)
    return dict(zip(res, n.tolist()))


def sim_frames(args, intr: CameraIntrinsics, T: np.ndarray, tray_size: tuple) -> Iterator[Frame]:
    """Frames of Newton's raytraced depth camera (``excavation_sim.camera.DepthCamera``, forward
    depth, RealSense-like noise, float32 metres = 32FC1), posed and sized as the calibration file says.

    Per resolution, episodes of the training env (domain randomisation on, a new seed per episode,
    the rock partly buried as it starts) are driven by the scripted scoop; frames are rendered after
    distinct random step counts in [0, ``--max-steps``], so the bucket approaches, digs and lifts in some of them.
    One frame of every ``--frames-per-episode`` is an empty tray: the rock is moved 10 m down, the
    soil settles for ``--empty-settle-s`` with the bucket held still (grains that lay on the rock fall
    into its hole rather than hang in the air in its shape), the frame is rendered and the env state
    put back. With ``--empty-twins`` (default) every rock frame is followed by
    the same scene rendered without the rock (info ``twin``): many more empty trays, each differing
    from a rock frame only by the rock (a rock-shaped dent may be left in the soil). The last episode of each resolution runs on (up to
    ``--lift-steps``) until the rock is lifted in the bucket and renders that too.

    Truth: rock centre = the rock body's position; ground = the settled soil top (see the module
    docstring; the world's nominal ``surface_z`` is reported beside it); bucket pose = the env's tip and pitch (what the robot driver would publish).
    A rock counts as visible (detection expected) when it is not in the bucket, its top stands at
    least ``--min-protrusion`` above the local soil top (particle tops in a ring around it), and at
    least ``--min-visible`` of its pixels are not hidden by the bucket (shape-index renders with and
    without the bucket). Other rock frames are reported apart ("buried", "in bucket", hidden).
    """
    torch, CameraConfig, DepthCamera, ExcavationEnvConfig, ExcavationEnv, ScriptedScoop = _sim_modules()
    torch.set_num_threads(1)
    cam_cfg = CameraConfig(width=intr.width, height=intr.height, fx=intr.fx, fy=intr.fy, cx=intr.cx, cy=intr.cy,
                           T_tray_camera=np.asarray(T, float).tolist())
    rng = np.random.default_rng(args.seed)
    per_res = _frames_per_resolution(args)
    fpe = max(2, args.frames_per_episode)
    for delta, n_frames in per_res.items():
        n_eps = int(np.ceil(n_frames / fpe))
        left = n_frames
        for ep in range(n_eps):
            seed = int(args.seed * 1000 + delta * 10 + ep)
            env = ExcavationEnv(ExcavationEnvConfig(num_envs=1, delta_mm=delta, seed=seed))
            cam = DepthCamera(env, cam_cfg, seed=seed)
            ctrl = ScriptedScoop(1, env.device)
            obs = env.observe()
            k = min(fpe, left)
            left -= k
            checkpoints = np.sort(rng.choice(args.max_steps + 1, size=min(k, args.max_steps + 1), replace=False))
            empty_at = int(rng.integers(0, len(checkpoints))) if len(checkpoints) > 1 else -1
            lift = ep == n_eps - 1 and args.lift_steps > 0
            step, last = 0, -1
            plan = [(int(c), i == empty_at, False) for i, c in enumerate(checkpoints)]
            if lift:
                plan.append((args.lift_steps, False, True))
            for target, empty, wait_lift in plan:
                while step < target:
                    if wait_lift and bool(env.rock_in_bucket_truth()[0]):
                        rp = env.rock_pose()[0][0]
                        if float(rp[2] - env.rock_half_height[0] - env.surface_z[0]) > 0.02:
                            break
                    res = env.step(ctrl.act(obs))
                    obs = res.obs
                    step += 1
                    ctrl.reset(res.done)  # an ended episode (success, failure, time out) restarts at once
                if wait_lift and (not bool(env.rock_in_bucket_truth()[0]) or step == last):
                    continue  # not lifted within the limit, or this frame was just rendered: no extra frame
                last = step
                fr = _sim_frame(env, cam, intr, delta, seed, step, empty, args)
                if fr is not None:
                    yield fr
                    if args.empty_twins and not empty:
                        # The same soil and bucket with the rock taken away: a false-detection probe
                        # whose only difference from the rock frame is the rock.
                        twin = _sim_frame(env, cam, intr, delta, seed, step, True, args)
                        if twin is not None:
                            twin.info["twin"] = True
                            yield twin
            env.close()


@contextmanager
def _rock_taken_out(env, settle_s: float):
    """World 0 without its rock: the rock moved 10 m down, then ``settle_s`` of physics with the bucket
    held still, so that grains that lay on the rock or leant on it fall into the hole it leaves (left
    in place they would hang in the air in the rock's shape -- what a rock under a layer of grains
    looks like, not an empty tray). The whole env state is put back afterwards."""
    state = env.state_dict()
    env.displace_body(int(env.rock_body[0]), (0.0, 0.0, -10.0))
    try:
        env.settle(int(round(settle_s / env.control_period)))
        yield
    finally:
        env.load_state_dict(state)


def _sim_frame(env, cam, intr, delta, seed, step, empty, args) -> Frame | None:
    if empty:
        if not np.all(np.isfinite(env.rock_pose()[0][0].cpu().numpy())):
            return None
        with _rock_taken_out(env, args.empty_settle_s):
            return _sim_frame_now(env, cam, intr, delta, seed, step, True, args)
    return _sim_frame_now(env, cam, intr, delta, seed, step, False, args)


def _sim_frame_now(env, cam, intr, delta, seed, step, empty, args) -> Frame | None:
    bb = int(env.bucket_body[0])
    pos_t, quat_t = env.rock_pose()
    pos, quat = pos_t[0].cpu().numpy().astype(float), quat_t[0].cpu().numpy().astype(float)
    if not np.all(np.isfinite(pos)):
        return None
    bucket = BucketPose(tuple(float(v) for v in env.tip[0].cpu().numpy()), float(env.pitch[0]))
    in_bucket = bool(env.rock_in_bucket_truth()[0])
    frame = cam.render(0, noise=True)
    ids = cam.shape_index_image(0)
    bucket_ids = np.asarray(env.scene.bucket_shapes[0])
    rock_ids = np.asarray(env.scene.rock_shapes[0])
    n_bucket_px = int(np.isin(ids, bucket_ids).sum())
    info = {"resolution_mm": float(delta), "seed": seed, "step": step, "bucket_pixels": n_bucket_px,
            "in_bucket": in_bucket, "rock_top_above_soil_mm": None, "rock_top_above_grains_mm": None, "rock_pixels": 0}
    surface_z = float(env.surface_z[0])
    soil_top = _soil_top(env, 0.5 * float(env.cfg.scene.tray_size) - 0.015)  # clear of the walls
    info["surface_z"] = surface_z
    info["soil_top_minus_surface_z_mm"] = None if soil_top is None else (soil_top - surface_z) * 1000
    visible = 1.0
    if empty:
        kind, rock = "empty", None
    else:
        rock = pos
        n_rock = int(np.isin(ids, rock_ids).sum())
        info["rock_pixels"] = n_rock
        top, radius = _rock_geometry(env, pos, quat)
        soil = _local_soil_top(env, pos[:2], radius)
        prot = None if soil is None else top - soil
        info["rock_top_above_soil_mm"] = None if prot is None else prot * 1000
        clear = _rock_clearance(env, pos, quat, top)
        info["rock_top_above_grains_mm"] = None if clear is None else clear * 1000
        if n_bucket_px:
            env.displace_body(bb, (0.0, 0.0, 10.0))
            try:
                n_free = int(np.isin(cam.shape_index_image(0), rock_ids).sum())
            finally:
                env.displace_body(bb, (0.0, 0.0, -10.0))
            visible = n_rock / max(1, n_free)
        if in_bucket:
            kind = "rock in bucket"
        elif prot is not None and prot < args.min_protrusion:
            kind = "rock buried"
        else:
            kind = "rock"
    if n_bucket_px >= args.bucket_pixels:
        kind += "+bucket"
    return Frame(frame.depth.astype(np.float32), "32FC1", intr, np.asarray(frame.T_tray_camera, float), bucket, rock,
                 surface_z if soil_top is None else soil_top, visible, kind, info)


def save_frame(fr: Frame, directory: str, i: int) -> None:
    """Write one frame with its truth to ``directory/frame_XXXXX.npz`` (``--save-frames``)."""
    os.makedirs(directory, exist_ok=True)
    k = fr.intrinsics
    meta = {"encoding": fr.encoding, "intrinsics": [k.fx, k.fy, k.cx, k.cy, k.width, k.height],
            "bucket": None if fr.bucket is None else [*fr.bucket.tip_xyz, fr.bucket.pitch],
            "rock_centre": None if fr.rock_centre is None else [float(v) for v in fr.rock_centre],
            "ground_height": fr.ground_height, "rock_visible_fraction": fr.rock_visible_fraction,
            "kind": fr.kind, "info": fr.info}
    np.savez_compressed(os.path.join(directory, f"frame_{i:05d}.npz"), image=fr.image,
                        T=np.asarray(fr.T_tray_camera, float), meta=np.array(json.dumps(meta)))


def saved_frames(args, intr: CameraIntrinsics, T: np.ndarray, tray_size: tuple) -> Iterator[Frame]:
    """Frames written earlier with ``--save-frames`` (``--frames-dir``): re-runs the detector on exactly the
    same depth images, without the simulator. ``--frames`` is ignored; every saved frame is used."""
    if not args.frames_dir or not os.path.isdir(args.frames_dir):
        raise NotImplementedError("--source saved needs --frames-dir, a folder written with --save-frames")
    for name in sorted(f for f in os.listdir(args.frames_dir) if f.startswith("frame_") and f.endswith(".npz")):
        with np.load(os.path.join(args.frames_dir, name)) as z:
            meta = json.loads(str(z["meta"]))
            image, Tf = z["image"], z["T"]
        b = meta["bucket"]
        yield Frame(image, meta["encoding"], CameraIntrinsics(*meta["intrinsics"]), Tf,
                    None if b is None else BucketPose(tuple(b[:3]), b[3]),
                    None if meta["rock_centre"] is None else np.asarray(meta["rock_centre"], float),
                    meta["ground_height"], meta["rock_visible_fraction"], meta["kind"], meta["info"])


SOURCES: dict[str, FrameSource] = {"synthetic": synthetic_frames, "sim": sim_frames, "saved": saved_frames}
SIM_PERCEPTION_CONFIG = os.path.join(SIM_PKG, "config", "perception_sim.yaml")

TARGETS = {"detection_rate": 0.97, "family_detection_rate": 0.90, "false_detection_rate": 0.01,
           "xy_error_p95_mm": 10.0, "ms_per_frame_p95": 10.0}
"""The issue's targets, per source and overall: detection of visible rocks (no family below the family
figure), false reports per frame (none on empty trays), xy p95, time per frame p95 on one core."""


def sim_detector(resolution_mm: float, tray_size) -> RockDetector:
    """The detector as the simulated stack runs it at this resolution (config/perception_sim.yaml, the
    soil grain size = the simulator's particle size)."""
    import yaml
    from dataclasses import replace

    with open(SIM_PERCEPTION_CONFIG, encoding="utf-8") as f:
        det = (yaml.safe_load(f) or {}).get("detector") or {}
    cfg = PerceptionConfig.from_dict({**det, "tray_size": list(tray_size)})
    return RockDetector(replace(cfg, soil_grain_size=resolution_mm / 1000.0).validate())


code_revision = revision


def machine() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "processor": platform.machine(), "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None, "threads": 1}


def run_scenegen(args) -> dict:
    """scenegen's families (an independent renderer, bench/scenegen) through RockPerception with the
    library's default configuration; see scenegen_eval.py for the scoring."""
    import scenegen_eval

    def progress(fam, s):
        print(f"  scenegen {fam:20s} detected {fmt(s['detection_rate'], '{:.2f}')} of {s['visible_rocks']:3d} rocks, "
              f"false {s['false_reports']}/{s['frames']}, in bucket {s['rock_in_bucket_in_view_reported']}/"
              f"{s['rock_in_bucket_in_view']}, xy p95 {fmt(s['xy_error_p95_mm'], '{:.1f}')} mm, "
              f"{fmt(s['ms_per_frame'], '{:.1f}')} / {fmt(s['ms_per_frame_p95'], '{:.1f}')} ms", flush=True)

    r = scenegen_eval.run(args.scenes_per_family, args.seed * 1000, None, progress)
    o = r["overall"]
    print(f"source scenegen: {o['frames']} scenes, detection {fmt(o['detection_rate'], '{:.3f}')} of "
          f"{o['visible_rocks']} visible rocks, false reports {o['false_reports']} "
          f"({fmt(o['false_detection_rate'], '{:.3f}')} of frames), xy p95 {fmt(o['xy_error_p95_mm'])} mm, "
          f"{fmt(o['ms_per_frame'])} ms median / {fmt(o['ms_per_frame_p95'])} p95")
    return {"source": "scenegen", **o, "by_family": r["by_family"],
            "settings": {"scenes_per_family": args.scenes_per_family, "first_seed": args.seed * 1000,
                         "match_radius_m": scenegen_eval.MATCH_RADIUS,
                         "detector": "PerceptionConfig() defaults, the scene's tray size, bucket pose and geometry",
                         "encodings": "16UC1 on even seeds, 32FC1 (NaN = no data) on odd",
                         "visible_rock": "not in the bucket, protrusion >= 12 mm, >= 50 % of it in view",
                         "timing": f"RockPerception.process: median of {scenegen_eval.TIMED_CALLS} calls on the same "
                                   "frame after one untimed call (ray cache warm)"},
            "per_scene": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in rec.items()}
                          for rec in r["records"]]}


def pooled(sources: dict) -> dict:
    """The headline keys over both sources: the worse source's figure (a figure is only as good as it is
    on the source it was not tuned on)."""
    def worst(key, hi_is_bad):
        vals = [s.get(key) for s in sources.values() if s.get(key) is not None]
        return None if not vals else (max(vals) if hi_is_bad else min(vals))

    return {"detection_rate": worst("detection_rate", False), "false_detection_rate": worst("false_detection_rate", True),
            "xy_error_p95_mm": worst("xy_error_p95_mm", True), "ms_per_frame": worst("ms_per_frame", True),
            "ms_per_frame_p95": worst("ms_per_frame_p95", True),
            "pooling": "each headline figure is the worse of the two sources'"}


def check_targets(sources: dict) -> dict:
    out = {}
    for name, s in sources.items():
        groups = s.get("by_resolution_mm") or s.get("by_family", {})  # the simulator's families: resolutions
        fams = [f for f in groups.values() if f.get("detection_rate") is not None]
        out[f"{name}: detection >= {TARGETS['detection_rate']}"] = (s.get("detection_rate") or 0) >= TARGETS["detection_rate"]
        out[f"{name}: every family >= {TARGETS['family_detection_rate']}"] = all(
            f["detection_rate"] >= TARGETS["family_detection_rate"] for f in fams)
        out[f"{name}: false reports <= {TARGETS['false_detection_rate']} of frames"] = (
            (s.get("false_detection_rate") or 0) <= TARGETS["false_detection_rate"])
        out[f"{name}: xy p95 <= {TARGETS['xy_error_p95_mm']} mm"] = (s.get("xy_error_p95_mm") or 0) <= TARGETS["xy_error_p95_mm"]
        out[f"{name}: p95 <= {TARGETS['ms_per_frame_p95']} ms per frame"] = (
            (s.get("ms_per_frame_p95") or 0) <= TARGETS["ms_per_frame_p95"])
        if name == "scenegen":
            out["scenegen: no false report on a tray without a visible rock"] = s["false_on_frames_without_visible_rock"] == 0
            out["scenegen: a rock in the bucket never reported as a soil rock"] = s["rock_in_bucket_reported_as_soil_rock"] == 0
    return out


def plot_families(sources: dict, path: str) -> None:
    """Detection and false-report rates per family, both sources side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sources), figsize=(7 * len(sources), 6), squeeze=False)
    for ax, (name, s) in zip(axes[0], sources.items()):
        # The simulator's frames by soil resolution (its frame kinds mix rock and empty trays).
        groups = s.get("by_resolution_mm") or s.get("by_family", {})
        fams = [f"{g} mm" if "by_resolution_mm" in s else g for g in groups]
        det = [v.get("detection_rate") for v in groups.values()]
        fal = [v.get("false_detection_rate") for v in groups.values()]
        y = np.arange(len(fams))
        ax.barh(y - 0.2, [np.nan if v is None else v for v in det], 0.4, label="detection of visible rocks")
        ax.barh(y + 0.2, [np.nan if v is None else v for v in fal], 0.4, label="false reports per frame")
        ax.axvline(TARGETS["detection_rate"], color="green", ls="--", lw=1)
        ax.set_yticks(y, fams, fontsize=8)
        ax.set_xlim(0, 1.02)
        ax.invert_yaxis()
        ax.set_title(f"{name}: detection {fmt(s.get('detection_rate'), '{:.3f}')}, xy p95 "
                     f"{fmt(s.get('xy_error_p95_mm'), '{:.1f}')} mm, {fmt(s.get('ms_per_frame_p95'), '{:.1f}')} ms p95",
                     fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fmt(v, f="{:.2f}"):
    return "n/a" if v is None else f.format(v)


def p95(v) -> float | None:
    return None if len(v) == 0 else float(np.percentile(v, 95))


def summarise(records: list[dict]) -> dict:
    """Figures over a list of per-frame records (see main)."""

    def cat(c):
        return [r for r in records if r["cat"] == c]

    det, empty, hidden = cat("detectable"), cat("empty"), cat("hidden")
    buried, in_bucket = cat("buried"), cat("in_bucket")
    xy = [r["xy"] for r in det if r["detected"]]
    z = [abs(r["z"]) for r in det if r["detected"]]
    zs = [r["z"] for r in det if r["detected"]]
    part = [r["xy"] for r in hidden if r["detected"]]
    g = [r["g_err"] for r in records if r["g_err"] is not None]
    ms = [r["ms"] for r in records if r["ms"] is not None]
    out = {
        "frames": len(records),
        "detectable_rock_frames": len(det),
        "rock_frames_hidden_by_bucket": len(hidden),
        "empty_frames": len(empty),
        "detection_rate": sum(r["detected"] for r in det) / len(det) if det else None,
        # ... or reported in the bucket at the rock (a rock on the tines while they slide under it).
        "rock_position_given_rate": sum(r.get("position_at_rock", False) for r in det) / len(det) if det else None,
        "rock_reported_in_bucket_while_truth_not": sum(r.get("in_bucket_reported", False) for r in det + buried + empty),
        "false_detection_rate": sum(r["detected"] for r in empty) / len(empty) if empty else None,
        "xy_error_p95_mm": p95(xy),
        "xy_error_median_mm": float(np.median(xy)) if xy else None,
        "z_error_p95_mm": p95(z),
        "z_error_median_mm": float(np.median(z)) if z else None,
        "z_error_mean_signed_mm": float(np.mean(zs)) if zs else None,
        "hidden_rocks_detected": len(part),
        "hidden_rocks_xy_error_max_mm": max(part) if part else None,
        "ground_error_p95_mm": p95(g),
        "ground_error_median_mm": float(np.median(g)) if g else None,
        "ms_per_frame": float(np.mean(ms)) if ms else None,
        "ms_per_frame_p95": p95(ms),
    }
    if buried or in_bucket or any(r["res"] is not None for r in records):
        out.update({
            "rock_buried_frames": len(buried),
            "rock_buried_detected": sum(r["detected"] for r in buried),
            "rock_in_bucket_frames": len(in_bucket),
            "rock_in_bucket_detected": sum(r["detected"] for r in in_bucket),
            "rock_in_bucket_reported_in_bucket": sum(r.get("in_bucket_reported", False) for r in in_bucket),
            # a detection within 30 mm (xy) of the rock in the bucket reports that rock as lying in the soil
            "rock_in_bucket_detected_near_rock": sum(bool(r["detected"] and r["xy"] < 30.0) for r in in_bucket),
            "rock_buried_or_in_bucket_detected_xy_error_median_mm": (
                float(np.median([r["xy"] for r in buried + in_bucket if r["detected"]]))
                if any(r["detected"] for r in buried + in_bucket) else None),
        })
        gn = [r["g_err_nominal"] for r in records if r.get("g_err_nominal") is not None]
        st = [r["soil_top_minus_surface_z_mm"] for r in records if r.get("soil_top_minus_surface_z_mm") is not None]
        out["ground_error_vs_nominal_surface_z_p95_mm"] = p95(gn)
        out["settled_soil_top_minus_surface_z_median_mm"] = float(np.median(st)) if st else None
        clear = [r for r in det if r.get("clear") is True]
        level = [r for r in det if r.get("clear") is False]
        out.update({
            # Detectable rocks whose top clears the grains right around them by min_protrusion, and the
            # others (level with the soil's upper envelope there: told from a grain by shape only).
            "detectable_rock_frames_clear_of_grains": len(clear),
            "detection_rate_clear_of_grains": sum(r["detected"] for r in clear) / len(clear) if clear else None,
            "detectable_rock_frames_level_with_grains": len(level),
            "detection_rate_level_with_grains": sum(r["detected"] for r in level) / len(level) if level else None,
            "xy_error_p95_clear_of_grains_mm": p95([r["xy"] for r in clear if r["detected"]]),
        })
    return out


def pick_samples(by_kind: dict, n: int = 6) -> list:
    """A few frames for the picture: rock frames first, then the others, spread over the resolutions."""
    order = sorted(by_kind, key=lambda k: (not k.startswith("rock"), "bucket" in k, k))
    picked, seen_res, seen_kind = [], set(), set()
    for key in order:  # one per kind and resolution, new kinds and resolutions first
        fr, est, res = by_kind[key][0]
        kind = fr.kind
        if kind not in seen_kind and res not in seen_res:
            picked.append(by_kind[key][0])
            seen_kind.add(kind)
            seen_res.add(res)
    rest = [v for key in order for v in by_kind[key] if not any(v is p for p in picked)]
    rest.sort(key=lambda v: (v[2] in seen_res, not v[0].kind.startswith("rock")))
    return (picked + rest)[:n]


def draw(samples, path: str, source: str = "synthetic", crop: tuple | None = None) -> None:
    """``crop``: image rectangle (u0, v0, u1, v1) shown, e.g. the tray; None = whole image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    for ax, (fr, est, res) in zip(axes.ravel(), samples):
        d = decode_depth(fr.image, fr.encoding, fr.intrinsics)
        dm = np.where(d > 0, d, np.nan)
        u0, v0, u1, v1 = crop if crop is not None else (0, 0, dm.shape[1], dm.shape[0])
        win = dm[v0:v1, u0:u1]
        ax.imshow(dm, cmap="viridis_r", vmin=np.nanpercentile(win, 2), vmax=np.nanpercentile(win, 98))
        ax.set_xlim(u0 - 0.5, u1 - 0.5)
        ax.set_ylim(v1 - 0.5, v0 - 0.5)
        title = (f"{res:g} mm soil, " if res is not None else "") + f"{fr.kind}: {est.reason}"
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
    fig.suptitle(f"rock perception on {'simulator' if source in ('sim', 'saved') else 'synthetic'} frames "
                 "(depth; green = true centre, red = estimate)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=["both", "scenegen", *sorted(SOURCES)], default="both",
                   help="both = scenegen's families and the simulator's frames, into perception.json")
    p.add_argument("--scenes-per-family", type=int, default=20, help="scenes of each scenegen family (scenegen)")
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
    p.add_argument("--resolutions", default=",".join(f"{d:g}" for d in SIM_RESOLUTIONS_MM),
                   help="soil particle sizes (mm) of the simulated worlds, comma separated (sim)")
    p.add_argument("--frames-per-episode", type=int, default=5,
                   help="frames rendered per simulated episode, one of them an empty tray (sim)")
    p.add_argument("--empty-twins", action=argparse.BooleanOptionalAction, default=True,
                   help="after every rock frame, render the same scene without the rock as an empty frame (sim)")
    p.add_argument("--empty-settle-s", type=float, default=0.3,
                   help="an empty tray is rendered after this much physics (s) without the rock, the bucket held "
                        "still: grains that lay on the rock fall into its hole instead of hanging in the air (sim)")
    p.add_argument("--max-steps", type=int, default=25, help="frames are rendered after 0..this scripted-scoop steps (sim)")
    p.add_argument("--lift-steps", type=int, default=80,
                   help="the last episode per resolution runs up to this many steps for a frame of the rock lifted "
                        "in the bucket; 0 = none (sim)")
    p.add_argument("--min-protrusion", type=float, default=0.015,
                   help="a simulated rock counts as visible when its top stands this much (m) above the local soil "
                        "top; the detector's min_height_above_ground (sim)")
    p.add_argument("--bucket-pixels", type=int, default=200, help="a frame is '+bucket' from this many bucket pixels (sim)")
    p.add_argument("--save-frames", default=None, metavar="DIR",
                   help="also write every frame with its truth to DIR (re-run later with --source saved)")
    p.add_argument("--frames-dir", default=None, metavar="DIR", help="frames written by --save-frames (--source saved)")
    p.add_argument("--out", default=None,
                   help="default bench/results/perception.json (both, sim, saved) or perception_<source>.json")
    p.add_argument("--png", default=None, help="default: --out with .png; '' for none")
    args = p.parse_args(argv)
    if args.out is None:
        name = "perception.json" if args.source in ("both", "sim", "saved") else f"perception_{args.source}.json"
        args.out = os.path.join(REPO, "bench", "results", name)
    if args.png is None:
        args.png = os.path.splitext(args.out)[0] + ".png"
    cv2.setNumThreads(1)
    if args.calibration and load_calibration(args.calibration).intrinsics is None:
        p.error(f"{args.calibration} has no camera intrinsics (camera: K, width, height)")
    out = {"revision": code_revision(), "machine": machine(), "command": "python bench/perception_bench.py "
           + " ".join(argv if argv is not None else sys.argv[1:])}
    sources = {}
    if args.source in ("both", "scenegen"):
        sources["scenegen"] = run_scenegen(args)
    if args.source != "scenegen":
        name = "sim" if args.source == "both" else args.source
        sources[name] = run_frames(args, name, None if args.source == "both" else args.png)
    if len(sources) == 1:
        out.update(next(iter(sources.values())))
    else:
        out.update(pooled(sources))
        out["sources"] = sources
    out["targets"] = check_targets(sources)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    if args.png and ("scenegen" in sources):
        plot_families(sources, args.png)
    for t, ok in out["targets"].items():
        print(f"  target {t}: {'met' if ok else 'NOT met'}")
    print(f"  wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return 0


def run_frames(args, source: str, png: str | None) -> dict:
    """One frame source (sim, saved, synthetic) through the detector; its summary (printed)."""
    cal = load_calibration(args.calibration)
    intr, T = cal.intrinsics, cal.T_tray_camera
    cfg = PerceptionConfig(tray_size=cal.tray_size)
    detector = RockDetector(cfg)
    detectors: dict = {}

    records: list[dict] = []
    reasons: dict[str, dict[str, int]] = {}
    by_kind: dict[str, list] = {}  # a couple of frames of each kind (and resolution) for the picture
    try:
        frames = SOURCES[source](args, intr, T, cal.tray_size)
        first = True
        for i_frame, fr in enumerate(frames):
            if args.save_frames:
                save_frame(fr, args.save_frames, i_frame)
            t0 = time.perf_counter()
            depth = decode_depth(fr.image, fr.encoding, fr.intrinsics)
            info = fr.info or {}
            res_mm = info.get("resolution_mm")
            det_k = detector if res_mm is None else detectors.setdefault(res_mm, sim_detector(res_mm, cal.tray_size))
            est = det_k.detect(depth, fr.intrinsics, fr.T_tray_camera, fr.bucket)
            dt = (time.perf_counter() - t0) * 1000
            # A rock reported in the bucket is not a detection of a rock on the soil.
            rec = {"kind": fr.kind, "res": res_mm, "ms": None if first else dt,  # first: ray cache
                   "detected": bool(est.detected and not est.in_bucket), "in_bucket_reported": bool(est.in_bucket),
                   "num_candidates": len(est.candidates), "g_err": None, "xy": None, "z": None}
            first = False
            if info:
                rec.update({k: v for k, v in info.items() if k != "resolution_mm"})
                rec["reason"] = est.reason
                rec["ground_est_mm"] = None if est.ground_height is None else est.ground_height * 1000
                rec["ground_truth_mm"] = fr.ground_height * 1000
            reasons.setdefault(fr.kind, {}).setdefault(est.reason, 0)
            reasons[fr.kind][est.reason] += 1
            rec["g_err_nominal"] = None
            if est.ground_height is not None:
                rec["g_err"] = abs(est.ground_height - fr.ground_height) * 1000
                if info.get("surface_z") is not None:
                    rec["g_err_nominal"] = abs(est.ground_height - info["surface_z"]) * 1000
            if fr.rock_centre is None:
                rec["cat"] = "empty"
            elif fr.kind.startswith("rock in bucket"):
                rec["cat"] = "in_bucket"
            elif fr.kind.startswith("rock buried"):
                rec["cat"] = "buried"
            elif fr.rock_visible_fraction >= args.min_visible:
                rec["cat"] = "detectable"
                clear = info.get("rock_top_above_grains_mm")
                # Sim: does the rock's top also clear the grains right around it (not level with them)?
                rec["clear"] = None if clear is None else bool(clear >= args.min_protrusion * 1000)
            else:
                rec["cat"] = "hidden"
            # Whatever the flag, did the consumer get a usable position of the rock (within 25 mm xy)?
            rec["position_at_rock"] = bool(est.position is not None and fr.rock_centre is not None
                                           and np.hypot(*(est.position[:2] - fr.rock_centre[:2])) <= 0.025)
            if rec["detected"] and fr.rock_centre is not None:
                e = (est.position - fr.rock_centre) * 1000
                rec["xy"], rec["z"] = float(np.hypot(e[0], e[1])), float(e[2])
            records.append(rec)
            key = fr.kind if rec["res"] is None else f"{fr.kind} @ {rec['res']:g} mm"
            if len(by_kind.setdefault(key, [])) < 2:
                by_kind[key].append((fr, est, rec["res"]))
    except NotImplementedError as exc:
        raise SystemExit(f"perception_bench: {exc}") from None

    res = {"source": source, "frames": len(records)}
    res.update(summarise(records))
    res["reasons_by_frame_kind"] = reasons
    if any("seed" in r for r in records):
        res["per_frame"] = [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}
                            for r in records]
    resolutions = sorted({r["res"] for r in records if r["res"] is not None}, reverse=True)
    if resolutions:
        res["by_resolution_mm"] = {f"{d:g}": summarise([r for r in records if r["res"] == d]) for d in resolutions}
    settings = {"seed": args.seed, "min_visible": args.min_visible, "image": [intr.width, intr.height],
                "calibration": os.path.relpath(os.path.abspath(args.calibration), REPO),
                "tray_size": list(cal.tray_size), "decimation": cfg.decimation,
                "median_ksize": cfg.median_ksize, "threads": 1}
    if source == "synthetic":
        settings.update({"noise_rel_std": args.noise, "dropout": args.dropout, "empty_fraction": args.empty_fraction,
                         "max_burial": args.max_burial, "bucket_fraction": args.bucket_fraction})
    else:
        settings.update({"resolutions_mm": [float(v) for v in args.resolutions.split(",")],
                         "frames_per_resolution": {f"{k:g}": v for k, v in _frames_per_resolution(args).items()},
                         "frames_per_episode": args.frames_per_episode, "empty_twins": args.empty_twins, "max_steps": args.max_steps,
                         "lift_steps": args.lift_steps, "min_protrusion_m": args.min_protrusion,
                         "empty_settle_s": args.empty_settle_s,
                         "empty_tray": "the rock moved 10 m down, then empty_settle_s of physics with the bucket "
                                       "held still (grains that lay on the rock fall into its hole; left in place "
                                       "they hung in the air in the rock's shape, which is what a rock under a "
                                       "layer of grains looks like), rendered, the env state restored",
                         "bucket_pixels": args.bucket_pixels, "encoding": "32FC1",
                         "camera_noise": "excavation_training DepthCamera defaults (noise_z2 0.004, dropout 0.01, edge dropouts)",
                         "ground_truth": "the settled soil top: 75th percentile of the tops of the particles seen "
                                         "from above (no higher particle top within one radius), tray clear of the walls; "
                                         "ground_error_vs_nominal_surface_z_* compare with the world's nominal surface_z "
                                         "(the bed's top at spawn) instead",
                         "visible_rock": "not in the bucket, top >= min_protrusion above the local soil top (median "
                                         "over particle-sized cells of the highest particle top in a ring around it), "
                                         ">= min_visible of its pixels not hidden by the bucket",
                         "clear_of_grains": "a visible rock whose top is also >= min_protrusion above every exposed "
                                            "particle top within one particle radius + 15 mm of its footprint"})
    if source != "synthetic":
        settings["detector"] = ("per resolution: config/perception_sim.yaml with soil_grain_size = the resolution, "
                                "as the simulated stack runs it")
    res["settings"] = settings
    res["by_family"] = {k: summarise([r for r in records if r["kind"] == k]) for k in sorted({r["kind"] for r in records})}
    if png:
        roi = detector.roi(intr, T)
        crop = None
        if roi is not None:  # the tray with a margin
            m = max(roi[2] - roi[0], roi[3] - roi[1]) // 5
            crop = (max(roi[0] - m, 0), max(roi[1] - m, 0), min(roi[2] + m, intr.width), min(roi[3] + m, intr.height))
        draw(pick_samples(by_kind), png, source, crop)

    print(f"source {source}: {res['frames']} frames ({res['detectable_rock_frames']} with a detectable rock, "
          f"{res['rock_frames_hidden_by_bucket']} rock hidden by the bucket, {res['empty_frames']} empty"
          + (f", {res['rock_buried_frames']} rock buried, {res['rock_in_bucket_frames']} rock in the bucket)"
             if source in ("sim", "saved") else ")"))
    print(f"  detection rate        {fmt(res['detection_rate'], '{:.3f}')}")
    print(f"  false detection rate  {fmt(res['false_detection_rate'], '{:.3f}')}")
    print(f"  xy error p95 / median {fmt(res['xy_error_p95_mm'])} / {fmt(res['xy_error_median_mm'])} mm")
    print(f"  z error p95 / median  {fmt(res['z_error_p95_mm'])} / {fmt(res['z_error_median_mm'])} mm")
    print(f"  ground error p95      {fmt(res['ground_error_p95_mm'])} mm")
    if res.get("ground_error_vs_nominal_surface_z_p95_mm") is not None:
        print(f"  ground error p95 vs the nominal surface_z {fmt(res['ground_error_vs_nominal_surface_z_p95_mm'])} mm "
              f"(settled soil top - surface_z, median {fmt(res['settled_soil_top_minus_surface_z_median_mm'])} mm)")
    if res.get("detectable_rock_frames_clear_of_grains") is not None:
        print(f"  detectable rocks clear of the grains around them: {res['detectable_rock_frames_clear_of_grains']}, "
              f"detected {fmt(res['detection_rate_clear_of_grains'], '{:.3f}')}, xy p95 "
              f"{fmt(res['xy_error_p95_clear_of_grains_mm'])} mm; level with them: "
              f"{res['detectable_rock_frames_level_with_grains']}, detected "
              f"{fmt(res['detection_rate_level_with_grains'], '{:.3f}')}")
    print(f"  mostly hidden rocks still detected: {res['hidden_rocks_detected']}, worst xy error "
          f"{fmt(res['hidden_rocks_xy_error_max_mm'])} mm")
    print(f"  time per frame        {fmt(res['ms_per_frame'])} ms mean, {fmt(res['ms_per_frame_p95'])} ms p95 (one thread)")
    for d, r in res.get("by_resolution_mm", {}).items():
        print(f"  {d:>3} mm: {r['frames']:3d} frames, detect {fmt(r['detection_rate'], '{:.2f}')} of "
              f"{r['detectable_rock_frames']} (clear of grains {fmt(r['detection_rate_clear_of_grains'], '{:.2f}')} of "
              f"{r['detectable_rock_frames_clear_of_grains']}, level {fmt(r['detection_rate_level_with_grains'], '{:.2f}')} of "
              f"{r['detectable_rock_frames_level_with_grains']}), false {fmt(r['false_detection_rate'], '{:.2f}')} of "
              f"{r['empty_frames']}, xy p95 {fmt(r['xy_error_p95_mm'], '{:.1f}')}, z p95 {fmt(r['z_error_p95_mm'], '{:.1f}')}, "
              f"ground p95 {fmt(r['ground_error_p95_mm'], '{:.1f}')} "
              f"(vs nominal {fmt(r['ground_error_vs_nominal_surface_z_p95_mm'], '{:.1f}')}) mm; buried {r['rock_buried_frames']} "
              f"(detected {r['rock_buried_detected']}), in bucket {r['rock_in_bucket_frames']} "
              f"(detected {r['rock_in_bucket_detected']}, of them at the rock {r['rock_in_bucket_detected_near_rock']})")
    return res


if __name__ == "__main__":
    sys.exit(main())
