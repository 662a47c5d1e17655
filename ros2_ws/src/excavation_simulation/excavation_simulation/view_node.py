"""view: the simulated stack in Rerun, live in a web page on loopback and/or recorded to an .rrd file.

Subscribes to what the stack already publishes (depth image and CameraInfo, perception's candidates,
chosen rock and ground height, the bucket pose the physics realised and the policy's target, the
rock's true pose, the episode status) and to what sim_world adds for the view when its
``publish_scene_every`` is set (soil particles, rock and bucket boxes); logs them with
``excavation_simulation.view`` (entity names: ``ENTITIES`` of ``excavation_sim.scene_view``).

It never slows the loop it watches: every subscription is best effort with a history of one (a
reliable publisher never waits for this reader) and the camera's are decimated by ``depth_every``;
Rerun encodes and sends on its own threads.

Started by ``launch_stack --view`` / ``--record-view FILE.rrd`` (or ``sim.launch.py view:=true``).
Rerun is an optional dependency; without it this node exits 2 and says how to install it.
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np

from excavation import ros_common as rc
from excavation.ros_common import Param, one_of
from excavation_contract import interfaces as I
from excavation_simulation import graph
from excavation_simulation import topics as T
from excavation_simulation.frame_latency import FrameLatency
# The pin and the missing-SDK message have one home, beside the entity names (excavation_sim.scene_view).
from excavation_sim.scene_view import RERUN_PIN, rerun_missing  # noqa: F401  (RERUN_PIN: launcher, tests)

PARAMS = {
    "serve": Param(False, "Serve the Rerun web viewer on loopback (web_port; data on grpc_port)."),
    "web_port": Param(9090, "Port of the web viewer page on 127.0.0.1.", lambda v: isinstance(v, int) and 1 <= v <= 65535, "port"),
    "grpc_port": Param(9876, "Port of the Rerun gRPC proxy the page reads from, on 127.0.0.1.", lambda v: isinstance(v, int) and 1 <= v <= 65535, "port"),
    "record": Param("", "Non-empty: also write the view to this .rrd file (replay: rerun FILE.rrd)."),
    "depth_topic": Param(I.REALSENSE_IMAGE, "Depth image topic (16UC1 mm)."),
    "info_topic": Param(I.REALSENSE_INFO, "CameraInfo topic (pinhole, and the start of the latency)."),
    "depth_every": Param(1, "Log every this many depth frames.", lambda v: isinstance(v, int) and v >= 1, "integer >= 1"),
    "calibration_file": Param("", "Tray calibration YAML placing the camera; empty = the package's calibration_sim.yaml."),
    "qos_reliability": Param("best_effort", "Reliability of the subscriptions; best effort never holds a publisher back.",
                             one_of("reliable", "best_effort"), "reliable | best_effort"),
}


def cloud_xyz(msg) -> np.ndarray:
    """x y z float32 of a packed PointCloud2 (as sim_world writes it: 12-byte points)."""
    if msg.point_step != 12 or not msg.width:
        return np.zeros((0, 3), np.float32)
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(-1, 3)


def main(args=None) -> int:
    missing = rerun_missing()
    if missing:
        print(f"[ERROR] view: {missing}", file=sys.stderr, flush=True)
        return rc.EXIT_BAD_CONFIG
    from geometry_msgs.msg import PointStamped, PoseArray, PoseStamped
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Float64, String
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from excavation.perception import load_calibration
    from excavation.perception.depth import image_from_buffer

    from excavation_simulation import view as V

    class ViewNode(Node):
        def __init__(self):
            super().__init__("view")
            self.p = p = rc.declare_params(self, PARAMS)
            if not p["serve"] and not p["record"]:
                raise ValueError("view: nothing to do: set serve true and/or record to an .rrd path")
            self.web = None
            if p["serve"]:
                try:
                    self.web = V.WebViewer(p["web_port"], p["grpc_port"])
                    self.web.wait_ready()
                except (OSError, RuntimeError, TimeoutError) as exc:
                    raise ValueError(f"view: cannot serve the web viewer: {exc}") from None
            try:
                self.v = V.open_view(record=p["record"] or None, grpc_port=p["grpc_port"] if p["serve"] else None)
                cal = load_calibration(p["calibration_file"] or rc.config_file("calibration_sim.yaml", graph.PACKAGE))
            except Exception:
                if self.web is not None:
                    self.web.stop()  # its own process group: nothing else would end it
                raise
            self.T_tray_camera = np.asarray(cal.T_tray_camera, float)
            self.tray_size = tuple(cal.tray_size)
            self.v.tray(self.tray_size)
            self.lock = threading.Lock()
            self.camera_shape = None
            self.frames = 0
            self.latency = FrameLatency()
            self.episode_logged = 0
            self.episode_seen = 0
            self.soil_radius = 0.005
            self.rock_boxes = None
            qos = rc.make_qos(p["qos_reliability"], 1)
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            sub = self.create_subscription
            sub(CameraInfo, p["info_topic"], self._on_info, qos)
            sub(Image, p["depth_topic"], self._on_depth, qos)
            sub(PoseArray, "/" + I.ROCK_CANDIDATES, self._on_candidates, qos)
            sub(PointStamped, "/" + I.ROCK_POSITION, self._on_chosen, qos)
            sub(Float64, "/" + I.GROUND_HEIGHT, self._on_ground, qos)
            sub(PoseStamped, "/" + T.SIM_BUCKET_STATE, self._on_bucket, qos)
            sub(PoseStamped, "/" + I.BUCKET_TARGET, self._on_target, rc.make_qos(p["qos_reliability"], 10))
            sub(PoseStamped, "/" + T.SIM_ROCK_POSE, self._on_rock, qos)
            sub(String, "/" + T.SIM_EPISODE, self._on_status, rc.make_qos(p["qos_reliability"], 10))
            sub(PointCloud2, "/" + T.SIM_SOIL_POINTS, self._on_soil, qos)
            sub(String, "/" + T.SIM_SCENE_SHAPES, self._on_shapes, latched)
            where = [f"web viewer {self.web.url}"] if self.web else []
            where += [f"recording {p['record']}"] if p["record"] else []
            self.get_logger().info("view: " + ", ".join(where))

        def _at(self, stamp=None) -> None:
            self.v.at(rc.stamp_to_s(stamp) if stamp is not None else rc.now_s(self))

        # ------------------------------------------------------------ camera
        def _on_info(self, msg):
            self.latency.frame(msg.header.stamp)
            shape = (int(msg.width), int(msg.height), tuple(msg.k))
            if shape != self.camera_shape:
                self.camera_shape = shape
                self.v.camera(self.T_tray_camera, msg.k, msg.width, msg.height)

        def _on_depth(self, msg):
            self.frames += 1
            if (self.frames - 1) % self.p["depth_every"]:
                return
            try:
                img = image_from_buffer(msg.data, msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian))
            except ValueError as exc:
                self.get_logger().warning(f"view: depth frame skipped: {exc}", throttle_duration_sec=5.0)
                return
            self._at(msg.header.stamp)
            self.v.depth(img)

        # ------------------------------------------------------------ perception
        def _on_candidates(self, msg):
            self._at(msg.header.stamp)
            self.v.candidates([[q.position.x, q.position.y, q.position.z] for q in msg.poses])

        def _on_chosen(self, msg):
            self._at(msg.header.stamp)
            self.v.chosen_rock([msg.point.x, msg.point.y, msg.point.z])

        def _on_ground(self, msg):
            self._at()
            self.v.ground(msg.data, self.tray_size)

        # ------------------------------------------------------------ bucket and target
        def _on_bucket(self, msg):
            xyz, pitch, _ = rc.pose_from_msg(msg)
            self._at(msg.header.stamp)
            self.v.bucket(xyz, pitch)

        def _on_target(self, msg):
            ms = self.latency.target(msg.header.stamp)
            xyz, pitch, _ = rc.pose_from_msg(msg)
            self._at(msg.header.stamp)
            self.v.target(xyz, pitch)
            if ms is not None:
                self.v.latency(ms)

        # ------------------------------------------------------------ simulator truth
        def _on_rock(self, msg):
            q = msg.pose.orientation
            self._at(msg.header.stamp)
            boxes, self.rock_boxes = self.rock_boxes, None  # the boxes ride along once, with the next pose
            self.v.rock([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z], [q.x, q.y, q.z, q.w], boxes)

        def _on_soil(self, msg):
            self._at(msg.header.stamp)
            self.v.soil(cloud_xyz(msg), self.soil_radius)

        def _on_shapes(self, msg):
            try:
                s = json.loads(msg.data)
            except ValueError:
                return
            self.soil_radius = float(s.get("resolution_mm", 10.0)) / 2000.0
            self.v.bucket_shape(s["bucket_boxes"])
            self.rock_boxes = s["rock_boxes"]

        def _on_status(self, msg):
            try:
                s = json.loads(msg.data)
            except ValueError:
                return
            ep = int(s.get("episode", 0))
            if ep > self.episode_seen:
                self.episode_seen = ep
                self.v.new_episode()
            if s.get("state") == "done" and ep > self.episode_logged:
                self.episode_logged = ep
                self._at()
                self.v.episode(ep, s.get("result") == "success", s.get("reward"), int(s.get("step", 0)))

    def shutdown(node):
        try:
            node.v.flush()
            node.v.rec.disconnect()
        finally:
            if node.web is not None:
                node.web.stop()

    return rc.run_node(ViewNode, args, on_shutdown=shutdown)


if __name__ == "__main__":
    sys.exit(main())
