"""Real cell: UR5e driver (RTDE) + depth perception + policy, optionally the RealSense and a recording.

    ros2 launch excavation real.launch.py robot_ip:=192.168.1.102 policy_bundle:=/path/to/policies/NAME

    ros2 launch excavation real.launch.py use_mock_hardware:=true        # no robot: the RTDE emulator

Run ``ros2 launch excavation real.launch.py --show-args`` for every argument. ``use_mock_hardware:=true``
starts the package's RTDE emulator (a protocol-level UR e-series controller) on loopback and points the
same driver at it, so the launch is otherwise the real one (as the UR driver's mock hardware does). ``dds_profile:=<share>/config/
fastdds_large_frames.xml`` gives every process of this launch (the RealSense too with launch_camera:=true)
8 MB Fast DDS shared-memory segments: a 640x480 depth frame then reaches perception in about 2.5 ms
instead of about 13 ms (measured on the simulated stack); default: the environment's DDS settings. The driver starts
DISABLED: nothing moves until ``ros2 service call /enable std_srvs/srv/Trigger``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, LogInfo,
                            SetEnvironmentVariable)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "excavation"
MOCK_ROBOT_IP = "127.0.0.1"  # the emulator binds loopback only


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, "config")

    args = [
        DeclareLaunchArgument("robot_ip", default_value="192.168.1.102",
                              description="IP of the UR5e controller; the driver talks to nothing else "
                                          "(ignored with use_mock_hardware:=true)."),
        DeclareLaunchArgument("use_mock_hardware", default_value="false", choices=["true", "false"],
                              description="true: start the RTDE emulator on 127.0.0.1 and drive it instead of a "
                                          "robot; everything else as on the real cell."),
        DeclareLaunchArgument("driver_params", default_value=os.path.join(config, "ur5e_driver.yaml"),
                              description="ROS parameter file of ur5e_driver (safety box, limits, rates)."),
        DeclareLaunchArgument("robot_calibration", default_value=os.path.join(config, "calibration_robot.yaml"),
                              description="YAML with T_base_tray (tray frame in the UR base frame)."),
        DeclareLaunchArgument("tray_calibration", default_value=os.path.join(config, "calibration.yaml"),
                              description="YAML with T_tray_camera from `ros2 run excavation calibrate_tray` "
                                          "(perception); must exist before launching."),
        DeclareLaunchArgument("policy_bundle", default_value=os.path.join(share, "policies", "default"),
                              description="Policy bundle folder (policy.pt + policy.json)."),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/depth/image_rect_raw",
                              description="Depth image topic (realsense-ros default name)."),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera/depth/camera_info",
                              description="Depth CameraInfo topic (realsense-ros default name)."),
        DeclareLaunchArgument("launch_camera", default_value="false", choices=["true", "false"],
                              description="Also start realsense2_camera's rs_launch.py (depth only)."),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"],
                              description="Record all topics with `ros2 bag record -s mcap`."),
        DeclareLaunchArgument("record_path", default_value="excavation_run",
                              description="Output folder of the MCAP recording."),
        DeclareLaunchArgument("log_level", default_value="info",
                              choices=["debug", "info", "warn", "error", "fatal"],
                              description="ROS log level of the nodes."),
        DeclareLaunchArgument("dds_profile", default_value="",
                              description="Fast DDS XML profile for every process of this launch (e.g. "
                                          f"{os.path.join(config, 'fastdds_large_frames.xml')}: large shared-memory "
                                          "segments for depth frames); empty = the environment's DDS settings."),
    ]
    dds_profile = LaunchConfiguration("dds_profile")
    has_dds_profile = IfCondition(PythonExpression(["'", dds_profile, "' != ''"]))
    dds_env = [SetEnvironmentVariable(name, dds_profile, condition=has_dds_profile)
               for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")]

    camera = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch",
                                                            "rs_launch.py"])),
        launch_arguments={"enable_color": "false", "enable_depth": "true", "align_depth.enable": "false"}.items(),
        condition=IfCondition(LaunchConfiguration("launch_camera")),
    )

    mock = LaunchConfiguration("use_mock_hardware")
    emulator = Node(package=PACKAGE, executable="rtde_emulator", name="rtde_emulator", output="screen",
                    arguments=["--host", MOCK_ROBOT_IP], condition=IfCondition(mock))
    robot_ip = PythonExpression(["'" + MOCK_ROBOT_IP + "' if '", mock, "' == 'true' else '",
                                 LaunchConfiguration("robot_ip"), "'"])

    ros_args = ["--ros-args", "--log-level", LaunchConfiguration("log_level")]
    driver = Node(
        package=PACKAGE,
        executable="ur5e_driver",
        name="ur5e_driver",
        output="screen",
        parameters=[LaunchConfiguration("driver_params"),
                    {"robot_ip": robot_ip,
                     "calibration_file": LaunchConfiguration("robot_calibration")}],
        # A driver that cannot construct ur_rtde exits with an error; restart it after a pause.
        respawn=True,
        respawn_delay=3.0,
        arguments=ros_args,
    )
    perception = Node(
        package=PACKAGE,
        executable="perception",
        name="perception",
        output="screen",
        parameters=[{"calibration_file": LaunchConfiguration("tray_calibration"),
                     "depth_topic": LaunchConfiguration("depth_topic"),
                     "info_topic": LaunchConfiguration("camera_info_topic")}],
        arguments=ros_args,
    )
    policy = Node(
        package=PACKAGE,
        executable="policy",
        name="policy",
        output="screen",
        parameters=[{"policy_path": LaunchConfiguration("policy_bundle")}],
        arguments=ros_args,
    )
    record = ExecuteProcess(
        cmd=["ros2", "bag", "record", "-s", "mcap", "-a", "-o", LaunchConfiguration("record_path")],
        output="screen",
        condition=IfCondition(LaunchConfiguration("record")),
    )
    note = LogInfo(msg=["ur5e_driver on ", robot_ip, ": DISABLED until /enable is called"])
    return LaunchDescription([*args, *dds_env, camera, emulator, driver, perception, policy, record, note])
