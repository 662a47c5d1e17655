"""Real ur_rtde client against the emulator process (no ROS)."""

import socket
import threading
import time

import numpy as np
import pytest

from driver_helpers import wait
from excavation.drivers.rtde_connection import RobotConnectionError, connect, probe_rtde
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.rtde_emulator.server import free_loopback_host

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def emu():
    # One emulator per test: a protective stop left by one test must not meet the next.
    with EmulatorProcess() as e:
        yield e


def emu_cycles(emu, n=100):
    """Wait until the emulated controller ran ``n`` more cycles (the window of a no-motion check)."""
    start = emu.snapshot()["cycle"]
    assert wait(lambda: emu.snapshot()["cycle"] >= start + n), "the emulator stopped cycling"


def test_receive_and_servo_with_real_ur_rtde(emu):
    io = connect(emu.host, 500.0, timeout=2.0)
    try:
        r, c = io.receive, io.control
        assert io.controller_version[0] == 5
        assert c.isProgramRunning()
        t0 = r.getTimestamp()
        assert wait(lambda: r.getTimestamp() > t0), "no fresh robot state: not streaming"
        pose = np.array(r.getActualTCPPose())
        target = pose.copy()
        for i in range(200):  # a ramp streamed at about the servo rate (pacing, not waiting)
            target[2] = pose[2] + 0.03 * min(1.0, i / 100)
            assert c.servoL(target.tolist(), 0.25, 1.0, 0.002, 0.1, 300)
            time.sleep(0.002)
        # Keep holding the final set point until the arm is there (integrated kinematically).
        assert wait(lambda: c.servoL(target.tolist(), 0.25, 1.0, 0.002, 0.1, 300)
                    and abs(r.getActualTCPPose()[2] - target[2]) < 1e-3, step=0.002), r.getActualTCPPose()
        assert c.servoStop(2.0)
        moved = np.array(r.getActualTCPPose())
        assert abs(moved[2] - (pose[2] + 0.03)) < 2e-3, moved
        np.testing.assert_allclose(moved[:2], pose[:2], atol=2e-3)
        q_after_stop = np.array(emu.snapshot()["q"])
        emu_cycles(emu)
        np.testing.assert_allclose(emu.snapshot()["q"], q_after_stop, atol=1e-9, err_msg="moved after servoStop")
        snap = emu.snapshot()
        assert snap["command_counts"].get("24", 0) > 50 and snap["command_counts"].get("16", 0) >= 1
        # The fault bench's set-point log: (executed, applied, arrived) per new set point, in that
        # order backwards in time; the kernel's arrival stamp is on the same clock as the others.
        log = emu.call("setpoint_log")
        assert len(log) == snap["servo_setpoints"] > 50
        assert all(arrived <= applied <= executed for executed, applied, arrived in log), log[:5]
        assert all(applied - arrived < 1.0 for _, applied, arrived in log), log[:5]  # a stamp, not a default 0
    finally:
        io.close()


def test_protective_stop_visible_and_blocks_servo(emu):
    io = connect(emu.host, 500.0, timeout=2.0)
    try:
        r, c = io.receive, io.control
        emu.call("protective_stop")
        assert wait(lambda: r.isProtectiveStopped() and not c.isProgramRunning()), "stop not visible to ur_rtde"
        q0 = np.array(emu.snapshot()["q"])
        pose = np.array(r.getActualTCPPose())
        pose[2] += 0.05
        assert c.servoL(pose.tolist(), 0.25, 1.0, 0.002, 0.1, 300) is False
        emu_cycles(emu)
        np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12, err_msg="moved while protective-stopped")
        assert "Cannot unlock" in io.dashboard.unlock_protective_stop()  # 5 s rule
        emu.call("unlock_delay", 0.0)  # the rule passed (without waiting 5 s): the unlock is accepted
        assert "releasing" in io.dashboard.unlock_protective_stop().lower()
        assert wait(lambda: not r.isProtectiveStopped()), "protective stop still shown after the unlock"
    finally:
        io.close()


def test_program_stop_is_visible_and_refuses_servo(emu):
    """The emulator's stop_program fault: the program stops, the arm stays powered and safe."""
    io = connect(emu.host, 500.0, timeout=2.0)
    try:
        r, c = io.receive, io.control
        assert c.isProgramRunning()
        emu.call("stop_program")
        assert wait(lambda: not c.isProgramRunning()), "program still running after stop_program"
        assert not r.isProtectiveStopped() and not r.isEmergencyStopped()
        assert r.getRobotMode() == 7  # still powered, brakes released
        assert c.servoL(r.getActualTCPPose(), 0.25, 1.0, 0.002, 0.1, 300) is False
        assert c.reuploadScript() and wait(c.isProgramRunning), "the script did not restart"
    finally:
        io.close()


def test_silent_peer_gives_clean_timeout():
    host = free_loopback_host(ports=(30004, 29999))
    srv = socket.socket()
    srv.bind((host, 30004))
    srv.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(srv.accept()), daemon=True).start()
    # A clean error, not a hang (the test's timeout would catch a hang; no duration is asserted).
    with pytest.raises(RobotConnectionError, match="no answer within the timeout"):
        connect(host, 500.0, timeout=0.5)
    assert held, "the probe never connected to the silent peer"
    srv.close()


def test_emulator_silent_mode():
    with EmulatorProcess() as e:
        e.call("silent", True)
        with pytest.raises(RobotConnectionError):
            probe_rtde(e.host, timeout=0.5)
        e.call("silent", False)
        assert probe_rtde(e.host, timeout=2.0)[0] == 5


def test_nothing_listening_is_a_clear_error():
    host = free_loopback_host()
    with pytest.raises(RobotConnectionError, match="cannot connect"):
        connect(host, 500.0, timeout=0.5)
