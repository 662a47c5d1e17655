"""The emulated arm and its controller's state: joints, tool, registers, robot and safety modes.

This is what the three servers read and write; it knows nothing of sockets or wire formats. Motion is
kinematic: the joints move toward the servo target (or along a Cartesian speed) at bounded speed.

Every field is guarded by ``lock``. It is re-entrant because a server holds it across a whole command
or data package while calling the transitions below, which take it too. Methods ending in ``_locked``
expect the caller to hold it already.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_emulator.config import EmulatorConfig
from excavation.drivers.ur_constants import (
    ROBOT_MODE_IDLE,
    ROBOT_MODE_POWER_OFF,
    ROBOT_MODE_RUNNING,
    ROBOT_STATUS_POWER_ON,
    ROBOT_STATUS_PROGRAM_RUNNING,
    SAFETY_BIT_EMERGENCY_STOPPED,
    SAFETY_BIT_NORMAL,
    SAFETY_BIT_PROTECTIVE_STOPPED,
    SAFETY_BIT_ROBOT_EMERGENCY_STOPPED,
    SAFETY_BIT_STOPPED_DUE_TO_SAFETY,
    SAFETY_MODE_NORMAL,
    SAFETY_MODE_PROTECTIVE_STOP,
    SAFETY_MODE_ROBOT_EMERGENCY_STOP,
)

N_REGISTERS = 48  # int and double registers per direction on an e-series controller


class RobotModel:
    def __init__(self, cfg: EmulatorConfig):
        self.cfg = cfg
        self.lock = threading.RLock()
        self.dt = 1.0 / cfg.rate_hz
        self._t0 = time.monotonic()
        self.cycle = 0
        # Arm and tool.
        self.q = np.array(cfg.initial_q, dtype=float)
        self.qd = np.zeros(6)
        self.servo_q: np.ndarray | None = None
        self.speed_l: np.ndarray | None = None
        self.tcp_offset = np.zeros(6)
        self.tcp_force = np.zeros(6)
        # Modes.
        self.robot_mode = ROBOT_MODE_RUNNING
        self.safety_mode = SAFETY_MODE_NORMAL
        self.safety_bits = SAFETY_BIT_NORMAL
        self.program_running = False
        self.protective_stop_time: float | None = None
        # Registers: RTDE writes the inputs, the control script reads them and writes the outputs.
        self.in_int = [0] * N_REGISTERS
        self.in_double = [0.0] * N_REGISTERS
        self.in_written_at = 0.0  # time.monotonic() of the last RTDE input package applied
        self.in_arrived_at = 0.0  # time.monotonic() the kernel received that package (see network.SO_TIMESTAMPNS)
        self.in_bits = 0
        self.out_int = [0] * N_REGISTERS
        self.out_double = [0.0] * N_REGISTERS
        self.speed_slider = 1.0

    def uptime_s(self) -> float:
        return time.monotonic() - self._t0

    # ---------------------------------------------------------------- safety and robot mode

    def protective_stop(self) -> None:
        """What the controller does on a protective stop: halt, stop the program, flag it."""
        with self.lock:
            self.safety_mode = SAFETY_MODE_PROTECTIVE_STOP
            self.safety_bits = SAFETY_BIT_PROTECTIVE_STOPPED | SAFETY_BIT_STOPPED_DUE_TO_SAFETY
            self.protective_stop_time = time.monotonic()
            self.halt_program_locked()

    def emergency_stop(self) -> None:
        """Robot e-stop pressed: halt, stop program, power off the arm."""
        with self.lock:
            self.safety_mode = SAFETY_MODE_ROBOT_EMERGENCY_STOP
            self.safety_bits = (
                SAFETY_BIT_ROBOT_EMERGENCY_STOPPED | SAFETY_BIT_EMERGENCY_STOPPED | SAFETY_BIT_STOPPED_DUE_TO_SAFETY
            )
            self.robot_mode = ROBOT_MODE_POWER_OFF
            self.halt_program_locked()

    def release_emergency_stop(self) -> None:
        """The e-stop button is released; the arm stays powered off until power on + brake release."""
        with self.lock:
            if self.safety_mode == SAFETY_MODE_ROBOT_EMERGENCY_STOP:
                self.safety_mode = SAFETY_MODE_NORMAL
                self.safety_bits = SAFETY_BIT_NORMAL

    def unlock_protective_stop_locked(self) -> bool:
        """False while the controller still refuses (within the unlock delay of the stop)."""
        if self.safety_mode != SAFETY_MODE_PROTECTIVE_STOP:
            return True
        waited = time.monotonic() - (self.protective_stop_time or 0.0)
        if waited < self.cfg.protective_stop_unlock_delay_s:
            return False
        self.safety_mode = SAFETY_MODE_NORMAL
        self.safety_bits = SAFETY_BIT_NORMAL
        self.protective_stop_time = None
        return True

    def power_on_locked(self) -> None:
        if self.safety_mode == SAFETY_MODE_ROBOT_EMERGENCY_STOP:
            return  # the controller accepts the request, then stays off while e-stopped
        if self.robot_mode == ROBOT_MODE_POWER_OFF:
            self.robot_mode = ROBOT_MODE_IDLE

    def power_off_locked(self) -> None:
        self.robot_mode = ROBOT_MODE_POWER_OFF
        self.halt_program_locked()

    def brake_release_locked(self) -> None:
        if self.robot_mode == ROBOT_MODE_IDLE and self.safety_mode == SAFETY_MODE_NORMAL:
            self.robot_mode = ROBOT_MODE_RUNNING

    def set_unlock_delay(self, seconds: float) -> None:
        """How long after a protective stop the dashboard refuses to unlock it (tests set a long delay
        to check the refusal, then 0 to allow the unlock, instead of racing a short one)."""
        with self.lock:
            self.cfg.protective_stop_unlock_delay_s = max(0.0, float(seconds))

    def set_tcp_force(self, wrench) -> None:
        with self.lock:
            self.tcp_force = np.asarray(wrench, dtype=float).copy()

    # ---------------------------------------------------------------- program

    def stop_program(self) -> None:
        """The program stops on the controller (stop pressed on the pendant, a script error) while the
        arm stays powered and the safety system is normal."""
        with self.lock:
            self.halt_program_locked()

    def halt_program_locked(self) -> None:
        self.program_running = False
        self.clear_motion_targets_locked()
        self.qd = np.zeros(6)
        self.out_int[0] = 0

    def arm_ready_locked(self) -> bool:
        """Powered, brakes released and no safety stop: a program may start and the arm may move."""
        return self.robot_mode == ROBOT_MODE_RUNNING and self.safety_mode == SAFETY_MODE_NORMAL

    def clear_motion_targets_locked(self) -> None:
        self.servo_q = None
        self.speed_l = None

    # ---------------------------------------------------------------- motion

    def step_locked(self) -> None:
        """One control cycle of the arm: move toward the current target, count the cycle."""
        self._integrate_locked()
        self.cycle += 1

    def _motion_allowed_locked(self) -> bool:
        return self.program_running and self.arm_ready_locked()

    def _integrate_locked(self) -> None:
        if not self._motion_allowed_locked():
            self.qd = np.zeros(6)
            return
        vmax = kin.JOINT_SPEED_MAX * self.cfg.joint_speed_scale * self.speed_slider
        if self.servo_q is not None:
            step = np.clip(self.servo_q - self.q, -vmax * self.dt, vmax * self.dt)
        elif self.speed_l is not None:
            J = kin.jacobian(self.q)
            step = np.clip(np.linalg.lstsq(J, self.speed_l, rcond=None)[0] * self.dt, -vmax * self.dt, vmax * self.dt)
        else:
            step = np.zeros(6)
        self.q = self.q + step
        self.qd = step / self.dt

    # ---------------------------------------------------------------- readings

    def tcp_pose_locked(self, q=None) -> np.ndarray:
        T = kin.fk(self.q if q is None else q) @ kin.pose_to_matrix(self.tcp_offset)
        return kin.matrix_to_pose(T)

    def robot_status_bits_locked(self) -> int:
        bits = 0
        if self.robot_mode != ROBOT_MODE_POWER_OFF:
            bits |= ROBOT_STATUS_POWER_ON
        if self.program_running:
            bits |= ROBOT_STATUS_PROGRAM_RUNNING
        return bits

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "q": self.q.copy(),
                "qd": self.qd.copy(),
                "tcp_pose": self.tcp_pose_locked(),
                "program_running": self.program_running,
                "safety_mode": self.safety_mode,
                "robot_mode": self.robot_mode,
                "servoing": self.servo_q is not None,
                "cycle": self.cycle,
            }
