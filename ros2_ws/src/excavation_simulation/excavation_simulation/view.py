"""The 3D and depth view of the simulated cell, on Rerun: what each thing is called and how it is logged.

Everything lives in the tray frame (metres, z up), so perception's estimates, the simulator's truth
and the depth image (placed by the camera's calibrated pose) overlay in one 3D view. Timelines:
``sim_time`` (seconds of simulated time, the stamp of the message that carried the data) and
``episode`` (the episode count, for the per-episode scalars).

Rerun is optional: this module and ``view_node`` are the only ones that import it, and nothing
imports them but the view itself (``launch_stack --view``, ``bench/view_bench.py``, tests/view).
The web viewer runs as the Rerun CLI's own server process bound to loopback: the SDK's built-in
web server listens on every interface.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
import urllib.parse

import numpy as np
import rerun as rr

from excavation_contract import pitch_to_quaternion

APPLICATION_ID = "excavation"
TIMELINE = "sim_time"
EPISODE_TIMELINE = "episode"
WEB_PORT = 9090
GRPC_PORT = 9876
LOOPBACK = "127.0.0.1"

# Entity path -> what it shows (docs/view.md and the recording test read this table).
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
PATH_POINTS = 500  # the path is re-logged whole with each target: bounded, so a long episode stays cheap
SOIL_COLOR = (200, 120, 50)
ROCK_COLOR = (190, 40, 40)
BUCKET_COLOR = (70, 130, 180)
TARGET_COLOR = (60, 200, 90)
PERCEPTION_COLOR = (250, 220, 40)


def _pitch_transform(tip, pitch: float) -> rr.Transform3D:
    return rr.Transform3D(translation=np.asarray(tip, float), quaternion=rr.Quaternion(xyzw=pitch_to_quaternion(float(pitch))))


class View:
    """Logging helpers over one Rerun recording stream (thread-safe, as the stream is)."""

    def __init__(self, rec: rr.RecordingStream):
        self.rec = rec
        self.target_path: list[np.ndarray] = []
        self.log_static_setup()

    def log_static_setup(self) -> None:
        self.rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)

    # ------------------------------------------------------------------ time
    def at(self, sim_time_s: float) -> None:
        self.rec.set_time(TIMELINE, duration=float(sim_time_s))

    # ------------------------------------------------------------------ static scene
    def tray(self, size_xy) -> None:
        hx, hy = (float(v) / 2 for v in size_xy)
        outline = [[-hx, -hy, 0.0], [hx, -hy, 0.0], [hx, hy, 0.0], [-hx, hy, 0.0], [-hx, -hy, 0.0]]
        self.rec.log("world/tray", rr.LineStrips3D([outline], colors=[(150, 150, 150)]), static=True)

    def camera(self, T_tray_camera, K, width: int, height: int) -> None:
        T = np.asarray(T_tray_camera, float)
        self.rec.log("world/camera", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]),
                     rr.Pinhole(image_from_camera=np.asarray(K, float).reshape(3, 3), resolution=[int(width), int(height)],
                                camera_xyz=rr.ViewCoordinates.RDF, image_plane_distance=0.1), static=True)

    def bucket_shape(self, boxes) -> None:
        """``boxes``: (centre, half extents) pairs in the bucket frame (origin at the tine tips)."""
        c, h = _boxes(boxes)
        self.rec.log("world/bucket", rr.Boxes3D(centers=c, half_sizes=h, colors=[BUCKET_COLOR],
                                                fill_mode=rr.components.FillMode.Solid), static=True)

    # ------------------------------------------------------------------ per frame
    def depth(self, image_mm: np.ndarray) -> None:
        self.rec.log("world/camera/depth", rr.DepthImage(image_mm, meter=1000.0, colormap="viridis"))

    def candidates(self, points) -> None:
        pts = np.asarray(points, float).reshape(-1, 3)
        self.rec.log("world/perception/candidates", rr.Points3D(pts, radii=0.006, colors=[PERCEPTION_COLOR]))

    def chosen_rock(self, xyz) -> None:
        self.rec.log("world/perception/chosen", rr.Points3D([np.asarray(xyz, float)], radii=0.012,
                                                            colors=[(255, 255, 255)], labels=["chosen rock"]))

    def ground(self, z: float, size_xy) -> None:
        hx, hy = (float(v) / 2 for v in size_xy)
        self.rec.log("world/perception/ground", rr.Boxes3D(centers=[[0.0, 0.0, float(z)]], half_sizes=[[hx, hy, 0.0005]],
                                                           colors=[(120, 200, 255, 60)]))

    def bucket(self, tip, pitch: float) -> None:
        self.rec.log("world/bucket", _pitch_transform(tip, pitch))

    def target(self, tip, pitch: float) -> None:
        tip = np.asarray(tip, float)
        self.rec.log("world/bucket_target", _pitch_transform(tip, pitch),
                     rr.Points3D([[0.0, 0.0, 0.0]], radii=0.006, colors=[TARGET_COLOR]))
        self.target_path.append(tip)
        del self.target_path[:-PATH_POINTS]
        # In the tray frame, beside the target: under it, the path would move with its transform.
        self.rec.log("world/target_path", rr.LineStrips3D([np.asarray(self.target_path)], colors=[TARGET_COLOR], radii=0.0015))

    def new_episode(self) -> None:
        self.target_path = []
        self.rec.log("world/target_path", rr.Clear(recursive=False))

    def soil(self, points, radius: float) -> None:
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        self.rec.log("world/soil", rr.Points3D(pts, radii=float(radius), colors=[SOIL_COLOR]))

    def rock(self, position, quat_xyzw, boxes=None) -> None:
        """The rock's pose; its boxes (rock body frame) when given (once per scene is enough)."""
        self.rec.log("world/rock", rr.Transform3D(translation=np.asarray(position, float),
                                                  quaternion=rr.Quaternion(xyzw=np.asarray(quat_xyzw, float))))
        if boxes is not None:
            c, h = _boxes(boxes)
            self.rec.log("world/rock", rr.Boxes3D(centers=c, half_sizes=h, colors=[ROCK_COLOR],
                                                  fill_mode=rr.components.FillMode.Solid))

    # ------------------------------------------------------------------ scalars
    def latency(self, ms: float) -> None:
        self.rec.log("metrics/frame_to_target_ms", rr.Scalars(float(ms)))

    def episode(self, index: int, success: bool, reward: float | None, steps: int) -> None:
        self.rec.set_time(EPISODE_TIMELINE, sequence=int(index))
        self.rec.log("episode/success", rr.Scalars(1.0 if success else 0.0))
        if reward is not None:
            self.rec.log("episode/reward", rr.Scalars(float(reward)))
        self.rec.log("episode/steps", rr.Scalars(float(steps)))
        # Later per-frame data must not carry this episode index as if it were theirs.
        self.rec.disable_timeline(EPISODE_TIMELINE)

    def flush(self) -> None:
        self.rec.flush(timeout_sec=10.0)


def _boxes(boxes) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray([b[0] for b in boxes], float).reshape(-1, 3)
    h = np.asarray([b[1] for b in boxes], float).reshape(-1, 3)
    return c, h


# ---------------------------------------------------------------------- sinks and the web server
def viewer_url(web_port: int, grpc_port: int, host: str = LOOPBACK) -> str:
    proxy = f"rerun+http://{host}:{grpc_port}/proxy"
    return f"http://{host}:{web_port}/?url={urllib.parse.quote(proxy, safe='')}"


def open_view(record: str | None = None, grpc_port: int | None = None, application_id: str = APPLICATION_ID) -> View:
    """A View writing to ``record`` (.rrd) and/or streaming to the gRPC server on loopback ``grpc_port``."""
    rec = rr.RecordingStream(application_id)
    sinks = []
    if grpc_port is not None:
        sinks.append(rr.GrpcSink(f"rerun+http://{LOOPBACK}:{int(grpc_port)}/proxy"))
    if record:
        os.makedirs(os.path.dirname(os.path.abspath(record)), exist_ok=True)
        sinks.append(rr.FileSink(record))
    if not sinks:
        raise ValueError("open_view: give a recording file, a gRPC port, or both")
    rec.set_sinks(*sinks)
    return View(rec)


def rerun_executable() -> str:
    spec = importlib.util.find_spec("rerun_cli")
    path = os.path.join(os.path.dirname(spec.origin), "rerun") if spec and spec.origin else ""
    if not os.path.isfile(path):
        raise FileNotFoundError("the Rerun CLI of rerun-sdk is missing (pip install rerun-sdk)")
    return path


class WebViewer:
    """The Rerun web viewer and its gRPC proxy, served on loopback by the Rerun CLI in its own process group."""

    def __init__(self, web_port: int = WEB_PORT, grpc_port: int = GRPC_PORT, memory_limit: str = "1GiB"):
        self.web_port, self.grpc_port = int(web_port), int(grpc_port)
        for port in (self.web_port, self.grpc_port):
            if _listening(port):
                raise OSError(f"port {port} on {LOOPBACK} is already in use (another viewer?); pick another")
        cmd = [rerun_executable(), "--serve-web", "--bind", LOOPBACK, "--port", str(self.grpc_port),
               "--web-viewer-port", str(self.web_port), "--server-memory-limit", memory_limit]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.url = viewer_url(self.web_port, self.grpc_port)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (_listening(self.web_port) and _listening(self.grpc_port)):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")[-1500:]
                raise RuntimeError(f"the Rerun web viewer exited with {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the Rerun web viewer did not listen on {self.web_port}/{self.grpc_port} in {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        import signal

        for sig, wait in ((signal.SIGINT, 3.0), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, int(port))) == 0
