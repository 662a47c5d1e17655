"""Real ur_rtde client against the emulator process (no ROS)."""

import socket
import threading
import time

import numpy as np
import pytest

from excavation.drivers.rtde_connection import RobotConnectionError, connect, probe_rtde
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.rtde_emulator.server import free_loopback_host

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def emu():
    with EmulatorProcess() as e:
        yield e


def test_receive_and_servo_with_real_ur_rtde(emu):
    io = connect(emu.host, 500.0, timeout=2.0)
    try:
        r, c = io.receive, io.control
        assert io.controller_version[0] == 5
        assert c.isProgramRunning()
        t0 = r.getTimestamp()
        time.sleep(0.1)
        assert r.getTimestamp() > t0  # streaming
        pose = np.array(r.getActualTCPPose())
        target = pose.copy()
        for i in range(200):
            target[2] = pose[2] + 0.03 * min(1.0, i / 100)
            assert c.servoL(target.tolist(), 0.25, 1.0, 0.002, 0.1, 300)
            time.sleep(0.002)
        time.sleep(0.1)
        assert c.servoStop(2.0)
        moved = np.array(r.getActualTCPPose())
        assert abs(moved[2] - (pose[2] + 0.03)) < 2e-3  # integrated kinematically to the target
        np.testing.assert_allclose(moved[:2], pose[:2], atol=2e-3)
        q_after_stop = np.array(r.getActualQ())
        time.sleep(0.1)
        np.testing.assert_allclose(r.getActualQ(), q_after_stop, atol=1e-9)  # stopped
        snap = emu.snapshot()
        assert snap["command_counts"].get("24", 0) > 50 and snap["command_counts"].get("16", 0) >= 1
    finally:
        io.close()


def test_protective_stop_visible_and_blocks_servo(emu):
    io = connect(emu.host, 500.0, timeout=2.0)
    try:
        r, c = io.receive, io.control
        emu.call("protective_stop")
        deadline = time.monotonic() + 2.0
        while not (r.isProtectiveStopped() and not c.isProgramRunning()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.isProtectiveStopped()
        assert not c.isProgramRunning()
        q0 = np.array(r.getActualQ())
        pose = np.array(r.getActualTCPPose())
        pose[2] += 0.05
        assert c.servoL(pose.tolist(), 0.25, 1.0, 0.002, 0.1, 300) is False
        time.sleep(0.05)
        np.testing.assert_allclose(r.getActualQ(), q0, atol=1e-12)
        assert "Cannot unlock" in io.dashboard.unlock_protective_stop()  # 5 s rule
    finally:
        io.close()


def test_silent_peer_gives_clean_timeout():
    host = free_loopback_host(ports=(30004, 29999))
    srv = socket.socket()
    srv.bind((host, 30004))
    srv.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(srv.accept()), daemon=True).start()
    t = time.monotonic()
    with pytest.raises(RobotConnectionError, match="no answer within the timeout"):
        connect(host, 500.0, timeout=0.5)
    assert time.monotonic() - t < 3.0
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
