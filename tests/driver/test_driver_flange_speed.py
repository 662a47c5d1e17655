"""The flange (tool0) never moves faster than the linear speed limit, even when only the pitch
changes (a pitch swings the flange around the bucket tip)."""

import threading

import numpy as np
import pytest

from conftest import T_BASE_TRAY
from excavation_contract import DEFAULT_BUCKET
from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_connection import connect
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import ControlLoop, LoopConfig, flange_limited_setpoint

pytestmark = pytest.mark.timeout(90)


def flange(sp):
    return kin.tray_tool0_from_bucket(sp[:3], float(sp[3]), DEFAULT_BUCKET)[:3, 3]


@pytest.mark.parametrize("dpitch", [0.002, -0.002, 0.0005])
def test_flange_step_is_bounded(dpitch):
    prev = np.array([0.0, 0.0, 0.1, 0.1])
    sp = prev + [0.0005, 0.0, 0.0, dpitch]  # tip step inside its limit, pitch step large
    limit = 0.25 * 0.002
    out = flange_limited_setpoint(prev, sp, limit)
    assert np.linalg.norm(flange(out) - flange(prev)) <= limit * (1 + 1e-6)
    if np.linalg.norm(flange(sp) - flange(prev)) <= limit:
        assert out is sp  # within the limit: untouched
    else:
        assert np.all(np.sign(out - prev)[[0, 3]] == np.sign(sp - prev)[[0, 3]])  # still on the way


class RecordingControl:
    """Forwards to ur_rtde's control interface and records every servoL pose it is given."""

    def __init__(self, inner, log):
        self._inner, self._log = inner, log

    def servoL(self, pose, *args):
        self._log.append(np.array(pose))
        return self._inner.servoL(pose, *args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_loop_limits_flange_speed_when_tip_and_pitch_move(sign):
    safety = SafetyConfig(watchdog_timeout_s=1.0)
    poses = []
    with EmulatorProcess() as emu:
        def connector():
            io = connect(emu.host, 500.0, 2.0)
            io.control = RecordingControl(io.control, poses)
            return io

        loop = ControlLoop(LoopConfig(robot_ip=emu.host), safety, np.array(T_BASE_TRAY), connector=connector)
        loop.start()
        try:
            done = threading.Event()
            deadline = 20.0
            t = threading.Timer(deadline, done.set)
            t.start()
            while not (loop.state().get("connected") and "tip" in loop.state()) and not done.is_set():
                done.wait(0.02)
            assert loop.request("enable")[0], loop.state()
            tip, pitch = np.array(loop.state()["tip"]), loop.state()["pitch"]
            # Tip at full speed and pitch at full rate together: their flange speeds add up.
            goal_tip, goal_pitch = tip + [sign * 0.08, 0.0, 0.0], pitch + 0.5
            while len(poses) < 300 and not done.is_set():
                loop.set_target(goal_tip, goal_pitch, "tray")
                done.wait(0.02)
            t.cancel()
            loop.request("stop")
        finally:
            loop.shutdown()
    assert len(poses) >= 300, len(poses)
    steps = np.linalg.norm(np.diff(np.array(poses)[:, :3], axis=0), axis=1)
    assert steps.max() > 0.5 * safety.max_speed_m_s * loop.dt  # it did swing at speed
    assert steps.max() <= safety.max_speed_m_s * loop.dt * (1 + 1e-6), steps.max() / loop.dt
