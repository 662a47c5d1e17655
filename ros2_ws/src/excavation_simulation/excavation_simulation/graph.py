"""The simulated stack's ROS graph: which nodes run, and which launch argument sets which parameter.

One home, read by ``launch/sim.launch.py`` (``ros2 launch``) and by the pip launcher (``launch_stack``),
so the two start the same graph. Parameter values themselves live in ``config/sim.yaml``; an argument's
default is the value that file gives its first target, so the launchers cannot disagree with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from excavation_contract import interfaces as I

PACKAGE = "excavation_simulation"
ROBOT_PACKAGE = "excavation"
CONFIG_FILE = "sim.yaml"
DDS_PROFILE_FILE = "fastdds_large_frames.xml"  # shipped by the robot package (the real cell uses it too)


@dataclass(frozen=True)
class GraphNode:
    """One process of the graph: its node name (= its section in sim.yaml), where its executable lives,
    and the module the pip launcher runs with ``python -m``."""

    name: str
    package: str
    executable: str
    module: str


NODES: tuple[GraphNode, ...] = (
    GraphNode("sim_world", PACKAGE, "sim_world", "excavation_simulation.sim_world"),
    GraphNode("sim_camera", PACKAGE, "sim_camera", "excavation_simulation.sim_camera"),
    GraphNode("sim_robot", PACKAGE, "sim_robot", "excavation_simulation.sim_robot"),
    GraphNode("perception", ROBOT_PACKAGE, "perception", "excavation.nodes.perception_node"),
    GraphNode("policy", ROBOT_PACKAGE, "policy", "excavation.nodes.policy_node"),
    GraphNode("episode_runner", PACKAGE, "episode_runner", "excavation_simulation.episode_runner"),
)
RECORDER = GraphNode("recorder", ROBOT_PACKAGE, "recorder", "excavation.recorder")
# Optional, like the recorder: the Rerun view (needs rerun-sdk), and how often sim_world then sends it
# the soil (ticks of 0.1 s sim time; each send copies every active particle off the simulator).
VIEW = GraphNode("view", PACKAGE, "view", "excavation_simulation.view_node")
VIEW_SCENE_EVERY = 5
VIEW_WEB_PORT = 9090
VIEW_GRPC_PORT = 9876
CLOCK_SOURCE = "sim_world"  # publishes /clock, so runs on wall time; every other node on use_sim_time


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument of the simulated stack and the node parameters it sets."""

    name: str
    description: str
    targets: tuple[tuple[str, str], ...] = ()  # (node, parameter)
    choices: tuple[str, ...] | None = None
    default: str | None = None  # None: the value sim.yaml gives the first target


ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("policy", "Policy bundle folder (policy.pt + policy.json); relative paths are looked up in "
                   "the working folder, then where the package ships its bundles.", (("policy", "policy_path"),)),
    LaunchArgument("resolution", "Soil particle diameter and rock voxel edge of the simulation in mm, [5, 100]; "
                   "perception's soil grain size follows it.", (("sim_world", "resolution_mm"),)),
    LaunchArgument("episodes", "Episodes the runner plays before the launch ends.", (("episode_runner", "episodes"),)),
    LaunchArgument("randomization", "Domain randomisation per episode (the training's Table II ranges).",
                   (("sim_world", "randomization"),), choices=("true", "false")),
    LaunchArgument("depth_topic", "Depth image topic between camera and perception (realsense-ros name).",
                   (("sim_camera", "image_topic"), ("perception", "depth_topic")), default=I.REALSENSE_IMAGE),
    LaunchArgument("info_topic", "Depth CameraInfo topic between camera and perception (realsense-ros name).",
                   (("sim_camera", "info_topic"), ("perception", "info_topic"), ("episode_runner", "info_topic")),
                   default=I.REALSENSE_INFO),
    LaunchArgument("qos", "Reliability of the camera topics.",
                   (("sim_world", "qos_reliability"), ("sim_camera", "qos_reliability"),
                    ("perception", "qos_reliability"), ("episode_runner", "qos_reliability")),
                   choices=("reliable", "best_effort"), default="reliable"),
    LaunchArgument("summary_json", "Non-empty: the runner writes its episode summary as JSON to this path.",
                   (("episode_runner", "summary_json"),), default=""),
)
# Parameters both launchers set to a file of this package's config folder (the simulated cell's).
CONFIG_FILE_PARAMETERS = {
    ("sim_world", "calibration_file"): "calibration_sim.yaml",
    ("perception", "calibration_file"): "calibration_sim.yaml",
    ("perception", "perception_config_file"): "perception_sim.yaml",
}
# Perception's soil grain size [m] is the simulator's resolution [mm] / 1000: it picks the soil kind.
GRAIN_SIZE_TARGET = ("perception", "soil_grain_size")


def grain_size_m(resolution_mm: float) -> float:
    return float(resolution_mm) / 1000.0


def config_path(share_or_source_dir: str) -> str:
    return os.path.join(share_or_source_dir, "config", CONFIG_FILE)


def argument_defaults(sim_yaml: str) -> dict[str, str]:
    """Each argument's default as a launch string: its own, else what ``sim_yaml`` gives its first target."""
    import yaml

    with open(sim_yaml, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    out = {}
    for arg in ARGUMENTS:
        if arg.default is not None:
            out[arg.name] = arg.default
            continue
        node, param = arg.targets[0]
        value = (data.get(node) or {}).get("ros__parameters", {}).get(param)
        if value is None:
            raise KeyError(f"{sim_yaml}: {node}.ros__parameters.{param} is missing (default of launch argument "
                           f"{arg.name!r})")
        out[arg.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


__all__ = ["ARGUMENTS", "CLOCK_SOURCE", "CONFIG_FILE", "CONFIG_FILE_PARAMETERS", "DDS_PROFILE_FILE", "GRAIN_SIZE_TARGET", "GraphNode",
           "LaunchArgument", "NODES", "PACKAGE", "RECORDER", "ROBOT_PACKAGE", "VIEW", "VIEW_GRPC_PORT", "VIEW_SCENE_EVERY", "VIEW_WEB_PORT", "argument_defaults", "config_path",
           "grain_size_m"]
