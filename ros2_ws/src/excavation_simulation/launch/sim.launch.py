"""The simulated excavation stack: sim_world + sim_camera + sim_robot + perception + policy + episode_runner.

    ros2 launch excavation_simulation sim.launch.py policy:=/path/to/policies/default resolution:=50 episodes:=3

The graph (nodes, and which argument sets which parameter) is ``excavation_simulation.graph``, the same
one the pip launcher ``launch_stack`` starts; every node reads this package's config/sim.yaml, and an
argument's default is that file's value. sim_world publishes /clock; every other node runs on
use_sim_time. The launch ends when the episode runner has printed its summary (or the policy node
refuses its bundle). ``view:=true`` / ``record_view:=FILE.rrd`` add the Rerun view (docs/view.md).
``ros2 launch excavation_simulation sim.launch.py --show-args`` lists every argument.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

from excavation_simulation import graph

PACKAGE = "excavation_simulation"
CONFIG_FILE = "sim.yaml"
DDS_PROFILE_FILE = "fastdds_large_frames.xml"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    robot_share = get_package_share_directory(graph.ROBOT_PACKAGE)
    default_config = os.path.join(share, "config", CONFIG_FILE)
    defaults = graph.argument_defaults(default_config)
    args = [DeclareLaunchArgument(a.name, default_value=defaults[a.name], description=a.description,
                                  **({"choices": list(a.choices)} if a.choices else {}))
            for a in graph.ARGUMENTS]
    args += [
        DeclareLaunchArgument("record", default_value="", description="Non-empty: write an MCAP rosbag2 of the run "
                                                                      "to this folder."),
        DeclareLaunchArgument("view", default_value="false", choices=["true", "false"],
                              description="Serve the Rerun web viewer of the run on 127.0.0.1:view_port (needs rerun-sdk)."),
        DeclareLaunchArgument("view_port", default_value=str(graph.VIEW_WEB_PORT),
                              description="Port of the Rerun web viewer page on 127.0.0.1."),
        DeclareLaunchArgument("record_view", default_value="", description="Non-empty: write the Rerun view of the run "
                                                                           "to this .rrd file (needs rerun-sdk)."),
        DeclareLaunchArgument("config", default_value=default_config, description="ROS parameter file of every node."),
        DeclareLaunchArgument("dds_profile",
                              default_value=EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                                                                default_value=os.path.join(robot_share, "config",
                                                                                           DDS_PROFILE_FILE)),
                              description="Fast DDS XML profile for every node (8 MB shared-memory segments, so a "
                                          "600 kB depth frame crosses processes in ~2.5 ms, not ~13 ms); empty = "
                                          "Fast DDS defaults."),
    ]
    dds_profile = LaunchConfiguration("dds_profile")
    has_dds_profile = IfCondition(PythonExpression(["'", dds_profile, "' != ''"]))
    dds_env = [SetEnvironmentVariable(name, dds_profile, condition=has_dds_profile)
               for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")]

    overrides = {n.name: {} for n in graph.NODES}
    overrides[graph.CLOCK_SOURCE]["use_sim_time"] = False
    for a in graph.ARGUMENTS:
        for node, param in a.targets:
            overrides[node][param] = LaunchConfiguration(a.name)
    node, param = graph.GRAIN_SIZE_TARGET
    overrides[node][param] = PythonExpression([LaunchConfiguration("resolution"), " / 1000.0"])
    view, record_view = LaunchConfiguration("view"), LaunchConfiguration("record_view")
    viewing = PythonExpression(["'", view, "' == 'true' or '", record_view, "' != ''"])
    overrides[graph.CLOCK_SOURCE]["publish_scene_every"] = PythonExpression(
        [str(graph.VIEW_SCENE_EVERY), " if (", viewing, ") else 0"])
    nodes = {n.name: Node(package=n.package, executable=n.executable, name=n.name, output="screen",
                          parameters=[LaunchConfiguration("config"), overrides[n.name]])
             for n in graph.NODES}
    record = LaunchConfiguration("record")
    recorder = ExecuteProcess(
        cmd=["python3", "-m", graph.RECORDER.module, "--output", record, "--ros-args", "-p", "use_sim_time:=true"],
        output="screen", condition=IfCondition(PythonExpression(["'", record, "' != ''"])),
    )
    viewer = Node(package=graph.VIEW.package, executable=graph.VIEW.executable, name=graph.VIEW.name, output="screen",
                  parameters=[{"use_sim_time": True, "serve": PythonExpression(["'", view, "' == 'true'"]),
                               "web_port": LaunchConfiguration("view_port"), "grpc_port": graph.VIEW_GRPC_PORT,
                               "record": record_view, "depth_topic": LaunchConfiguration("depth_topic"),
                               "info_topic": LaunchConfiguration("info_topic")}],
                  condition=IfCondition(viewing))
    # The run is over when the runner exits (summary printed), or when the policy refuses its bundle.
    ends = [RegisterEventHandler(OnProcessExit(target_action=nodes[name],
                                               on_exit=[EmitEvent(event=Shutdown(reason=f"{name} exited"))]))
            for name in ("episode_runner", "policy")]
    return LaunchDescription(args + dds_env + list(nodes.values()) + [recorder, viewer] + ends)
