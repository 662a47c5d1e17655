"""Records the stack's topics into an MCAP rosbag2 (``launch_stack --record DIR``).

Subscribes with ``raw=True`` so messages are written as the CDR bytes that came over the wire (no
re-serialisation), through ``rosbags`` (no rosbag2 install needed). Timestamps are ROS time (sim
time under ``use_sim_time``), falling back to wall time before the first /clock.
"""

from __future__ import annotations

import argparse
import sys
import threading

from . import interfaces as I
from . import ros_common as rc

TOPICS = {
    "/clock": "rosgraph_msgs/msg/Clock",
    "/" + I.BUCKET_POSE: "geometry_msgs/msg/PoseStamped",
    "/" + I.BUCKET_TARGET: "geometry_msgs/msg/PoseStamped",
    "/" + I.JOINT_STATES: "sensor_msgs/msg/JointState",
    "/" + I.TCP_WRENCH: "geometry_msgs/msg/WrenchStamped",
    "/" + I.ROCK_IN_BUCKET: "std_msgs/msg/Bool",
    I.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
    "/" + rc.ROCK_POSITION: "geometry_msgs/msg/PointStamped",
    "/" + rc.GROUND_HEIGHT: "std_msgs/msg/Float64",
    "/" + rc.PERCEPTION_MARKERS: "visualization_msgs/msg/MarkerArray",
    "/" + rc.POLICY_MARKERS: "visualization_msgs/msg/MarkerArray",
    "/" + rc.SIM_ROCK_POSE: "geometry_msgs/msg/PoseStamped",
    "/" + rc.SIM_SUCCESS: "std_msgs/msg/Bool",
    "/" + rc.SIM_EPISODE: "std_msgs/msg/String",
    rc.REALSENSE_INFO: "sensor_msgs/msg/CameraInfo",
}
IMAGE_TOPICS = {rc.REALSENSE_IMAGE: "sensor_msgs/msg/Image"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="recorder")
    ap.add_argument("--output", required=True, help="bag folder to create (must not exist)")
    ap.add_argument("--images", action="store_true", help="also record the depth images")
    import rclpy

    a = ap.parse_args(rclpy.utilities.remove_ros_args(argv if argv is not None else sys.argv)[1:])
    from rclpy.node import Node
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    topics = dict(TOPICS, **(IMAGE_TOPICS if a.images else {}))
    store = get_typestore(Stores.ROS2_JAZZY)
    try:
        writer = Writer(a.output, version=8, storage_plugin=StoragePlugin.MCAP)
        writer.open()
    except Exception as exc:
        print(f"[ERROR] recorder: cannot create bag {a.output}: {exc}", file=sys.stderr)
        return rc.EXIT_BAD_CONFIG
    lock = threading.Lock()

    class Recorder(Node):
        def __init__(self):
            super().__init__("recorder")
            self.count = 0
            for topic, typ in topics.items():
                conn = writer.add_connection(topic, typ, typestore=store)
                qos = rc.make_qos("reliable", 10)
                self.create_subscription(I.msg_type(typ), topic, self._cb(conn), qos, raw=True)

        def _cb(self, conn):
            def cb(data: bytes):
                t = self.get_clock().now().nanoseconds
                with lock:
                    writer.write(conn, t, data)
                    self.count += 1

            return cb

    def close(node):
        with lock:
            writer.close()
        print(f"recorder: wrote {node.count} messages to {a.output}", flush=True)

    return rc.run_node(Recorder, argv, on_shutdown=close)


if __name__ == "__main__":
    sys.exit(main())
