"""The excavation cell's 3D scene on Rerun: one home for the entity names, colours and logging helpers.

Three things write Rerun recordings of the cell, and they share these names so that one viewer layout
reads all of them: the live view of the simulated stack (``excavation_simulation.view``, from the ROS
topics), ``excavation-sim picture --rrd`` (one scene, straight from the env) and ``excavation-train
train --view`` (evaluation episodes at each stage change). The names live here, in the simulator,
because it is the lowest layer all three may import: the simulator must not import the ROS package.

Everything is in the tray frame (metres, z up). Timelines: ``sim_time`` (seconds of simulated time),
``episode`` (the episode count, for the per-episode scalars) and, in training recordings,
``iteration`` (the training iteration).

Rerun is optional (``pip install 'excavation-sim[view]'``, or the pin in requirements.txt): this
module imports it only when a recording is opened, so importing it costs nothing and works without it;
``require_rerun`` raises ``RerunMissing`` naming the package to install.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from excavation_contract import pitch_to_quaternion

RERUN_PIN = "rerun-sdk==0.41.0"  # the version requirements.txt and the packages' `view` extra pin
APPLICATION_ID = "excavation"
TIMELINE = "sim_time"
EPISODE_TIMELINE = "episode"
ITERATION_TIMELINE = "iteration"
LOOPBACK = "127.0.0.1"

# Entity path -> what it shows, in the live view of the stack (docs/view.md and the recording tests read
# this table; the live view logs every one of them).
ENTITIES = {
    "world/tray": "tray floor outline at z = 0 (static)",
    "world/camera": "depth camera pose (calibration) and pinhole (CameraInfo)",
    "world/camera/depth": "depth image, 16UC1 mm; drawn as a 2D image and back-projected in 3D",
    "world/perception/candidates": "every rock perception saw on the soil (rock_candidates)",
    "world/perception/chosen": "the rock perception chose (rock_position)",
    "world/perception/ground": "perception's soil height estimate (ground_height) as a flat box",
    "world/bucket": "the bucket the physics realised (sim/bucket_state), its boxes",
    "world/bucket_target": "the policy's bucket target (bucket_target), its tines tip",
    "world/target_path": "this episode's bucket targets so far, as a line",
    "world/soil": "soil particles of the simulator (sim/soil_points)",
    "world/rock": "the rock's true pose and its boxes (sim/rock_pose, sim/scene_shapes)",
    "metrics/frame_to_target_ms": "wall time from a depth frame's CameraInfo to the target it caused",
    "episode/success": "1 when the episode ended in success, else 0",
    "episode/reward": "the episode's summed reward",
    "episode/steps": "control steps the episode took",
}
# Entities only the recordings made from the env itself have (picture --rrd, train --view).
ENV_ENTITIES = {
    "world/bucket_path": "the bucket tip's path over the episode so far, as a line",
}
# What `excavation-sim picture --rrd` writes: the same scene as the PNG, under the live view's names.
PICTURE_ENTITIES = ("world/tray", "world/camera", "world/camera/depth", "world/soil", "world/rock", "world/bucket",
                    "world/bucket_path")
# The PRPD curves of `excavation-train train --view`, on the iteration timeline. The paths are the
# TensorBoard tags of the same metrics (runners/logger.py), so the two name a curve alike.
TRAINING_SCALARS = {
    "train/success_rate": "training success rate of the iteration",
    "prpd/alpha": "PRPD's mixture rate alpha (from the second stage on; none in the first)",
    "prpd/resolution_mm": "resolution (soil particle diameter, mm) the iteration trained at",
    "eval/success_rate": "success rate of the evaluation episodes logged at a stage change or at the end",
}
PATH_POINTS = 500  # a path is re-logged whole with each point: bounded, so a long episode stays cheap
DEFAULT_MAX_SOIL_POINTS = 20_000  # per logged frame; the 5 mm bed has about 15 000 particles per world
SOIL_COLOR = (200, 120, 50)
ROCK_COLOR = (190, 40, 40)
BUCKET_COLOR = (70, 130, 180)
TARGET_COLOR = (60, 200, 90)
PATH_COLOR = (220, 80, 200)  # magenta: apart from soil, rock, bucket and target, on a light or dark background
PERCEPTION_COLOR = (250, 220, 40)


class RerunMissing(ImportError):
    """The optional Rerun SDK is not installed; the message says how to install it."""


def rerun_missing() -> str | None:
    """Why Rerun cannot be used here (with the install command), or None when it can."""
    try:
        import rerun  # noqa: F401
    except ImportError as exc:
        return (f"the view needs the optional Rerun SDK, which is not installed ({exc}); install it with "
                f"`pip install {RERUN_PIN}` (requirements.txt pins it; the packages' `view` extra names it; docs/view.md)")
    return None


def require_rerun():
    """The ``rerun`` module, or ``RerunMissing`` saying how to install it."""
    missing = rerun_missing()
    if missing:
        raise RerunMissing(missing)
    import rerun

    return rerun


# ---------------------------------------------------------------------- the scene of one world, from the env
@dataclass
class SceneState:
    """What the 3D view shows of one world at one moment, in its tray frame. ``None``: the env has no such thing."""

    tip: np.ndarray | None = None  # (3,) bucket tine tips
    pitch: float = 0.0  # bucket pitch about y (rad)
    rock_position: np.ndarray | None = None  # (3,)
    rock_quat_xyzw: np.ndarray | None = None  # (4,)
    soil: np.ndarray | None = None  # (N, 3) float32, active particles (maybe strided down)
    soil_radius: float = 0.005  # m
    rock_boxes: list | None = None  # (centre, half extents) in the rock body frame
    bucket_boxes: list | None = None  # (centre, half extents) in the bucket frame
    tray_size: float | None = None  # m (square tray)


def strided(points: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` of ``points``, evenly strided (deterministic, spread over the whole bed)."""
    if max_points <= 0:
        raise ValueError(f"max_points must be > 0, got {max_points}")
    step = max(1, math.ceil(len(points) / max_points))
    return points[::step]


def scene_state(env, env_id: int = 0, max_soil_points: int = DEFAULT_MAX_SOIL_POINTS, shapes: bool = True) -> SceneState:
    """World ``env_id`` of an ``ExcavationEnv`` now: soil, rock pose, bucket pose; with ``shapes``, also the
    rock's and the bucket's boxes and the tray size (they change only at a rebuild or reset)."""
    if not (0 <= env_id < env.num_envs):
        raise ValueError(f"env_id must be in [0, {env.num_envs}), got {env_id}")
    pos, quat = env.rock_pose()
    s = SceneState(
        tip=env.tip[env_id].detach().cpu().numpy().astype(float),
        pitch=float(env.pitch[env_id]),
        rock_position=pos[env_id].detach().cpu().numpy().astype(float),
        rock_quat_xyzw=quat[env_id].detach().cpu().numpy().astype(float),
        soil=strided(np.asarray(env.soil_particles(env_id), np.float32), max_soil_points),
        soil_radius=float(env.delta_mm) / 2000.0,
    )
    if shapes:
        from .scene import bucket_boxes  # the simulator's own scene module loads Newton: only with an env

        rock = env.scene.worlds[env_id].rock
        s.rock_boxes = [(np.asarray(c, float), np.asarray(h, float)) for c, h in zip(rock.centers, rock.half_extents)]
        s.bucket_boxes = bucket_boxes(env.bucket_geom)
        s.tray_size = float(env.cfg.scene.tray_size)
    return s


# ---------------------------------------------------------------------- logging
class View:
    """Logging helpers over one Rerun recording stream (thread-safe, as the stream is)."""

    def __init__(self, rec):
        self.rr = require_rerun()
        self.rec = rec
        self.target_path: list[np.ndarray] = []
        self.bucket_track: list[np.ndarray] = []
        self.log_static_setup()

    def log_static_setup(self) -> None:
        self.rec.log("world", self.rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)

    def _pitch_transform(self, tip, pitch: float):
        rr = self.rr
        return rr.Transform3D(translation=np.asarray(tip, float), quaternion=rr.Quaternion(xyzw=pitch_to_quaternion(float(pitch))))

    # ------------------------------------------------------------------ time
    def at(self, sim_time_s: float) -> None:
        self.rec.set_time(TIMELINE, duration=float(sim_time_s))

    def at_iteration(self, iteration: int) -> None:
        """Only the iteration from now on: a curve must not carry the sim_time of the last frame logged."""
        self.rec.reset_time()
        self.rec.set_time(ITERATION_TIMELINE, sequence=int(iteration))

    # ------------------------------------------------------------------ static scene
    def tray(self, size_xy) -> None:
        hx, hy = (float(v) / 2 for v in size_xy)
        outline = [[-hx, -hy, 0.0], [hx, -hy, 0.0], [hx, hy, 0.0], [-hx, hy, 0.0], [-hx, -hy, 0.0]]
        self.rec.log("world/tray", self.rr.LineStrips3D([outline], colors=[(150, 150, 150)]), static=True)

    def camera(self, T_tray_camera, K, width: int, height: int) -> None:
        rr = self.rr
        T = np.asarray(T_tray_camera, float)
        self.rec.log("world/camera", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]),
                     rr.Pinhole(image_from_camera=np.asarray(K, float).reshape(3, 3), resolution=[int(width), int(height)],
                                camera_xyz=rr.ViewCoordinates.RDF, image_plane_distance=0.1), static=True)

    def bucket_shape(self, boxes) -> None:
        """``boxes``: (centre, half extents) pairs in the bucket frame (origin at the tine tips)."""
        c, h = _boxes(boxes)
        self.rec.log("world/bucket", self.rr.Boxes3D(centers=c, half_sizes=h, colors=[BUCKET_COLOR],
                                                     fill_mode=self.rr.components.FillMode.Solid), static=True)

    # ------------------------------------------------------------------ per frame
    def depth(self, image_mm: np.ndarray) -> None:
        self.rec.log("world/camera/depth", self.rr.DepthImage(image_mm, meter=1000.0, colormap="viridis"))

    def candidates(self, points) -> None:
        pts = np.asarray(points, float).reshape(-1, 3)
        self.rec.log("world/perception/candidates", self.rr.Points3D(pts, radii=0.006, colors=[PERCEPTION_COLOR]))

    def chosen_rock(self, xyz) -> None:
        self.rec.log("world/perception/chosen", self.rr.Points3D([np.asarray(xyz, float)], radii=0.012,
                                                                 colors=[(255, 255, 255)], labels=["chosen rock"]))

    def ground(self, z: float, size_xy) -> None:
        hx, hy = (float(v) / 2 for v in size_xy)
        self.rec.log("world/perception/ground", self.rr.Boxes3D(centers=[[0.0, 0.0, float(z)]], half_sizes=[[hx, hy, 0.0005]],
                                                                colors=[(120, 200, 255, 60)]))

    def bucket(self, tip, pitch: float) -> None:
        self.rec.log("world/bucket", self._pitch_transform(tip, pitch))

    def target(self, tip, pitch: float) -> None:
        tip = np.asarray(tip, float)
        self.rec.log("world/bucket_target", self._pitch_transform(tip, pitch),
                     self.rr.Points3D([[0.0, 0.0, 0.0]], radii=0.006, colors=[TARGET_COLOR]))
        self.target_path.append(tip)
        del self.target_path[:-PATH_POINTS]
        # In the tray frame, beside the target: under it, the path would move with its transform.
        self.rec.log("world/target_path", self.rr.LineStrips3D([np.asarray(self.target_path)], colors=[TARGET_COLOR], radii=0.0015))

    def bucket_path(self, tip) -> None:
        """Add the bucket tip ``tip`` to this episode's path and log the path so far."""
        self.bucket_track.append(np.asarray(tip, float))
        del self.bucket_track[:-PATH_POINTS]
        self.rec.log("world/bucket_path", self.rr.LineStrips3D([np.asarray(self.bucket_track)], colors=[PATH_COLOR], radii=0.0015))

    def new_episode(self) -> None:
        # Only paths that were drawn are cleared: a recording holds no empty entity it never logged.
        if self.target_path:
            self.target_path = []
            self.rec.log("world/target_path", self.rr.Clear(recursive=False))
        if self.bucket_track:
            self.bucket_track = []
            self.rec.log("world/bucket_path", self.rr.Clear(recursive=False))

    def soil(self, points, radius: float) -> None:
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        self.rec.log("world/soil", self.rr.Points3D(pts, radii=float(radius), colors=[SOIL_COLOR]))

    def rock(self, position, quat_xyzw, boxes=None) -> None:
        """The rock's pose; its boxes (rock body frame) when given (once per scene is enough)."""
        rr = self.rr
        self.rec.log("world/rock", rr.Transform3D(translation=np.asarray(position, float),
                                                  quaternion=rr.Quaternion(xyzw=np.asarray(quat_xyzw, float))))
        if boxes is not None:
            c, h = _boxes(boxes)
            self.rec.log("world/rock", rr.Boxes3D(centers=c, half_sizes=h, colors=[ROCK_COLOR],
                                                  fill_mode=rr.components.FillMode.Solid))

    def scene(self, s: SceneState, soil: bool = True) -> None:
        """One frame of a world from the env (at the current time): bucket, its path, rock, and the soil
        unless ``soil`` is false (it is the bulk of a frame; callers log it every few frames). The shapes
        in ``s`` (rock boxes; bucket boxes and tray, static) are logged when present."""
        if s.tray_size is not None:
            self.tray((s.tray_size, s.tray_size))
        if s.bucket_boxes is not None:
            self.bucket_shape(s.bucket_boxes)
        if s.tip is not None:
            self.bucket(s.tip, s.pitch)
            self.bucket_path(s.tip)
        if s.rock_position is not None:
            quat = s.rock_quat_xyzw if s.rock_quat_xyzw is not None else (0.0, 0.0, 0.0, 1.0)
            self.rock(s.rock_position, quat, s.rock_boxes)
        if soil and s.soil is not None:
            self.soil(s.soil, s.soil_radius)

    # ------------------------------------------------------------------ scalars
    def latency(self, ms: float) -> None:
        self.rec.log("metrics/frame_to_target_ms", self.rr.Scalars(float(ms)))

    def scalar(self, path: str, value) -> None:
        """A point of the curve ``path`` at the current time; none for a missing or non-finite value
        (alpha before the second stage), which Rerun would otherwise draw as a jump."""
        if value is None or not math.isfinite(float(value)):
            return
        self.rec.log(path, self.rr.Scalars(float(value)))

    def episode(self, index: int, success: bool, reward: float | None, steps: int) -> None:
        self.rec.set_time(EPISODE_TIMELINE, sequence=int(index))
        self.rec.log("episode/success", self.rr.Scalars(1.0 if success else 0.0))
        if reward is not None:
            self.rec.log("episode/reward", self.rr.Scalars(float(reward)))
        self.rec.log("episode/steps", self.rr.Scalars(float(steps)))
        # Later per-frame data must not carry this episode index as if it were theirs.
        self.rec.disable_timeline(EPISODE_TIMELINE)

    def flush(self) -> None:
        self.rec.flush(timeout_sec=10.0)

    def close(self) -> None:
        """Flush and end the recording (its file is complete after this)."""
        self.flush()
        self.rec.disconnect()


def _boxes(boxes) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray([b[0] for b in boxes], float).reshape(-1, 3)
    h = np.asarray([b[1] for b in boxes], float).reshape(-1, 3)
    return c, h


def open_view(record: str | None = None, grpc_port: int | None = None, application_id: str = APPLICATION_ID) -> View:
    """A View writing to ``record`` (.rrd) and/or streaming to the gRPC server on loopback ``grpc_port``."""
    if not record and grpc_port is None:
        raise ValueError("open_view: give a recording file, a gRPC port, or both")
    rr = require_rerun()
    rec = rr.RecordingStream(application_id)
    sinks = []
    if grpc_port is not None:
        sinks.append(rr.GrpcSink(f"rerun+http://{LOOPBACK}:{int(grpc_port)}/proxy"))
    if record:
        os.makedirs(os.path.dirname(os.path.abspath(record)), exist_ok=True)
        sinks.append(rr.FileSink(str(record)))
    rec.set_sinks(*sinks)
    return View(rec)


# ---------------------------------------------------------------------- excavation-sim picture --rrd
class PictureRecording:
    """The picture's scene as a recording: each scripted step's world 0 (bucket, its path, rock, soil), then
    the depth frame the PNG shows, on the live view's entity names."""

    def __init__(self, path: str, max_soil_points: int = DEFAULT_MAX_SOIL_POINTS):
        if not str(path).endswith(".rrd"):
            raise ValueError(f"--rrd must name an .rrd file, got {path!r}")
        if max_soil_points <= 0:
            raise ValueError(f"--max-soil-points must be > 0, got {max_soil_points}")
        self.view = open_view(record=str(path))  # first: a missing Rerun fails before the env is built
        self.path = str(path)
        self.max_soil_points = int(max_soil_points)
        self.frames = 0

    def step(self, env, env_id: int = 0) -> None:
        self.view.at(float(env.sim_time))
        self.view.scene(scene_state(env, env_id, self.max_soil_points, shapes=self.frames == 0))
        self.frames += 1

    def episode_ended(self) -> None:
        """The env reset world 0 after its episode ended: the next bucket path starts afresh."""
        self.view.new_episode()

    def depth_frame(self, env, frame, env_id: int = 0) -> None:
        """The picture's own moment: the scene once more (with its shapes) and the depth image."""
        self.view.at(float(frame.sim_time))
        self.view.scene(scene_state(env, env_id, self.max_soil_points, shapes=True))
        h, w = frame.depth.shape
        self.view.camera(frame.T_tray_camera, frame.K, w, h)
        self.view.depth(frame.to_16uc1())
        self.frames += 1

    def close(self) -> None:
        self.view.close()


__all__ = [
    "APPLICATION_ID", "DEFAULT_MAX_SOIL_POINTS", "ENTITIES", "ENV_ENTITIES", "EPISODE_TIMELINE", "ITERATION_TIMELINE",
    "LOOPBACK", "PICTURE_ENTITIES", "PictureRecording", "RERUN_PIN", "RerunMissing", "SceneState", "TIMELINE",
    "TRAINING_SCALARS", "View", "open_view", "require_rerun", "rerun_missing", "scene_state", "strided",
]
