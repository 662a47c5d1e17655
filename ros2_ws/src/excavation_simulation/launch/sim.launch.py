"""The simulated excavation stack: sim_world + sim_camera + sim_robot + perception + policy + episode_runner.

    ros2 launch excavation sim.launch.py policy:=/path/to/policies/default resolution:=50 episodes:=3

Every node reads the package's config/sim.yaml (the same file `launch_stack` uses on pip installs);
the arguments below override single values. sim_world publishes /clock; every other node runs on
use_sim_time. The launch ends when the episode runner has printed its summary.

Arguments:
  policy          policy bundle folder (policy.pt + policy.json)       [policies/default]
  resolution      simulation resolution in mm, [5, 100]                 [50.0]
  episodes        episodes the runner plays before the launch ends      [3]
  randomization   domain randomisation per episode (true/false)         [true]
  depth_topic     depth image topic between camera and perception       [/camera/camera/depth/image_rect_raw]
  info_topic      CameraInfo topic between camera and perception        [/camera/camera/depth/camera_info]
  qos             camera QoS reliability: reliable | best_effort        [reliable]
  record          non-empty: write an MCAP rosbag2 of the run to this folder  ['']
  summary_json    non-empty: the runner writes its summary JSON here    ['']
  config          parameter file for every node                         [<share>/config/sim.yaml]
  dds_profile     Fast DDS XML profile for every node; empty = Fast DDS defaults
                  [$FASTRTPS_DEFAULT_PROFILES_FILE, else <share>/config/fastdds_large_frames.xml: 8 MB
                  shared-memory segments, so a 600 kB depth frame crosses processes in ~2.5 ms, not ~13 ms]
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

PACKAGE = "excavation"
CONFIG_FILE = "sim.yaml"
DDS_PROFILE_FILE = "fastdds_large_frames.xml"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    default_config = os.path.join(share, "config", CONFIG_FILE)
    args = [
        DeclareLaunchArgument("policy", default_value="policies/default", description="policy bundle folder"),
        DeclareLaunchArgument("resolution", default_value="50.0", description="simulation resolution in mm, [5, 100]"),
        DeclareLaunchArgument("episodes", default_value="3", description="episodes the runner plays"),
        DeclareLaunchArgument("randomization", default_value="true", description="domain randomisation per episode"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/depth/image_rect_raw", description="depth image topic"),
        DeclareLaunchArgument("info_topic", default_value="/camera/camera/depth/camera_info", description="CameraInfo topic"),
        DeclareLaunchArgument("qos", default_value="reliable", description="camera QoS reliability: reliable | best_effort"),
        DeclareLaunchArgument("record", default_value="", description="non-empty: MCAP rosbag2 output folder"),
        DeclareLaunchArgument("summary_json", default_value="", description="non-empty: episode summary JSON path"),
        DeclareLaunchArgument("config", default_value=default_config, description="parameter file for every node"),
        DeclareLaunchArgument("dds_profile",
                              default_value=EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                                                                default_value=os.path.join(share, "config", DDS_PROFILE_FILE)),
                              description="Fast DDS XML profile for every node (large shared-memory segments for "
                                          "depth frames); empty = Fast DDS defaults"),
    ]
    dds_profile = LaunchConfiguration("dds_profile")
    has_dds_profile = IfCondition(PythonExpression(["'", dds_profile, "' != ''"]))
    dds_env = [SetEnvironmentVariable(name, dds_profile, condition=has_dds_profile)
               for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")]
    config = LaunchConfiguration("config")
    qos = LaunchConfiguration("qos")
    depth_topic = LaunchConfiguration("depth_topic")
    info_topic = LaunchConfiguration("info_topic")

    sim_world = Node(
        package=PACKAGE, executable="sim_world", name="sim_world", output="screen",
        parameters=[config, {"use_sim_time": False, "resolution_mm": LaunchConfiguration("resolution"),
                             "randomization": LaunchConfiguration("randomization"), "qos_reliability": qos}],
    )
    sim_camera = Node(
        package=PACKAGE, executable="sim_camera", name="sim_camera", output="screen",
        parameters=[config, {"image_topic": depth_topic, "info_topic": info_topic, "qos_reliability": qos}],
    )
    sim_robot = Node(package=PACKAGE, executable="sim_robot", name="sim_robot", output="screen", parameters=[config])
    perception = Node(
        package=PACKAGE, executable="perception", name="perception", output="screen",
        parameters=[config, {"depth_topic": depth_topic, "info_topic": info_topic, "qos_reliability": qos,
                             # The simulator's grains are its resolution: picks the soil kind.
                             "soil_grain_size": PythonExpression([LaunchConfiguration("resolution"), " / 1000.0"])}],
    )
    policy = Node(
        package=PACKAGE, executable="policy", name="policy", output="screen",
        parameters=[config, {"policy_path": LaunchConfiguration("policy")}],
    )
    runner = Node(
        package=PACKAGE, executable="episode_runner", name="episode_runner", output="screen",
        parameters=[config, {"episodes": LaunchConfiguration("episodes"), "info_topic": info_topic,
                             "qos_reliability": qos, "summary_json": LaunchConfiguration("summary_json")}],
    )
    recorder = ExecuteProcess(
        cmd=["python3", "-m", "excavation.recorder", "--output", LaunchConfiguration("record"),
             "--ros-args", "-p", "use_sim_time:=true"],
        output="screen",
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("record"), "' != ''"])),
    )
    # The run is over when the runner exits (summary printed), or when the policy refuses its bundle.
    end_on_runner = RegisterEventHandler(OnProcessExit(target_action=runner, on_exit=[EmitEvent(event=Shutdown(reason="episodes done"))]))
    end_on_policy = RegisterEventHandler(OnProcessExit(target_action=policy, on_exit=[EmitEvent(event=Shutdown(reason="policy node exited"))]))
    return LaunchDescription(args + dds_env + [sim_world, sim_camera, sim_robot, perception, policy, runner, recorder,
                                     end_on_runner, end_on_policy])
