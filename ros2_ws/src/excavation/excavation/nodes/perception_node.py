"""perception: depth frames -> rock position (tray), soil height, markers.

Wraps ``excavation.perception.RockPerception``. The rock position is published only when the library
gives one (it never makes one up); its stamp is the depth frame's stamp, so consumers can tell its
age and the policy can carry it to the bucket target for latency measurements. Bad frames (wrong
encoding, size mismatch, no CameraInfo yet) are logged and skipped; the node keeps running.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import yaml

from excavation import interfaces as I
from excavation import ros_common as rc
from excavation.ros_common import Param, in_range, one_of

PARAMS = {
    "depth_topic": Param(rc.REALSENSE_IMAGE, "Depth image topic (sensor_msgs/Image, 16UC1 mm or 32FC1 m)."),
    "info_topic": Param(rc.REALSENSE_INFO, "CameraInfo topic of the depth stream."),
    "bucket_pose_topic": Param(I.BUCKET_POSE, "Bucket pose from the driver (masks the bucket out of the depth)."),
    "rock_topic": Param(rc.ROCK_POSITION, "Output: rock centre (geometry_msgs/PointStamped, tray)."),
    "ground_topic": Param(rc.GROUND_HEIGHT, "Output: soil height at the tray centre (std_msgs/Float64, m)."),
    "marker_topic": Param(rc.PERCEPTION_MARKERS, "Output: rock and ground markers (MarkerArray)."),
    "publish_markers": Param(True, "Publish markers."),
    "calibration_file": Param("", "Tray calibration YAML (camera pose in the tray); empty = the package's calibration_sim.yaml."),
    "perception_config_file": Param("", "Optional YAML with 'detector' and 'tracker' sections overriding PerceptionConfig / TrackerConfig fields."),
    "qos_reliability": Param("reliable", "Reliability of the camera subscriptions (match the camera's publisher).", one_of("reliable", "best_effort"), "reliable | best_effort"),
    "qos_depth": Param(2, "History depth of the camera subscriptions.", lambda v: isinstance(v, int) and 1 <= v <= 100, "integer in [1, 100]"),
    "bucket_pose_timeout_s": Param(0.5, "A bucket pose older than the frame by more than this is not used for masking (s).", in_range(0.0, 10.0), "[0, 10]"),
}


def load_perception_config(path: str):
    from excavation.perception import PerceptionConfig, TrackerConfig

    if not path:
        return PerceptionConfig(), TrackerConfig()
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a mapping with 'detector' and/or 'tracker'")
    det = PerceptionConfig.from_dict(data.get("detector") or {})
    trk_data = data.get("tracker") or {}
    trk = TrackerConfig.from_dict(trk_data) if hasattr(TrackerConfig, "from_dict") else TrackerConfig(**trk_data)
    return det, trk


def main(args=None) -> int:
    from geometry_msgs.msg import PointStamped, PoseStamped
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Float64
    from visualization_msgs.msg import MarkerArray

    from excavation import markers as M
    from excavation.perception import (BucketPose, CameraIntrinsics, PerceptionInputError, Reason, RockPerception,
                                       image_from_buffer, load_calibration)

    class PerceptionNode(Node):
        def __init__(self):
            super().__init__("perception")
            self.p = p = rc.declare_params(self, PARAMS)
            try:
                self.cal = load_calibration(p["calibration_file"] or rc.config_file("calibration_sim.yaml"))
                det, trk = load_perception_config(p["perception_config_file"])
            except (PerceptionInputError, OSError, TypeError) as exc:
                raise ValueError(f"perception: {exc}") from None
            self.perception = RockPerception(det, trk, self.cal)
            self.intrinsics = None
            self.info_key = None
            self.bucket = None  # (stamp_s, BucketPose)
            self.frames = 0
            self.ms = []
            qos = rc.make_qos(p["qos_reliability"], p["qos_depth"])
            self.pub_rock = self.create_publisher(PointStamped, p["rock_topic"], 10)
            self.pub_ground = self.create_publisher(Float64, p["ground_topic"], 10)
            self.pub_markers = self.create_publisher(MarkerArray, p["marker_topic"], 10)
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
            xyz, pitch, _ = rc.pose_from_msg(msg)
            try:
                self.bucket = (rc.stamp_to_s(msg.header.stamp), BucketPose(tuple(xyz), pitch))
            except (ValueError, PerceptionInputError):
                self.get_logger().error("bucket pose rejected (non-finite)", throttle_duration_sec=5.0)

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
