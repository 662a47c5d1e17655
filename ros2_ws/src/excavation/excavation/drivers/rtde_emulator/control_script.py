"""ur_rtde's control script as the controller would run it, one iteration of its main loop per cycle.

ur_rtde uploads a URScript program whose loop reads a command number from ``input_int_register_0``
and its arguments from the double registers, and answers in ``output_int_register_0``. The emulator
does not parse URScript: it runs that loop natively on the model's registers.
"""

from __future__ import annotations

import collections
import time

import numpy as np

from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_emulator.robot_model import RobotModel

# ur_rtde control-script command numbers (RTDE::RobotCommand::Type) the emulator interprets.
CMD_NONE = 0
CMD_SPEEDJ = 9
CMD_SPEEDL = 10
CMD_SERVOJ = 11
CMD_SPEED_STOP = 15
CMD_SERVO_STOP = 16
CMD_SERVOL = 24
CMD_SET_TCP = 29
CMD_PROTECTIVE_STOP = 31
CMD_STOPL = 33
CMD_STOPJ = 34
CMD_STOP_SCRIPT = 255
# Commands the script handles "in real time": processed every cycle, then signals ready (1)
# without the done (2) / clear (0) round trip. Same list as ur_rtde's control script.
REALTIME_CMDS = {24, 11, 9, 10, 6, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71}
SCRIPT_READY = 1
SCRIPT_DONE = 2


class ControlScript:
    def __init__(self, model: RobotModel):
        self.model = model
        # A stalled script keeps the RTDE stream alive but never signals "ready" again (fault hook).
        self.stalled = False
        self.executing_cmd = False
        self._last_servo_pose: np.ndarray | None = None
        # Counters and logs for tests and the benchmark.
        self.command_counts: collections.Counter = collections.Counter()
        self.servo_log: collections.deque = collections.deque(maxlen=20000)  # (t_rx, pose)
        self.ik_failures = 0
        self.servo_setpoints = 0
        # (executed, applied, arrived): time.monotonic() when the script took a new set point, when
        # the RTDE package that wrote it was applied, and when the kernel received that package (on
        # loopback: when it was sent; the applied time can lag it on a loaded machine). A set point
        # that arrived before the driver stopped but executed after was in flight; one that arrived
        # after was sent after the stop.
        self.setpoint_log: collections.deque = collections.deque(maxlen=20000)

    def start_locked(self) -> None:
        """The uploaded script starts: no motion carried over from a previous run, ready for commands."""
        m = self.model
        m.program_running = True
        self.executing_cmd = False
        m.clear_motion_targets_locked()
        self._last_servo_pose = None
        m.out_int[0] = SCRIPT_READY

    def step_locked(self) -> None:
        m = self.model
        if not m.program_running:
            return
        if self.stalled:
            m.out_int[0] = 0  # busy, never ready
            return
        cmd = m.in_int[0]
        if cmd in REALTIME_CMDS:
            self._process_locked(cmd)
            m.out_int[0] = SCRIPT_READY
        elif cmd == CMD_NONE:
            self.executing_cmd = False
            m.out_int[0] = SCRIPT_READY
        elif not self.executing_cmd:
            keep = self._process_locked(cmd)
            self.executing_cmd = True
            if keep and m.program_running:
                m.out_int[0] = SCRIPT_DONE

    def _process_locked(self, cmd: int) -> bool:
        """Carry out one command; False when it ended the script."""
        m = self.model
        self.command_counts[cmd] += 1
        d = m.in_double
        if cmd == CMD_SERVOL:
            pose = np.array(d[0:6])
            self.servo_log.append((time.perf_counter(), pose.copy()))
            T_tool0 = kin.pose_to_matrix(pose) @ kin.invert_transform(kin.pose_to_matrix(m.tcp_offset))
            seed = m.servo_q if m.servo_q is not None else m.q
            if self._last_servo_pose is not None and np.array_equal(pose, self._last_servo_pose):
                return True
            q = kin.ik(T_tool0, seed)
            if q is None:
                self.ik_failures += 1
                return True
            self._last_servo_pose = pose
            self.servo_setpoints += 1  # a new set point, not the script repeating the last one
            self.setpoint_log.append((time.monotonic(), m.in_written_at, m.in_arrived_at))
            m.servo_q = q
            m.speed_l = None
        elif cmd == CMD_SERVOJ:
            m.servo_q = np.array(d[0:6])
            m.speed_l = None
        elif cmd == CMD_SPEEDL:
            m.speed_l = np.array(d[0:6])
            m.servo_q = None
        elif cmd in (CMD_SERVO_STOP, CMD_STOPL, CMD_STOPJ, CMD_SPEED_STOP):
            m.clear_motion_targets_locked()
            self._last_servo_pose = None
        elif cmd == CMD_SET_TCP:
            m.tcp_offset = np.array(d[0:6])
        elif cmd == CMD_PROTECTIVE_STOP:
            m.protective_stop()
        elif cmd == CMD_STOP_SCRIPT:
            m.halt_program_locked()
            return False
        return True
