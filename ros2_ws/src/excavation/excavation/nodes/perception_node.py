"""perception: depth frames -> rock position (tray), soil height, markers.

Wraps ``excavation.perception.RockPerception``. The rock position is published only when the library
gives one (it never makes one up); its stamp is the depth frame's stamp, so consumers can tell its
age and the policy can carry it to the bucket target for latency measurements. Bad frames (wrong
encoding, size mismatch, no CameraInfo yet) are logged and skipped; the node keeps running.

Besides the chosen rock, every frame publishes all rocks seen on the soil (``candidates_topic``,
geometry_msgs/PoseArray in the tray frame, identity orientations, empty when none) and the whole
estimate as JSON (``estimate_topic``, std_msgs/String): ``position`` (or null), ``confidence``,
``reason`` (e.g. "detected", "rock in bucket", "occluded by bucket"), ``in_bucket``, ``age_s``,
``detected``, ``ground_height``, ``candidates`` (each ``position``, ``protrusion``, ``area``,
``confidence``, ``touches_bucket``) and ``chosen`` (index into candidates, or null).

The bucket mask uses the bucket pose's full orientation and the cell's bucket geometry: a ``bucket:``
section in ``perception_config_file`` with excavation_contract.BucketGeometry fields (default: the
contract's bucket).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import yaml

from excavation_contract import interfaces as I
from excavation import ros_common as rc
from excavation.ros_common import Param, in_range, one_of

PARAMS = {
    "depth_topic": Param(I.REALSENSE_IMAGE, "Depth image topic (sensor_msgs/Image, 16UC1 mm or 32FC1 m)."),
    "info_topic": Param(I.REALSENSE_INFO, "CameraInfo topic of the depth stream."),
    "bucket_pose_topic": Param(I.BUCKET_POSE, "Bucket pose from the driver (masks the bucket out of the depth)."),
    "rock_topic": Param(I.ROCK_POSITION, "Output: rock centre (geometry_msgs/PointStamped, tray)."),
    "ground_topic": Param(I.GROUND_HEIGHT, "Output: soil height at the tray centre (std_msgs/Float64, m)."),
    "marker_topic": Param(I.PERCEPTION_MARKERS, "Output: rock and ground markers (MarkerArray)."),
    "candidates_topic": Param(I.ROCK_CANDIDATES, "Output: every rock seen on the soil (geometry_msgs/PoseArray, tray)."),
    "estimate_topic": Param(I.PERCEPTION_ESTIMATE, "Output: the whole estimate as JSON (std_msgs/String; fields in the module doc)."),
    "publish_markers": Param(True, "Publish markers."),
    "soil_grain_size": Param(-1.0, "Soil grain size (m) overriding the config file's detector.soil_grain_size; "
                             "negative = keep it. The simulator's is its resolution.", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v < 1.0, "a number < 1 (m)"),
    "calibration_file": Param("", "Tray calibration YAML (camera pose in the tray) from calibrate_tray; empty = the package's config/calibration.yaml."),
    "perception_config_file": Param("", "Optional YAML with 'detector' and 'tracker' sections overriding PerceptionConfig / TrackerConfig fields."),
    "qos_reliability": Param("reliable", "Reliability of the camera subscriptions (match the camera's publisher).", one_of("reliable", "best_effort"), "reliable | best_effort"),
    "qos_depth": Param(2, "History depth of the camera subscriptions.", lambda v: isinstance(v, int) and 1 <= v <= 100, "integer in [1, 100]"),
    "bucket_pose_timeout_s": Param(0.5, "A bucket pose older than the frame by more than this is not used for masking (s).", in_range(0.0, 10.0), "[0, 10]"),
}


TRAY_CALIBRATION_FILE = "calibration.yaml"  # what calibrate_tray writes into the cell's config by default


def resolve_config(path: str) -> str:
    """A bare file name that is not in the working folder names a file of the package's config folder."""
    import os

    if path and not os.path.isabs(path) and os.sep not in path and not os.path.exists(path):
        return rc.config_file(path)
    return path


def load_perception_config(path: str):
    """(PerceptionConfig, TrackerConfig, BucketGeometry) from a YAML file with optional ``detector``,
    ``tracker`` and ``bucket`` sections; defaults for an empty path."""
    from dataclasses import fields

    from excavation_contract import DEFAULT_BUCKET, BucketGeometry
    from excavation.perception import PerceptionConfig, TrackerConfig

    if not path:
        return PerceptionConfig(), TrackerConfig(), DEFAULT_BUCKET
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or set(data) - {"detector", "tracker", "bucket"}:
        raise ValueError(f"{path}: must hold a mapping with only 'detector', 'tracker' and 'bucket' sections")
    det = PerceptionConfig.from_dict(data.get("detector") or {})
    trk_data = data.get("tracker") or {}
    trk = TrackerConfig.from_dict(trk_data) if hasattr(TrackerConfig, "from_dict") else TrackerConfig(**trk_data)
    bucket_data = data.get("bucket") or {}
    known = {f.name for f in fields(BucketGeometry)}
    if not isinstance(bucket_data, dict) or set(bucket_data) - known:
        raise ValueError(f"{path}: 'bucket' takes BucketGeometry fields {sorted(known)}, got {bucket_data!r}")
    bucket = BucketGeometry(**{k: tuple(v) if isinstance(v, list) else v for k, v in bucket_data.items()})
    return det, trk, bucket


def main(args=None) -> int:
    import json
    from dataclasses import replace

    from geometry_msgs.msg import PointStamped, Pose, PoseArray, PoseStamped
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Float64, String
    from visualization_msgs.msg import MarkerArray

    from excavation import markers as M
    from excavation.perception import (BucketPose, CameraIntrinsics, PerceptionInputError, Reason, RockPerception,
                                       image_from_buffer, load_calibration)

    class PerceptionNode(Node):
        def __init__(self):
            super().__init__("perception")
            self.p = p = rc.declare_params(self, PARAMS)
            try:
                self.cal = load_calibration(p["calibration_file"] or rc.config_file(TRAY_CALIBRATION_FILE))
                det, trk, geom = load_perception_config(resolve_config(p["perception_config_file"]))
                if p["soil_grain_size"] >= 0:
                    det = replace(det, soil_grain_size=float(p["soil_grain_size"])).validate()
            except (PerceptionInputError, OSError, TypeError) as exc:
                raise ValueError(f"perception: {exc}") from None
            self.perception = RockPerception(det, trk, self.cal, geom)
            self.get_logger().info(f"perception: {'coarse' if det.coarse_soil else 'fine'} soil "
                                   f"(grain {det.soil_grain_size * 1e3:.0f} mm), bucket {geom}")
            self.intrinsics = None
            self.info_key = None
            self.bucket = None  # (stamp_s, BucketPose)
            self.frames = 0
            self.ms = []
            qos = rc.make_qos(p["qos_reliability"], p["qos_depth"])
            self.pub_rock = self.create_publisher(PointStamped, p["rock_topic"], 10)
            self.pub_ground = self.create_publisher(Float64, p["ground_topic"], 10)
            self.pub_markers = self.create_publisher(MarkerArray, p["marker_topic"], 10)
            self.pub_candidates = self.create_publisher(PoseArray, p["candidates_topic"], 10)
            self.pub_estimate = self.create_publisher(String, p["estimate_topic"], 10)
            self.create_subscription(CameraInfo, p["info_topic"], self._on_info, qos)
            self.create_subscription(Image, p["depth_topic"], self._on_image, qos)
            self.create_subscription(PoseStamped, p["bucket_pose_topic"], self._on_bucket, 10)
            self.get_logger().info(f"perception: {p['depth_topic']} + {p['info_topic']} -> {p['rock_topic']}")

        def _on_info(self, msg):
            key = (tuple(msg.k), msg.width, msg.height)
            if key == self.info_key:
                return
            try:
                self.intrinsics = CameraIntrinsics.from_camera_info(msg)
                self.info_key = key
            except (PerceptionInputError, ValueError) as exc:
                self.get_logger().error(f"CameraInfo rejected: {exc}", throttle_duration_sec=5.0)

        def _on_bucket(self, msg):
            p, o = msg.pose.position, msg.pose.orientation
            try:
                pose = BucketPose.from_quaternion((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))
                self.bucket = (rc.stamp_to_s(msg.header.stamp), pose)
            except (ValueError, PerceptionInputError) as exc:
                self.get_logger().error(f"bucket pose rejected: {exc}", throttle_duration_sec=5.0)

        def _on_image(self, msg):
            if self.intrinsics is None:
                self.get_logger().warning("depth frame skipped: no CameraInfo yet", throttle_duration_sec=5.0)
                return
            t0 = time.perf_counter()
            stamp_s = rc.stamp_to_s(msg.header.stamp)
            bucket = None
            if self.bucket is not None and abs(stamp_s - self.bucket[0]) <= self.p["bucket_pose_timeout_s"]:
                bucket = self.bucket[1]
            try:
                image = image_from_buffer(msg.data, msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian))
                est = self.perception.process(image, msg.encoding, self.intrinsics, stamp_s, bucket=bucket)
            except (PerceptionInputError, ValueError) as exc:
                self.get_logger().error(f"depth frame rejected: {exc}", throttle_duration_sec=2.0)
                return
            except Exception as exc:  # never let one odd frame take the node down
                self.get_logger().error(f"perception failed on a frame: {exc!r}", throttle_duration_sec=2.0)
                return
            self.frames += 1
            markers = []
            if est.position is not None and np.all(np.isfinite(est.position)):
                pt = PointStamped()
                pt.header.stamp, pt.header.frame_id = msg.header.stamp, I.TRAY_FRAME
                pt.point.x, pt.point.y, pt.point.z = (float(v) for v in est.position)
                self.pub_rock.publish(pt)
                markers.append(M.rock_marker(msg.header.stamp, est.position, detected=est.detected))
            elif est.reason == Reason.NO_VALID_DEPTH:
                # A blind camera: nothing is published, so the policy's inputs go stale and it holds.
                self.get_logger().warning(f"no rock position: {est.reason} (camera blind?); "
                                          f"downstream holds still", throttle_duration_sec=2.0)
            else:
                self.get_logger().info(f"no rock: {est.reason}", throttle_duration_sec=2.0)
            cands = PoseArray()
            cands.header.stamp, cands.header.frame_id = msg.header.stamp, I.TRAY_FRAME
            for c in est.candidates:
                pose = Pose()
                pose.position.x, pose.position.y, pose.position.z = (float(v) for v in c.position)
                pose.orientation.w = 1.0
                cands.poses.append(pose)
            self.pub_candidates.publish(cands)
            self.pub_estimate.publish(String(data=json.dumps(est.as_dict())))
            markers += M.candidate_markers(msg.header.stamp, [c.position for c in est.candidates], est.chosen)
            if est.ground_height is not None and np.isfinite(est.ground_height):
                self.pub_ground.publish(Float64(data=float(est.ground_height)))
                markers.append(M.ground_marker(msg.header.stamp, est.ground_height, self.cal.tray_size))
            if self.p["publish_markers"] and markers:
                self.pub_markers.publish(M.marker_array(markers))
            self.ms.append((time.perf_counter() - t0) * 1e3)
            if len(self.ms) >= 100:
                self.get_logger().info(f"perception: median {np.median(self.ms):.1f} ms/frame over {len(self.ms)} frames")
                self.ms.clear()

    return rc.run_node(PerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())
