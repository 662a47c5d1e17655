"""Each fault kind a few times: the supervisor notices it while the worker keeps talking, stops
commanding the arm, and comes back DISABLED once the controller is back.

Every test starts its own emulator (no shared rig, no order dependence) and waits on state
changes with generous timeouts; nothing here measures time (bench/fault_bench.py does).
"""

import socket
import threading
import time

import numpy as np
import pytest

from conftest import T_BASE_TRAY
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.rtde_emulator.server import free_loopback_host
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import LoopConfig
from excavation.drivers.ur5e_supervisor import SupervisedControlLoop

pytestmark = pytest.mark.timeout(120)
REPEATS = 2


def wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return bool(pred())


def ready(loop):
    """Connected and a measured posture known (the first snapshot after connecting has none yet)."""
    st = loop.state()
    return bool(st.get("connected")) and "tip" in st


def make_loop(host, **loop_kw):
    cfg = LoopConfig(robot_ip=host, **{"reconnect_backoff_s": 0.2, "connect_timeout_s": 1.0, **loop_kw})
    return SupervisedControlLoop(cfg, SafetyConfig(watchdog_timeout_s=0.5), np.array(T_BASE_TRAY))


class Streamer:
    """Sends a fresh target above the start posture at 50 Hz, as the policy node would."""

    def __init__(self, loop):
        self.loop, self.stop = loop, threading.Event()
        self.goal = np.array(loop.state()["tip"]) + [0.0, 0.0, 0.05]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.02):
            self.loop.set_target(self.goal, 0.0, "tray")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(2.0)


def servoing(emu, loop):
    """Enable and wait until servoL commands reach the controller."""
    assert loop.request("enable")[0], loop.state()
    n0 = emu.snapshot()["command_counts"].get("24", 0)
    assert wait(lambda: emu.snapshot()["command_counts"].get("24", 0) > n0 + 10), loop.state()


def left_enabled(loop):
    return loop.state()["driver_state"] != "ENABLED"


def back_disabled(loop, emu):
    """Reconnected, DISABLED, and targets streamed now do not move the arm."""
    assert wait(lambda: ready(loop) and loop.state()["driver_state"] == "DISABLED", 30.0), loop.state()
    q0 = np.array(emu.snapshot()["q"])
    goal = np.array(loop.state()["tip"]) + [0.0, 0.0, 0.03]
    for _ in range(15):
        loop.set_target(goal, 0.0, "tray")
        time.sleep(0.02)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-9)


# (emulator op, what the driver must say): "stall_script" keeps the stream alive but never answers
# "ready", so servoL blocks inside ur_rtde while the worker keeps sending state (caught by the
# heartbeat); "silent" stops the stream (the robot timestamp freezes: a lost link).
STALLS = [("stall_script", "stalled"), ("silent", "link lost")]


@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("op, said", STALLS)
def test_stall_stops_commanding_and_comes_back_disabled(op, said, repeat):
    with EmulatorProcess() as emu:
        loop = make_loop(emu.host)
        loop.start()
        try:
            assert wait(lambda: ready(loop)), loop.state()
            with Streamer(loop):
                servoing(emu, loop)
                emu.call(op, True)
                assert wait(lambda: left_enabled(loop), 10.0), loop.state()
                assert wait(lambda: loop.fault_count >= 1, 10.0)  # the worker was replaced
                assert any(said in e for e in loop.events), loop.events
                emu.call(op, False)
                back_disabled(loop, emu)
        finally:
            loop.shutdown()


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_killed_controller_then_restart(repeat):
    emu = EmulatorProcess().start()
    loop = make_loop(emu.host, reconnect_attempts=50)
    loop.start()
    try:
        assert wait(lambda: ready(loop)), loop.state()
        with Streamer(loop):
            servoing(emu, loop)
            emu.proc.kill()
            assert wait(lambda: left_enabled(loop), 10.0), loop.state()
            assert loop.state()["driver_state"] == "DISCONNECTED"
            emu.stop()
            emu.start()
            back_disabled(loop, emu)
    finally:
        loop.shutdown()
        emu.stop()


def test_silent_peer_gets_every_configured_attempt():
    host = free_loopback_host(ports=(30004, 29999, 30003))
    srv = socket.create_server((host, 30004))
    accepted, held = [], []

    def accept():
        srv.settimeout(0.1)
        while not done.is_set():
            try:
                s, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            accepted.append(time.monotonic())
            held.append(s)  # accept and never answer

    done = threading.Event()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    loop = make_loop(host, reconnect_attempts=3, connect_timeout_s=0.3)
    loop.start()
    try:
        assert wait(lambda: "gave up" in (loop.state().get("reason") or ""), 60.0), loop.state()
        assert len(accepted) == 3, accepted
        assert loop.state()["driver_state"] == "DISCONNECTED"
        ok, msg = loop.request("recover")
        assert ok and "reconnecting" in msg
        assert wait(lambda: len(accepted) == 6, 60.0), accepted
    finally:
        loop.shutdown()
        done.set()
        t.join(2.0)
        for s in held:
            s.close()
        srv.close()
