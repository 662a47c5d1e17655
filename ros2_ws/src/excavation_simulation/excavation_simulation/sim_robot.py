"""sim_robot: a kinematic UR5e that serves exactly the real driver's topics and services.

Names and types come from ``excavation_contract.interfaces`` (JointState, bucket_pose, tcp_wrench,
rock_in_bucket, /diagnostics; subscribes bucket_target; enable/stop/recover), so perception and the
policy cannot tell it from ``ur5e_driver``.

Motion: each accepted ``bucket_target`` becomes one set point for the next control step: clamped to
the workspace box and pitch range, limited to the tip/pitch speed limits over one control period,
solved with the UR5e IK (``excavation.drivers.ur5e_kinematics``) and slowed further if a joint would
exceed its speed limit. The set point goes to sim_world (``sim/bucket_command``, stamped with the
target's stamp so sim_world knows which frame it answers); the pose the physics realised comes back
on ``sim/bucket_state`` and is what this node reports as measured (joint states from IK of it).

Safety as in the real driver: nothing moves until ``enable``; ``stop`` disables; targets that are
stale (stamp older than ``watchdog_timeout_s``), malformed, unreachable or sent while disabled are
refused and the arm holds still (no command = sim_world holds the bucket).
Publishing rate: one sample per simulated control step (10 Hz of sim time), not the real 125 Hz.
"""

from __future__ import annotations

import math
import sys

import numpy as np

import excavation_contract as contract
from excavation_contract import interfaces as I
from excavation import ros_common as rc
from excavation_simulation import topics as T
from excavation.ros_common import Param, in_range

PARAMS = {
    "calibration_file": Param("", "Robot calibration YAML with T_base_tray (as the real driver's); empty = the package's calibration_robot.yaml."),
    "workspace_min": Param([float(v) for v in contract.WORKSPACE_MIN], "Workspace box minimum of the bucket tip, tray frame (m).",
                           lambda v: len(v) == 3 and all(math.isfinite(x) for x in v), "3 finite numbers"),
    "workspace_max": Param([float(v) for v in contract.WORKSPACE_MAX], "Workspace box maximum of the bucket tip, tray frame (m).",
                           lambda v: len(v) == 3 and all(math.isfinite(x) for x in v), "3 finite numbers"),
    "pitch_min": Param(float(contract.PITCH_LIMIT_RAD[0]), "Lowest bucket pitch (rad).", in_range(-math.pi, math.pi), "[-pi, pi]"),
    "pitch_max": Param(float(contract.PITCH_LIMIT_RAD[1]), "Highest bucket pitch (rad).", in_range(-math.pi, math.pi), "[-pi, pi]"),
    "max_speed_m_s": Param(0.25, "Tip speed limit (m/s); 0.25 = the contract's per-step action limit.", in_range(1e-3, 1.0), "(0, 1]"),
    "max_speed_rad_s": Param(1.5, "Pitch rate limit (rad/s).", in_range(1e-3, 3.0), "(0, 3]"),
    "watchdog_timeout_s": Param(0.5, "Targets whose stamp is older than this (sim time) are refused as stale (s).", in_range(0.01, 5.0), "[0.01, 5]"),
    "rock_in_bucket_error_rate": Param(0.0, "Probability that a published rock_in_bucket sample is flipped (training's DR uses 0.2).", in_range(0.0, 1.0), "[0, 1]"),
    "rock_mass_kg": Param(1.0, "Rock mass used for the simulated wrist force (kg).", in_range(0.0, 20.0), "[0, 20]"),
    "wrench_noise_n": Param(0.5, "Noise std of the simulated TCP force (N).", in_range(0.0, 10.0), "[0, 10]"),
    "seed": Param(0, "Seed of the wrench noise and rock_in_bucket flips.", lambda v: isinstance(v, int), "integer"),
}

Q_SEED = np.array([0.0, -1.3, 1.9, -2.2, -1.5708, 0.0])  # elbow up, wrist down: the digging posture


def main(args=None) -> int:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
    from rclpy.node import Node

    from excavation.drivers import ur5e_kinematics as K
    from excavation.drivers.robot_calibration import default_robot_calibration, load_robot_calibration
    from excavation.perception.rock_in_bucket import SimulatedRockInBucket, simulated_tcp_force

    m = I.driver_message_types()
    JointState, PoseStamped, WrenchStamped = m.JointState, m.PoseStamped, m.WrenchStamped
    Bool, DiagnosticArray, Trigger = m.Bool, m.DiagnosticArray, m.Trigger

    class SimRobot(Node):
        def __init__(self):
            super().__init__("sim_robot")
            self.p = p = rc.declare_params(self, PARAMS)
            self.lo, self.hi = np.asarray(p["workspace_min"], float), np.asarray(p["workspace_max"], float)
            if np.any(self.lo >= self.hi) or p["pitch_min"] >= p["pitch_max"]:
                raise ValueError("sim_robot: workspace_min must be below workspace_max and pitch_min below pitch_max")
            self.T_base_tray = load_robot_calibration(p["calibration_file"] or default_robot_calibration())
            self.rng = np.random.default_rng(p["seed"])
            self.flipper = SimulatedRockInBucket(p["rock_in_bucket_error_rate"], seed=p["seed"])
            self.enabled = False
            self.reason = "disabled until enable"
            self.tip = None
            self.pitch = 0.0
            self.q = Q_SEED.copy()
            self.q_prev = None
            self.rib_truth = False
            self.refused = 0
            self.accepted = 0
            self.pub_js = self.create_publisher(JointState, I.JOINT_STATES, 10)
            self.pub_pose = self.create_publisher(PoseStamped, I.BUCKET_POSE, 10)
            self.pub_wrench = self.create_publisher(WrenchStamped, I.TCP_WRENCH, 10)
            self.pub_rock = self.create_publisher(Bool, I.ROCK_IN_BUCKET, 10)
            self.pub_diag = self.create_publisher(DiagnosticArray, I.DIAGNOSTICS, 10)
            self.pub_cmd = self.create_publisher(PoseStamped, T.SIM_BUCKET_COMMAND, 10)
            self.create_subscription(PoseStamped, I.BUCKET_TARGET, self._on_target, 10)
            self.create_subscription(PoseStamped, T.SIM_BUCKET_STATE, self._on_state, 10)
            self.create_subscription(Bool, T.SIM_ROCK_IN_BUCKET, lambda m: setattr(self, "rib_truth", bool(m.data)), 10)
            for name in (I.ENABLE, I.STOP, I.RECOVER):
                self.create_service(Trigger, name, self._service(name))
            self.create_timer(1.0, self._diagnostics)
            self.get_logger().info("sim_robot started: DISABLED until `enable`")

        # ------------------------------------------------------------ services
        def _service(self, name):
            def cb(request, response):
                if name == I.ENABLE:
                    ok = self.tip is not None
                    msg = "enabled" if ok else "no state from sim_world yet"
                    if ok:
                        self.enabled, self.reason = True, "enabled"
                elif name == I.STOP:
                    self.enabled, self.reason = False, "stopped by request"
                    ok, msg = True, "stopped"
                else:
                    self.reason = "recovered; disabled until enable"
                    self.enabled = False
                    ok, msg = True, "recovered"
                response.success, response.message = bool(ok), msg
                self.get_logger().info(f"{name}: {msg}")
                return response

            return cb

        # ------------------------------------------------------------ targets
        def _refuse(self, why: str):
            self.refused += 1
            self.get_logger().warning(f"bucket target refused: {why}; holding still", throttle_duration_sec=2.0)

        def _on_target(self, msg):
            if not self.enabled:
                return self._refuse("robot is disabled (call enable)")
            if self.tip is None:
                return self._refuse("no measured state yet")
            if msg.header.frame_id != I.TRAY_FRAME:
                return self._refuse(f"frame {msg.header.frame_id!r} is not {I.TRAY_FRAME!r}")
            xyz, pitch, off = rc.pose_from_msg(msg)
            if not (all(math.isfinite(v) for v in xyz) and math.isfinite(pitch)):
                return self._refuse("non-finite target")
            if off > 0.05:
                return self._refuse(f"orientation is not a pitch about tray y (off-axis {off:.3f})")
            why = rc.command_age_problem(self, msg.header.stamp, self.p["watchdog_timeout_s"])
            if why is not None:  # the same rule as the real driver
                return self._refuse(why)
            dt = contract.CONTROL_PERIOD_S
            goal = np.clip(np.asarray(xyz, float), self.lo, self.hi)
            goal_pitch = float(np.clip(pitch, self.p["pitch_min"], self.p["pitch_max"]))
            if not (np.array_equal(goal, np.asarray(xyz, float)) and goal_pitch == float(pitch)):
                self.get_logger().warning(
                    f"target {np.round(xyz, 3).tolist()} pitch {pitch:.3f} clamped to the workspace "
                    f"{np.round(goal, 3).tolist()} pitch {goal_pitch:.3f}", throttle_duration_sec=2.0)
            step = goal - self.tip
            n = np.linalg.norm(step)
            vmax = self.p["max_speed_m_s"] * dt
            if n > vmax:
                step *= vmax / n
            dp = float(np.clip(goal_pitch - self.pitch, -self.p["max_speed_rad_s"] * dt, self.p["max_speed_rad_s"] * dt))
            sp, sp_pitch = self.tip + step, self.pitch + dp
            q = K.ik(K.base_tool0_from_bucket(self.T_base_tray, sp, sp_pitch), self.q)
            if q is None:
                return self._refuse(f"set point {np.round(sp, 3).tolist()} is out of the arm's reach")
            ratio = float(np.max(np.abs(q - self.q) / (K.JOINT_SPEED_MAX * dt)))
            if ratio > 1.0:  # a joint would be too fast: go part of the way this step
                sp, sp_pitch = self.tip + step / ratio, self.pitch + dp / ratio
            self.accepted += 1
            self.pub_cmd.publish(rc.pose_msg(msg.header.stamp, I.TRAY_FRAME, sp, sp_pitch))

        # ------------------------------------------------------------ measured state
        def _on_state(self, msg):
            xyz, pitch, _ = rc.pose_from_msg(msg)
            if not (all(math.isfinite(v) for v in xyz) and math.isfinite(pitch)):
                # Never republish a NaN pose as the arm's state; keep the last good one.
                self.get_logger().error("measured bucket pose is not finite; ignored", throttle_duration_sec=5.0)
                return
            self.tip, self.pitch = np.asarray(xyz, float), float(pitch)
            q = K.ik(K.base_tool0_from_bucket(self.T_base_tray, self.tip, self.pitch), self.q)
            if q is None:
                self.get_logger().error("measured bucket pose has no IK solution", throttle_duration_sec=5.0)
            else:
                self.q_prev, self.q = self.q, q
            stamp = msg.header.stamp
            js = JointState()
            js.header.stamp, js.header.frame_id = stamp, I.BASE_FRAME
            js.name = list(K.JOINT_NAMES)
            js.position = [float(v) for v in self.q]
            qd = (self.q - self.q_prev) / contract.CONTROL_PERIOD_S if self.q_prev is not None else np.zeros(6)
            js.velocity = [float(v) for v in qd]
            self.pub_js.publish(js)
            self.pub_pose.publish(rc.pose_msg(stamp, I.TRAY_FRAME, self.tip, self.pitch))
            # Wrench in base: the rock's weight along -z of base (base z is up, like tray z).
            w = simulated_tcp_force(self.rib_truth, self.p["rock_mass_kg"], noise_n=self.p["wrench_noise_n"], rng=self.rng)
            wm = WrenchStamped()
            wm.header.stamp, wm.header.frame_id = stamp, I.BASE_FRAME
            wm.wrench.force.x, wm.wrench.force.y, wm.wrench.force.z = (float(v) for v in w[:3])
            wm.wrench.torque.x, wm.wrench.torque.y, wm.wrench.torque.z = (float(v) for v in w[3:])
            self.pub_wrench.publish(wm)
            self.pub_rock.publish(Bool(data=self.flipper.update(self.rib_truth)))

        def _diagnostics(self):
            st = DiagnosticStatus()
            st.name = "sim_robot"
            st.hardware_id = "simulated UR5e"
            state = "ENABLED" if self.enabled else "DISABLED"
            st.level = DiagnosticStatus.OK if self.tip is not None else DiagnosticStatus.WARN
            st.message = f"{state}: {self.reason}" if self.tip is not None else "waiting for sim_world"
            values = {"state": state, "reason": self.reason, "connected": self.tip is not None,
                      "targets_accepted": self.accepted, "targets_refused": self.refused}
            st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
            arr = DiagnosticArray()
            arr.header.stamp = self.get_clock().now().to_msg()
            arr.status = [st]
            self.pub_diag.publish(arr)

    return rc.run_node(SimRobot, args)


if __name__ == "__main__":
    sys.exit(main())
