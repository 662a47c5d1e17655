"""sim_camera: the simulated depth camera as the rest of the stack sees it.

sim_world renders the frames in its own process (the renderer needs the live particle state, and
copying the scene to another process would cost more than the render) and publishes them on
``sim/camera/depth/...``. This node, in its own process like the realsense-ros driver, republishes
them under the realsense-ros names with the configured QoS, and can inject the camera faults the
stack must survive: dropped frames, a frozen stream (no frames at all after ``freeze_after_s``), an
added delay. Frames keep their render stamp, so downstream staleness checks see real frame ages.
"""

from __future__ import annotations

import random
import sys
import time

from excavation import ros_common as rc
from excavation_contract import interfaces as I
from excavation_simulation import topics as T
from excavation.ros_common import Param, in_range, one_of

PARAMS = {
    "input_image_topic": Param(T.SIM_RAW_IMAGE, "Rendered depth images from sim_world."),
    "input_info_topic": Param(T.SIM_RAW_INFO, "Rendered CameraInfo from sim_world."),
    "image_topic": Param(I.REALSENSE_IMAGE, "Published depth image topic (realsense-ros name by default)."),
    "info_topic": Param(I.REALSENSE_INFO, "Published CameraInfo topic."),
    "qos_reliability": Param("reliable", "Reliability of the subscriptions and publishers.", one_of("reliable", "best_effort"), "reliable | best_effort"),
    "qos_depth": Param(2, "History depth of the camera QoS.", lambda v: isinstance(v, int) and 1 <= v <= 100, "integer in [1, 100]"),
    "drop_rate": Param(0.0, "Fault injection: fraction of frames dropped at random.", in_range(0.0, 1.0), "[0, 1]"),
    "freeze_after_s": Param(0.0, "Fault injection: stop publishing after this much sim time (s); 0 = never.", in_range(0.0, 1e6), "[0, 1e6]"),
    "delay_s": Param(0.0, "Fault injection: wall delay added before republishing (s).", in_range(0.0, 5.0), "[0, 5]"),
    "seed": Param(0, "Seed of the drop pattern.", lambda v: isinstance(v, int), "integer"),
}


def main(args=None) -> int:
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    class SimCamera(Node):
        def __init__(self):
            super().__init__("sim_camera")
            self.p = p = rc.declare_params(self, PARAMS)
            qos = rc.make_qos(p["qos_reliability"], p["qos_depth"])
            self.rng = random.Random(p["seed"])
            self.pub_img = self.create_publisher(Image, p["image_topic"], qos)
            self.pub_info = self.create_publisher(CameraInfo, p["info_topic"], qos)
            self.info = None
            self.frames = 0
            self.create_subscription(CameraInfo, p["input_info_topic"], self._on_info, qos)
            self.create_subscription(Image, p["input_image_topic"], self._on_image, qos)
            self.get_logger().info(f"sim_camera: {p['input_image_topic']} -> {p['image_topic']} ({p['qos_reliability']})")

        def _on_info(self, msg):
            self.info = msg

        def _on_image(self, msg):
            p = self.p
            stamp = rc.stamp_to_s(msg.header.stamp)
            if p["freeze_after_s"] > 0 and stamp > p["freeze_after_s"]:
                self.get_logger().warning("fault injection: camera frozen", throttle_duration_sec=5.0)
                return
            if p["drop_rate"] > 0 and self.rng.random() < p["drop_rate"]:
                return
            if p["delay_s"] > 0:
                time.sleep(p["delay_s"])
            if self.info is not None and self.info.header.stamp == msg.header.stamp:
                self.pub_info.publish(self.info)
            self.pub_img.publish(msg)
            self.frames += 1

    return rc.run_node(SimCamera, args)


if __name__ == "__main__":
    sys.exit(main())
