"""The supervised control loop (worker process + real ur_rtde) against the emulator."""

import time

import numpy as np
import pytest

from conftest import T_BASE_TRAY
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import LoopConfig
from excavation.drivers.ur5e_supervisor import SupervisedControlLoop

pytestmark = pytest.mark.timeout(60)


def wait(pred, timeout=10.0):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def rig():
    with EmulatorProcess(extra_args=["--unlock-delay", "1.0"]) as emu:
        loop = SupervisedControlLoop(LoopConfig(robot_ip=emu.host, reconnect_backoff_s=0.2, connect_timeout_s=1.0),
                                     SafetyConfig(watchdog_timeout_s=0.3), np.array(T_BASE_TRAY))
        loop.start()
        assert wait(lambda: loop.state().get("connected"), 20), loop.state()
        yield emu, loop
        loop.shutdown()


def tip(loop):
    return np.array(loop.state()["tip"])


def stream(loop, target, pitch, seconds):
    t = time.monotonic()
    while time.monotonic() - t < seconds:
        res = loop.set_target(target, pitch, "tray")
        time.sleep(0.02)
    return res


def test_no_motion_before_enable(rig):
    emu, loop = rig
    assert loop.state()["driver_state"] == "DISABLED"
    q0 = np.array(emu.snapshot()["q"])
    stream(loop, tip(loop) + [0.0, 0.0, 0.05], 0.0, 0.4)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12)


def test_enable_move_stop(rig):
    emu, loop = rig
    ok, msg = loop.request("enable")
    assert ok, msg
    start = tip(loop)
    goal = start + [0.03, 0.0, 0.04]
    stream(loop, goal, 0.1, 1.0)
    np.testing.assert_allclose(tip(loop), goal, atol=2e-3)
    assert abs(loop.state()["pitch"] - 0.1) < 5e-3
    ok, _ = loop.request("stop")
    assert ok and loop.state()["driver_state"] == "DISABLED"
    q0 = np.array(emu.snapshot()["q"])
    stream(loop, start, 0.0, 0.3)  # targets after stop are stored but never executed
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12)


def test_watchdog_stops_on_stale_targets(rig):
    emu, loop = rig
    assert loop.request("enable")[0]
    base = tip(loop)
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:  # start moving toward a far goal, then go silent
        loop.set_target(base + [0.0, 0.0, 0.12], 0.0, "tray")
        time.sleep(0.02)
    assert wait(lambda: not loop.state()["servoing"], 2.0)
    assert "no fresh target" in loop.state()["holding"]
    q0 = np.array(emu.snapshot()["q"])
    time.sleep(0.3)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-9)
    assert tip(loop)[2] < base[2] + 0.11  # stopped short of the goal
    loop.request("stop")


def test_out_of_box_target_is_clamped(rig):
    emu, loop = rig
    res = loop.set_target([0.0, 0.0, 5.0], 0.0, "tray")
    assert res.accepted and res.clamped and res.target[2] == pytest.approx(0.35)
    assert not loop.set_target([0.0, np.nan, 0.1], 0.0, "tray").accepted
    assert not loop.set_target([0.0, 0.0, 0.1], 0.0, "base").accepted


def test_protective_stop_then_recover(rig):
    emu, loop = rig
    assert loop.request("enable")[0]
    emu.call("protective_stop")
    assert wait(lambda: loop.state()["driver_state"] == "FAULT", 2.0)
    assert "protective stop" in loop.state()["reason"] or wait(lambda: "protective stop" in loop.state()["reason"], 1.0)
    ok, msg = loop.request("enable")
    assert not ok and "recover" in msg
    ok, msg = loop.request("recover")  # within the controller's unlock delay
    assert not ok and "Cannot unlock" in msg
    q0 = np.array(emu.snapshot()["q"])
    stream(loop, tip(loop) + [0.0, 0.0, 0.03], 0.0, 0.3)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12)
    time.sleep(1.0)
    ok, msg = loop.request("recover")
    assert ok, msg
    assert loop.state()["driver_state"] == "DISABLED"  # recover never enables by itself
    assert loop.request("enable")[0]
    loop.request("stop")


def test_disconnect_reconnect_needs_enable(rig):
    emu, loop = rig
    assert loop.request("enable")[0]
    emu.call("drop_connections")
    assert wait(lambda: loop.state()["driver_state"] == "DISCONNECTED", 3.0)
    assert wait(lambda: loop.state().get("connected"), 20.0), loop.state()
    assert loop.state()["driver_state"] == "DISABLED"
    q0 = np.array(emu.snapshot()["q"])
    stream(loop, tip(loop) + [0.0, 0.0, 0.03], 0.0, 0.3)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12)
    assert loop.request("enable")[0]
    loop.request("stop")
