"""ROS 2 names and types of the robot graph: the interface both robot drivers serve (real ``ur5e_driver``
and the simulated ``sim_robot``), perception's outputs and the depth camera's inputs.

Perception and policy nodes use only these, so they run unchanged on the real and simulated arm.
Types are given as "package/msg/Name" strings plus ``msg_type(...)`` for a lazy import, so this
module imports without ROS installed.
"""

from __future__ import annotations

import importlib

from .frames import BASE_FRAME, TRAY_FRAME  # noqa: F401  (the driver interface's frames)
from .geometry import pitch_to_quaternion, quaternion_to_pitch  # noqa: F401  (bucket poses carry pitch so)

# Published by the robot driver.
JOINT_STATES = "joint_states"  # sensor_msgs/msg/JointState, UR joint names, rad, rad/s
BUCKET_POSE = "bucket_pose"  # geometry_msgs/msg/PoseStamped, frame `tray`: tip position, pitch about y
TCP_WRENCH = "tcp_wrench"  # geometry_msgs/msg/WrenchStamped, frame `base` (RTDE actual_TCP_force)
ROCK_IN_BUCKET = "rock_in_bucket"  # std_msgs/msg/Bool
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/msg/DiagnosticArray
# Subscribed by the robot driver.
BUCKET_TARGET = "bucket_target"  # geometry_msgs/msg/PoseStamped in `tray` (tip position, pitch about y)
# Services of the robot driver (std_srvs/srv/Trigger).
ENABLE = "enable"  # allow motion (after connect, recover, or stop)
STOP = "stop"  # stop motion now and disable
RECOVER = "recover"  # clear a protective stop / e-stop aftermath, or retry a lost connection

TOPICS = {
    JOINT_STATES: "sensor_msgs/msg/JointState",
    BUCKET_POSE: "geometry_msgs/msg/PoseStamped",
    TCP_WRENCH: "geometry_msgs/msg/WrenchStamped",
    ROCK_IN_BUCKET: "std_msgs/msg/Bool",
    DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
    BUCKET_TARGET: "geometry_msgs/msg/PoseStamped",
}
SERVICES = {ENABLE: "std_srvs/srv/Trigger", STOP: "std_srvs/srv/Trigger", RECOVER: "std_srvs/srv/Trigger"}
# Perception outputs.
ROCK_POSITION = "rock_position"  # geometry_msgs/msg/PointStamped (tray), stamp = depth frame's stamp
GROUND_HEIGHT = "ground_height"  # std_msgs/msg/Float64 (m, tray z of the soil at the tray centre)
PERCEPTION_MARKERS = "perception/markers"
ROCK_CANDIDATES = "perception/rock_candidates"  # geometry_msgs/msg/PoseArray (tray): every rock seen on the soil
PERCEPTION_ESTIMATE = "perception/estimate"  # std_msgs/msg/String, JSON of RockEstimate.as_dict()
POLICY_MARKERS = "policy/markers"
# The depth camera, with realsense-ros's names.
REALSENSE_IMAGE = "/camera/camera/depth/image_rect_raw"
REALSENSE_INFO = "/camera/camera/depth/camera_info"

DRIVER_PUBLISHES = (JOINT_STATES, BUCKET_POSE, TCP_WRENCH, ROCK_IN_BUCKET, DIAGNOSTICS)
DRIVER_SUBSCRIBES = (BUCKET_TARGET,)


def driver_message_types():
    """The message and service classes of the driver interface (imported here, so ROS must be installed).

    Both robot drivers (real and simulated) take their types from this one place.
    """
    from types import SimpleNamespace

    return SimpleNamespace(
        JointState=msg_type(TOPICS[JOINT_STATES]),
        PoseStamped=msg_type(TOPICS[BUCKET_POSE]),
        WrenchStamped=msg_type(TOPICS[TCP_WRENCH]),
        Bool=msg_type(TOPICS[ROCK_IN_BUCKET]),
        DiagnosticArray=msg_type(TOPICS[DIAGNOSTICS]),
        Trigger=msg_type(SERVICES[ENABLE]),
    )


def msg_type(type_name: str):
    """Import a message/service class from its "pkg/msg/Name" string."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
