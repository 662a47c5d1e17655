"""Records the stack's topics into an MCAP rosbag2 (``launch_stack --record DIR``).

Subscribes with ``raw=True`` so messages are written as the CDR bytes that came over the wire (no
re-serialisation), through ``rosbags`` (no rosbag2 install needed). Timestamps are ROS time (sim
time under ``use_sim_time``), falling back to wall time before the first /clock.
"""

from __future__ import annotations

import argparse
import sys
import threading

from excavation_contract import interfaces as I
from . import ros_common as rc

TOPICS = {
    "/clock": "rosgraph_msgs/msg/Clock",
    "/" + I.BUCKET_POSE: "geometry_msgs/msg/PoseStamped",
    "/" + I.BUCKET_TARGET: "geometry_msgs/msg/PoseStamped",
    "/" + I.JOINT_STATES: "sensor_msgs/msg/JointState",
    "/" + I.TCP_WRENCH: "geometry_msgs/msg/WrenchStamped",
    "/" + I.ROCK_IN_BUCKET: "std_msgs/msg/Bool",
    I.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
    "/" + I.ROCK_POSITION: "geometry_msgs/msg/PointStamped",
    "/" + I.GROUND_HEIGHT: "std_msgs/msg/Float64",
    "/" + I.PERCEPTION_MARKERS: "visualization_msgs/msg/MarkerArray",
    "/" + I.POLICY_MARKERS: "visualization_msgs/msg/MarkerArray",
    I.REALSENSE_INFO: "sensor_msgs/msg/CameraInfo",
}
IMAGE_TOPICS = {I.REALSENSE_IMAGE: "sensor_msgs/msg/Image"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="recorder")
    ap.add_argument("--output", required=True, help="bag folder to create (must not exist)")
    ap.add_argument("--images", action="store_true", help="also record the depth images")
    ap.add_argument("--topic", action="append", default=[], metavar="NAME:TYPE",
                    help="also record NAME (type pkg/msg/Name), e.g. a simulated cell's ground truth; repeatable")
    import rclpy

    a = ap.parse_args(rclpy.utilities.remove_ros_args(argv if argv is not None else sys.argv)[1:])
    from rclpy.node import Node
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    topics = dict(TOPICS, **(IMAGE_TOPICS if a.images else {}))
    for item in a.topic:
        name, _, typ = item.rpartition(":")
        if not name or typ.count("/") != 2:
            print(f"[ERROR] recorder: --topic {item!r}: expected NAME:pkg/msg/Type", file=sys.stderr)
            return rc.EXIT_BAD_CONFIG
        topics[name] = typ
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
