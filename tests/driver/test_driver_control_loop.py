"""The supervised control loop (worker process + real ur_rtde) against the emulator.

Every test gets its own emulator and driver (no shared rig, no order dependence), waits on state
changes with generous timeouts, and judges "nothing moves" over a window of control cycles.
"""

import numpy as np
import pytest

from conftest import T_BASE_TRAY
from driver_helpers import (
    LOAD_TOLERANT,
    Streamer,
    actual_tip,
    back_disabled,
    emu_cycles_pass,
    holds_still,
    loop_cycles_pass,
    make_loop,
    moves_again,
    ready,
    servoing,
    setpoints,
    wait,
)
from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.rtde_emulator.server import EmulatorConfig
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import ControlLoop, LoopConfig

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def rig():
    """``rig(safety=None)`` -> (emulator, started supervised loop, connected with a posture)."""
    made = []

    def make(safety=None, supervised=True):
        # A long unlock delay: a recover right after a protective stop is refused however slow the
        # machine; the test drops the delay (emulator op) when it wants the unlock to succeed.
        emu = EmulatorProcess(extra_args=["--unlock-delay", "3600"]).start()
        safety = safety or SafetyConfig(watchdog_timeout_s=0.3)
        if supervised:
            loop = make_loop(emu.host, safety)
        else:  # the loop in this process, as the node runs it with use_worker_process:=false
            loop = ControlLoop(LoopConfig(robot_ip=emu.host, **LOAD_TOLERANT), safety, np.array(T_BASE_TRAY))
        made.append((emu, loop))
        loop.start()
        assert wait(lambda: ready(loop), 30), loop.state()
        return emu, loop

    yield make
    for emu, loop in made:
        loop.shutdown()
        emu.stop()


def tip(loop):
    return np.array(loop.state()["tip"])


def test_no_motion_before_enable(rig):
    emu, loop = rig()
    assert loop.state()["driver_state"] == "DISABLED"
    holds_still(emu, loop, tip(loop) + [0.0, 0.0, 0.05])


def test_enable_move_stop(rig):
    emu, loop = rig()
    start = tip(loop)
    goal = start + [0.03, 0.0, 0.04]
    with Streamer(loop, goal, 0.1):
        servoing(emu, loop)
        reached = lambda: (np.linalg.norm(actual_tip(emu)[0] - goal) < 2e-3  # noqa: E731
                           and abs(actual_tip(emu)[1] - 0.1) < 5e-3)
        assert wait(reached, 30.0), f"arm at {actual_tip(emu)}, goal {goal} pitch 0.1"
    # The driver's measured tip follows the arm's (its state is a few cycles old: wait for it).
    agrees = lambda: np.linalg.norm(tip(loop) - actual_tip(emu)[0]) < 1e-3  # noqa: E731
    assert wait(agrees, 10.0), f"the driver's measured tip {tip(loop)} disagrees with the arm {actual_tip(emu)}"
    ok, msg = loop.request("stop")
    assert ok and loop.state()["driver_state"] == "DISABLED", (msg, loop.state())
    holds_still(emu, loop, start)  # targets after stop are stored but never executed


def test_watchdog_stops_on_stale_targets(rig):
    emu, loop = rig()
    base = tip(loop)
    with Streamer(loop, base + [0.0, 0.0, 0.12]):  # start moving toward a far goal, then go silent
        servoing(emu, loop)
        assert wait(lambda: actual_tip(emu)[0][2] > base[2] + 0.005), "the arm never started moving"
    assert wait(lambda: not loop.state()["servoing"]), loop.state()
    assert "no fresh target" in loop.state()["holding"], loop.state()
    assert loop.state()["driver_state"] == "ENABLED"  # holding, not disabled: fresh targets resume
    q0, n0 = np.array(emu.snapshot()["q"]), setpoints(emu)
    assert loop_cycles_pass(loop) and emu_cycles_pass(emu)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-9, err_msg="the arm moved on stale targets")
    assert setpoints(emu) == n0, "servoL set points sent after the watchdog fired"
    assert actual_tip(emu)[0][2] < base[2] + 0.11, "the arm reached the goal: the watchdog did not stop it"
    loop.request("stop")


@pytest.mark.parametrize("supervised", [True, False], ids=["worker", "in_process"])
def test_out_of_box_target_is_clamped_on_the_arm(rig, supervised):
    """The workspace box bounds where the arm actually goes, not only what set_target returns (both
    loop kinds: the supervisor clamps before the worker's loop does)."""
    # The box is built around the arm's start posture so the clamped face is reachable and close.
    T = np.array(T_BASE_TRAY)
    start = np.asarray(kin.bucket_from_base_tool0(T, kin.fk(np.array(EmulatorConfig().initial_q)))[0])
    box_min = tuple(float(v) for v in start - [0.05, 0.05, 0.05])
    box_max = tuple(float(v) for v in start + [0.05, 0.05, 0.02])
    emu, loop = rig(SafetyConfig(watchdog_timeout_s=0.3, box_min=box_min, box_max=box_max), supervised)
    np.testing.assert_allclose(actual_tip(emu)[0], start, atol=1e-6)
    far = start + [0.0, 0.0, 0.10]  # 8 cm above the box's top face
    res = loop.set_target(far, 0.0, "tray")
    assert res.accepted and res.clamped and res.target[2] == pytest.approx(box_max[2]), res
    highest = [-np.inf]

    def settled_on_face():
        z = actual_tip(emu)[0][2]
        highest[0] = max(highest[0], z)
        return abs(z - box_max[2]) < 1e-3

    with Streamer(loop, far, 0.0):
        servoing(emu, loop)
        assert wait(settled_on_face, 30.0), f"arm tip {actual_tip(emu)[0]} never reached the box face z={box_max[2]}"
        assert loop_cycles_pass(loop)  # keep pushing: it must stay on the face, not creep past it
        settled_on_face()
    assert highest[0] <= box_max[2] + 1e-3, f"the arm went to z={highest[0]:.4f}, above the box ({box_max[2]:.4f})"
    np.testing.assert_allclose(actual_tip(emu)[0], [start[0], start[1], box_max[2]], atol=2e-3)
    assert not loop.set_target([0.0, np.nan, 0.1], 0.0, "tray").accepted
    assert not loop.set_target([0.0, 0.0, 0.1], 0.0, "base").accepted
    loop.request("stop")


def test_protective_stop_then_recover(rig):
    emu, loop = rig()
    with Streamer(loop):
        servoing(emu, loop)
        emu.call("protective_stop")
        assert wait(lambda: loop.state()["driver_state"] == "FAULT"), loop.state()
        assert wait(lambda: "protective stop" in loop.state()["reason"]), loop.state()
        ok, msg = loop.request("enable")
        assert not ok and "recover" in msg, msg
        ok, msg = loop.request("recover")  # the controller's unlock delay has not passed
        assert not ok and "Cannot unlock" in msg, msg
        assert loop.state()["driver_state"] == "FAULT"
    holds_still(emu, loop, tip(loop) + [0.0, 0.0, 0.03])
    emu.call("unlock_delay", 0.0)
    ok, msg = loop.request("recover")
    assert ok, msg
    assert loop.state()["driver_state"] == "DISABLED"  # recover never enables by itself
    holds_still(emu, loop, tip(loop) + [0.0, 0.0, 0.03])
    moves_again(emu, loop)


def test_emergency_stop_while_servoing_needs_release_recover_and_enable(rig):
    """E-stop while ENABLED and streaming: FAULT naming the e-stop, no more servoL, recover refused
    while the button is pressed; after release, recover powers the arm on and leaves it DISABLED."""
    emu, loop = rig()
    with Streamer(loop):
        servoing(emu, loop)
        emu.call("emergency_stop")
        assert wait(lambda: loop.state()["driver_state"] == "FAULT"), loop.state()
        # The program stops in the same controller cycle as the e-stop; the driver must still name
        # the e-stop as the cause (it is what the operator has to act on).
        assert wait(lambda: "emergency stop" in loop.state()["reason"]), loop.state()
        calls = loop.loop_stats()["servo_calls"]
        assert loop_cycles_pass(loop)
        assert loop.loop_stats()["servo_calls"] == calls, "the driver kept calling servoL after the e-stop"
        ok, msg = loop.request("enable")
        assert not ok and "recover" in msg, msg
        ok, msg = loop.request("recover")
        assert not ok and "emergency stop" in msg, msg
        assert loop.state()["driver_state"] == "FAULT"
    emu.call("release_emergency_stop")
    holds_still(emu, loop, tip(loop) + [0.0, 0.0, 0.03])  # released, not recovered: still no motion
    ok, msg = loop.request("recover")
    assert ok, msg
    snap = emu.snapshot()
    assert snap["robot_mode"] == 7 and snap["program_running"], snap  # powered on, brakes off, script back
    assert loop.state()["driver_state"] == "DISABLED", loop.state()
    holds_still(emu, loop, tip(loop) + [0.0, 0.0, 0.03])
    moves_again(emu, loop)


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "holding"])
def test_control_script_stopped_while_enabled(rig, streaming):
    """The program stops on the controller (pendant stop, script error) while ENABLED: FAULT, no
    more servoL; recover restarts the script and leaves the driver DISABLED.

    While streaming, the stop may first show as servoL being refused (the program stopped between
    the driver's check and its servoL in one cycle): both are a FAULT naming the script. While
    holding (no fresh target, so no servoL to refuse) only the driver's check of the program state
    can notice, and it must."""
    emu, loop = rig()
    with Streamer(loop) as streamer:
        servoing(emu, loop)
        if not streaming:
            streamer.stop.set()
            streamer.thread.join(2.0)
            assert wait(lambda: "no fresh target" in loop.state()["holding"]), loop.state()
            assert loop.state()["driver_state"] == "ENABLED"
        emu.call("stop_program")
        assert wait(lambda: loop.state()["driver_state"] == "FAULT"), loop.state()
        said = "control script" if streaming else "control script stopped on the controller"
        assert said in loop.state()["reason"], loop.state()
        calls = loop.loop_stats()["servo_calls"]
        assert loop_cycles_pass(loop)
        assert loop.loop_stats()["servo_calls"] == calls, "the driver kept calling servoL after the script stopped"
        ok, msg = loop.request("enable")
        assert not ok and "recover" in msg, msg
    uploads = emu.snapshot()["script_uploads"]
    ok, msg = loop.request("recover")
    assert ok, msg
    assert emu.snapshot()["script_uploads"] > uploads and emu.snapshot()["program_running"]
    assert loop.state()["driver_state"] == "DISABLED", loop.state()
    holds_still(emu, loop, tip(loop) + [0.0, 0.0, 0.03])
    moves_again(emu, loop)


def test_disconnect_reconnect_needs_enable(rig):
    emu, loop = rig()
    with Streamer(loop):
        servoing(emu, loop)
        emu.call("drop_connections")
        assert wait(lambda: loop.state()["driver_state"] == "DISCONNECTED"), loop.state()
    back_disabled(loop, emu)
    moves_again(emu, loop)
