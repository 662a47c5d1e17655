"""``ur5e_driver``: the real UR5e over RTDE, serving the topics/services of ``excavation_contract.interfaces``.

The 500 Hz control loop runs in a supervised worker process (``drivers.ur5e_supervisor``); this
node only validates and forwards targets, answers enable/stop/recover and publishes state. Nothing
here can send URScript: the only robot commands are ur_rtde's servoL/servoStop/setTcp and the fixed
dashboard commands used by ``recover``.

Parameters: see ``config/ur5e_driver.yaml`` (every one documented there). They are range-checked at
start; a bad value stops the node with a message naming it.
"""

from __future__ import annotations

import collections
import math
import sys

import numpy as np

from excavation_contract import interfaces as I
from excavation import ros_common as rc
from excavation_contract import DEFAULT_BUCKET
from excavation.drivers.robot_calibration import default_robot_calibration, load_robot_calibration
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import ControlLoop, LoopConfig
from excavation.drivers.ur5e_kinematics import JOINT_NAMES

MAX_NON_PITCH_ROTATION = 0.05  # rad; a target orientation must be a pitch about tray y


# Defaults are the configs' own (one home: SafetyConfig / LoopConfig); the node adds its range checks.
_SAFETY, _LOOP = SafetyConfig(), LoopConfig()
PARAMS = {
    # name: (default, check, description for errors)
    "robot_ip": ("192.168.1.102", lambda v: isinstance(v, str) and len(v) > 0, "a non-empty host/IP string"),
    "calibration_file": ("", lambda v: isinstance(v, str), "a path"),
    "rate_hz": (_LOOP.rate_hz, lambda v: 0 < v <= 500, "in (0, 500]"),
    "publish_rate_hz": (125.0, lambda v: 1 <= v <= 500, "in [1, 500]"),
    "servo_lookahead_s": (_LOOP.servo_lookahead_s, lambda v: 0.03 <= v <= 0.2, "in [0.03, 0.2]"),
    "servo_gain": (_LOOP.servo_gain, lambda v: 100 <= v <= 2000, "in [100, 2000]"),
    "connect_timeout_s": (_LOOP.connect_timeout_s, lambda v: 0 < v <= 30, "in (0, 30]"),
    "reconnect_attempts": (_LOOP.reconnect_attempts, lambda v: 1 <= v <= 100, "in [1, 100]"),
    "reconnect_backoff_s": (_LOOP.reconnect_backoff_s, lambda v: 0 <= v <= 60, "in [0, 60]"),
    "stale_state_timeout_s": (_LOOP.stale_state_timeout_s, lambda v: 0.01 <= v <= 5, "in [0.01, 5]"),
    "heartbeat_timeout_s": (_LOOP.heartbeat_timeout_s, lambda v: 0.02 <= v <= 5, "in [0.02, 5]"),
    "servo_call_timeout_s": (_LOOP.servo_call_timeout_s, lambda v: 0.01 <= v <= 5, "in [0.01, 5]"),
    "recover_power_on": (_LOOP.recover_power_on, lambda v: isinstance(v, bool), "true or false"),
    "workspace_min": (list(_SAFETY.box_min), lambda v: len(v) == 3, "3 numbers [m]"),
    "workspace_max": (list(_SAFETY.box_max), lambda v: len(v) == 3, "3 numbers [m]"),
    "pitch_min": (_SAFETY.pitch_min, lambda v: -math.pi <= v <= math.pi, "in [-pi, pi]"),
    "pitch_max": (_SAFETY.pitch_max, lambda v: -math.pi <= v <= math.pi, "in [-pi, pi]"),
    "max_step_m": (_SAFETY.max_step_m, lambda v: 0 < v <= 0.01, "in (0, 0.01]"),
    "max_step_rad": (_SAFETY.max_step_rad, lambda v: 0 < v <= 0.05, "in (0, 0.05]"),
    "max_speed_m_s": (_SAFETY.max_speed_m_s, lambda v: 0 < v <= 1.0, "in (0, 1]"),
    "max_speed_rad_s": (_SAFETY.max_speed_rad_s, lambda v: 0 < v <= 3.0, "in (0, 3]"),
    "max_accel_m_s2": (_SAFETY.max_accel_m_s2, lambda v: 0 < v <= 5.0, "in (0, 5]"),
    "max_accel_rad_s2": (_SAFETY.max_accel_rad_s2, lambda v: 0 < v <= 20.0, "in (0, 20]"),
    "watchdog_timeout_s": (_SAFETY.watchdog_timeout_s, lambda v: 0.01 <= v <= 5.0, "in [0.01, 5]"),
    "out_of_box": (_SAFETY.out_of_box, lambda v: v in ("clamp", "refuse"), "'clamp' or 'refuse'"),
    "rock_on_threshold_n": (6.0, lambda v: v > 0, "> 0"),
    "rock_off_threshold_n": (3.0, lambda v: v > 0, "> 0"),
    "use_worker_process": (True, lambda v: isinstance(v, bool), "true or false"),
}


def main(args=None) -> int:
    import rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    from rclpy.node import Node

    m = I.driver_message_types()
    JointState, PoseStamped, WrenchStamped = m.JointState, m.PoseStamped, m.WrenchStamped
    Bool, DiagnosticArray, Trigger = m.Bool, m.DiagnosticArray, m.Trigger
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    class Ur5eDriver(Node):
        def __init__(self):
            super().__init__("ur5e_driver")
            p = {}
            errors = []
            for name, (default, check, desc) in PARAMS.items():
                value = self.declare_parameter(name, default).value
                try:
                    ok = bool(check(value))
                except Exception:
                    ok = False
                if not ok:
                    errors.append(f"parameter {name}={value!r} must be {desc}")
                p[name] = value
            if p["rock_off_threshold_n"] >= p["rock_on_threshold_n"]:
                errors.append("rock_off_threshold_n must be below rock_on_threshold_n")
            try:
                T_base_tray = load_robot_calibration(p["calibration_file"] or default_robot_calibration())
            except ValueError as exc:
                errors.append(str(exc))
                T_base_tray = None
            safety = SafetyConfig(box_min=tuple(p["workspace_min"]), box_max=tuple(p["workspace_max"]),
                                  pitch_min=p["pitch_min"], pitch_max=p["pitch_max"], max_step_m=p["max_step_m"],
                                  max_step_rad=p["max_step_rad"], max_speed_m_s=p["max_speed_m_s"],
                                  max_speed_rad_s=p["max_speed_rad_s"], max_accel_m_s2=p["max_accel_m_s2"],
                                  max_accel_rad_s2=p["max_accel_rad_s2"], watchdog_timeout_s=p["watchdog_timeout_s"],
                                  out_of_box=p["out_of_box"], frame=I.TRAY_FRAME)
            loop_cfg = LoopConfig(robot_ip=p["robot_ip"], rate_hz=float(p["rate_hz"]),
                                  servo_lookahead_s=p["servo_lookahead_s"], servo_gain=p["servo_gain"],
                                  connect_timeout_s=p["connect_timeout_s"], reconnect_attempts=p["reconnect_attempts"],
                                  reconnect_backoff_s=p["reconnect_backoff_s"],
                                  stale_state_timeout_s=p["stale_state_timeout_s"],
                                  heartbeat_timeout_s=p["heartbeat_timeout_s"],
                                  servo_call_timeout_s=p["servo_call_timeout_s"],
                                  recover_power_on=p["recover_power_on"])
            for validate in (safety.validate, loop_cfg.validate):
                try:
                    validate()
                except ValueError as exc:
                    errors.append(str(exc))
            if errors:
                raise ValueError("ur5e_driver: " + "; ".join(errors))
            self.p = p
            if p["use_worker_process"]:
                from excavation.drivers.ur5e_supervisor import SupervisedControlLoop

                self.loop = SupervisedControlLoop(loop_cfg, safety, T_base_tray, DEFAULT_BUCKET)
            else:
                self.loop = ControlLoop(loop_cfg, safety, T_base_tray, DEFAULT_BUCKET)
            self._rock = None
            self._rock_cfg = (p["rock_on_threshold_n"], p["rock_off_threshold_n"])
            self._wrenches = collections.deque(maxlen=50)
            self._was_connected = False
            self._refused = 0

            self.pub_js = self.create_publisher(JointState, I.JOINT_STATES, 10)
            self.pub_pose = self.create_publisher(PoseStamped, I.BUCKET_POSE, 10)
            self.pub_wrench = self.create_publisher(WrenchStamped, I.TCP_WRENCH, 10)
            self.pub_rock = self.create_publisher(Bool, I.ROCK_IN_BUCKET, 10)
            self.pub_diag = self.create_publisher(DiagnosticArray, I.DIAGNOSTICS, 10)
            svc_group = ReentrantCallbackGroup()  # a slow recover must not stall publishing
            self.create_subscription(PoseStamped, I.BUCKET_TARGET, self._on_target, 10,
                                     callback_group=MutuallyExclusiveCallbackGroup())
            for name in (I.ENABLE, I.STOP, I.RECOVER):
                self.create_service(Trigger, name, self._service(name), callback_group=svc_group)
            self.create_timer(1.0 / p["publish_rate_hz"], self._publish, callback_group=MutuallyExclusiveCallbackGroup())
            self.create_timer(1.0, self._diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
            self.loop.start()
            self.get_logger().info(f"ur5e_driver for {p['robot_ip']} started: DISABLED until `{I.ENABLE}`; "
                                   f"out-of-box targets are {'clamped' if p['out_of_box'] == 'clamp' else 'refused'}")

        def _service(self, name):
            def cb(request, response):
                ok, msg = self.loop.request(name)
                if name == I.ENABLE and ok:
                    self._tare()
                response.success, response.message = bool(ok), str(msg)
                (self.get_logger().info if ok else self.get_logger().warning)(f"{name}: {msg}")
                return response

            return cb

        def _on_target(self, msg):
            frame = msg.header.frame_id
            o = msg.pose.orientation
            pitch, off = I.quaternion_to_pitch(o.x, o.y, o.z, o.w)
            xyz = [msg.pose.position.x, msg.pose.position.y, msg.pose.position.z]
            stamp_problem = rc.command_age_problem(self, msg.header.stamp, self.p["watchdog_timeout_s"])
            if stamp_problem is not None:
                reason = stamp_problem
            elif off > MAX_NON_PITCH_ROTATION:
                reason = f"orientation is not a pitch about tray y (off-axis part {off:.3f})"
            else:
                res = self.loop.set_target(xyz, pitch, frame)
                if res.accepted:
                    if res.clamped:
                        self.get_logger().warning(res.reason, throttle_duration_sec=1.0)
                    return
                reason = res.reason
            self._refused += 1
            self.get_logger().warning(f"bucket target refused: {reason}", throttle_duration_sec=1.0)

        def _rock_estimator(self):
            if self._rock is None:
                # Lazy: the perception library is developed alongside; the driver works without it.
                from excavation.perception.rock_in_bucket import RockInBucketConfig, RockInBucketEstimator

                on, off = self._rock_cfg
                self._rock = RockInBucketEstimator(RockInBucketConfig(on_threshold_n=on, off_threshold_n=off))
            return self._rock

        def _tare(self):
            if len(self._wrenches) >= 5:
                try:
                    self._rock_estimator().tare(np.array(self._wrenches))
                except Exception as exc:
                    self.get_logger().warning(f"rock-in-bucket tare failed: {exc}")

        def _publish(self):
            s = self.loop.state()
            if not s.get("connected") or s.get("q") is None:
                self._was_connected = False
                return
            stamp = self.get_clock().now().to_msg()
            js = JointState()
            js.header.stamp = stamp
            js.header.frame_id = I.BASE_FRAME
            js.name = list(JOINT_NAMES)
            js.position = [float(v) for v in s["q"]]
            js.velocity = [float(v) for v in s.get("qd", np.zeros(6))]
            self.pub_js.publish(js)
            pose = PoseStamped()
            pose.header.stamp = stamp
            pose.header.frame_id = I.TRAY_FRAME
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in s["tip"])
            qx, qy, qz, qw = I.pitch_to_quaternion(float(s["pitch"]))
            pose.pose.orientation.x, pose.pose.orientation.y = qx, qy
            pose.pose.orientation.z, pose.pose.orientation.w = qz, qw
            self.pub_pose.publish(pose)
            w = np.asarray(s["wrench"], dtype=float)
            wm = WrenchStamped()
            wm.header.stamp = stamp
            wm.header.frame_id = I.BASE_FRAME
            wm.wrench.force.x, wm.wrench.force.y, wm.wrench.force.z = (float(v) for v in w[:3])
            wm.wrench.torque.x, wm.wrench.torque.y, wm.wrench.torque.z = (float(v) for v in w[3:])
            self.pub_wrench.publish(wm)
            self._wrenches.append(w)
            if not self._was_connected and len(self._wrenches) >= 25:
                self._tare()  # empty bucket assumed at connection; re-tared on every enable
                self._was_connected = True
            try:
                est = self._rock_estimator()
                in_bucket = est.update(w) if est.bias is not None else False
            except ImportError:
                in_bucket = False
            self.pub_rock.publish(Bool(data=bool(in_bucket)))

        def _diagnostics(self):
            s = self.loop.state()
            st = DiagnosticStatus()
            st.name = "ur5e_driver"
            st.hardware_id = str(self.p["robot_ip"])
            state = s.get("driver_state", "?")
            st.level = {"ENABLED": DiagnosticStatus.OK, "DISABLED": DiagnosticStatus.OK,
                        "FAULT": DiagnosticStatus.ERROR, "DISCONNECTED": DiagnosticStatus.ERROR}.get(state, DiagnosticStatus.WARN)
            st.message = f"{state}: {s.get('reason', '')}"
            values = {"state": state, "reason": s.get("reason", ""), "connected": s.get("connected", False),
                      "holding": s.get("holding", ""), "servoing": s.get("servoing", False),
                      "last_error": s.get("last_error", ""), "targets_refused": self._refused,
                      "safety_status_bits": s.get("safety_bits", ""), "program_running": s.get("program_running", "")}
            st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            arr = DiagnosticArray()
            arr.header.stamp = self.get_clock().now().to_msg()
            arr.status = [st]
            self.pub_diag.publish(arr)

    rclpy.init(args=args)
    try:
        node = Ur5eDriver()
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.loop.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
