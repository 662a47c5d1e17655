"""sim_robot: no motion until enabled; stale or malformed targets are refused (the arm holds still);
fresh targets become rate-limited set points; it serves the real driver's topics and services."""

import math

import pytest

from conftest import node_cmd, wait_for

pytestmark = pytest.mark.timeout(90)


def test_sim_robot_enable_stale_and_limits(ros, procs):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from excavation_contract import interfaces as I
    from excavation import ros_common as rc
    from excavation_simulation import topics as T

    p = procs(node_cmd("excavation_simulation.sim_robot", "use_sim_time:=false", params_file=None))
    cmds, joints = [], []
    ros.create_subscription(PoseStamped, T.SIM_BUCKET_COMMAND, cmds.append, 10)
    ros.create_subscription(JointState, I.JOINT_STATES, joints.append, 10)
    poses = []
    ros.create_subscription(PoseStamped, I.BUCKET_POSE, poses.append, 10)
    pub_state = ros.create_publisher(PoseStamped, T.SIM_BUCKET_STATE, 10)
    pub_target = ros.create_publisher(PoseStamped, I.BUCKET_TARGET, 10)
    tip = (-0.12, 0.0, 0.10)

    def state():
        pub_state.publish(rc.pose_msg(ros.get_clock().now().to_msg(), "tray", tip, 0.0))

    assert wait_for(lambda: (state(), len(joints) > 0)[1], 30), "no joint_states from sim_robot"
    assert list(joints[-1].name) == list(__import__("excavation.drivers.ur5e_kinematics", fromlist=["x"]).JOINT_NAMES)
    names = {n for n, _ in ros.get_service_names_and_types()}
    assert {"/enable", "/stop", "/recover"} <= names

    diags = []
    ros.create_subscription(DiagnosticArray, "/diagnostics",
                            lambda m: diags.extend(st for st in m.status if st.name == "sim_robot"), 10)

    def refused():
        """targets_refused from sim_robot's latest diagnostics (its own count of refusals)."""
        return int({kv.key: kv.value for kv in diags[-1].values}["targets_refused"]) if diags else 0

    far = (0.2, 0.0, 0.10)
    # Disabled: a target moves nothing. Sent until sim_robot has counted five refusals (it decided
    # on them), instead of watching for a second.
    assert wait_for(lambda: (pub_target.publish(rc.pose_msg(ros.get_clock().now().to_msg(), "tray", far, 0.0)),
                             refused() >= 5)[1], 30), "sim_robot never reported refusing targets while disabled"
    assert not cmds, "a target moved the bucket while disabled"

    cli = ros.create_client(Trigger, "enable")
    assert cli.wait_for_service(timeout_sec=10)
    fut = cli.call_async(Trigger.Request())
    assert wait_for(fut.done, 10) and fut.result().success
    # The refusal count as of a diagnostics message published after enable (all earlier targets
    # were decided on by then).
    n_diag = len(diags)
    assert wait_for(lambda: len(diags) > n_diag + 1, 10), "no diagnostics after enable"
    refused_before = refused()

    # Stale target (stamped 2 s ago): refused.
    now = ros.get_clock().now().nanoseconds * 1e-9
    pub_target.publish(rc.pose_msg(rc.s_to_stamp(now - 2.0), "tray", far, 0.0))
    # Stamped 1000 s in the future (a clock that jumped): refused like the real driver does.
    pub_target.publish(rc.pose_msg(rc.s_to_stamp(now + 1000.0), "tray", far, 0.0))
    # A NaN measured pose is never republished as the arm's state.
    n_poses = len(poses)
    pub_state.publish(rc.pose_msg(ros.get_clock().now().to_msg(), "tray", (math.nan, 0.0, 0.1), 0.0))
    # Not a pitch: refused.
    bad = rc.pose_msg(ros.get_clock().now().to_msg(), "tray", far, 0.0)
    bad.pose.orientation.x, bad.pose.orientation.w = math.sin(0.3), math.cos(0.3)
    pub_target.publish(bad)
    # Stale, future and not-a-pitch: three refusals counted, and none of them became a set point.
    assert wait_for(lambda: refused() >= refused_before + 3, 10), (refused_before, refused())
    assert not cmds, "a refused target became a set point"
    state()
    assert wait_for(lambda: len(poses) > n_poses, 5.0)
    assert all(math.isfinite(m.pose.position.x) for m in poses[n_poses:])

    # Fresh target: one set point, speed-limited to 0.25 m/s over one 0.1 s step.
    pub_target.publish(rc.pose_msg(ros.get_clock().now().to_msg(), "tray", far, 0.0))
    assert wait_for(lambda: len(cmds) > 0, 5.0)
    c = cmds[-1].pose.position
    step = math.dist((c.x, c.y, c.z), tip)
    assert 0.02 <= step <= 0.025 + 1e-6 and c.x > tip[0]
    assert p.poll() is None
