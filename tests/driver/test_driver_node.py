"""The ur5e_driver ROS node (own process) against the emulator, probed by an in-process rclpy node.

The tests share one emulator and driver, reset to a known state before each test (so each passes
alone and in any order); tests with their own parameters live in test_driver_node_params.py (their
driver must not share the ROS domain with this one). Tests wait on messages or counters with
generous timeouts instead of fixed sleeps.
"""

import math
import threading
import time

import numpy as np
import pytest

from driver_helpers import setpoints, wait
from excavation_contract import interfaces as I

pytestmark = pytest.mark.timeout(120)

rclpy = pytest.importorskip("rclpy")

from node_stack import PUBLISH_RATE_HZ, Stack  # noqa: E402  (needs rclpy)

@pytest.fixture(scope="module")
def shared_stack():
    s = Stack()
    yield s
    s.close()


@pytest.fixture
def stack(shared_stack):
    """The module's driver (one start for the tests with default parameters), reset to a known state
    before each test: connected and publishing, DISABLED, no force on the bucket, fresh buffers."""
    s = shared_stack
    assert s.driver.poll() is None, f"driver exited: {s.driver_log()}"
    s.call(I.RECOVER)  # a FAULT or a give-up left behind by a failed test is cleared
    res = s.call(I.STOP)
    assert res.success, res.message
    s.emu.call("tcp_force", [0.0] * 6)
    for buf in s.rx.values():
        buf.clear()
    assert s.poses_pass(5), "driver not publishing after the reset"
    assert wait(lambda: bool(s.rx["rock"]) and not s.rx["rock"][-1][1].data, 20.0), "rock_in_bucket stuck on"
    return s


def _rate_hz(msgs):
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in msgs]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def test_state_topics_flow_at_no_more_than_the_configured_rate(stack):
    s = stack
    rx = s.rx
    for k in ("js", "wrench", "pose", "rock"):
        rx[k].clear()
    n = 40
    assert wait(lambda: all(len(rx[k]) >= n for k in ("js", "wrench", "pose", "rock")), 30.0), \
        {k: len(rx[k]) for k in rx}
    # The rate from the driver's own stamps (not our arrival times): never above the configured
    # rate (a little slack for the stamps' own jitter); how far below it is a matter of load.
    for k in ("js", "wrench", "pose"):
        rate = _rate_hz(rx[k][:n])
        assert 0 < rate <= PUBLISH_RATE_HZ * 1.25, f"{k} published at {rate:.1f} Hz, configured {PUBLISH_RATE_HZ}"
    js = rx["js"][-1][1]
    assert list(js.name)[0] == "shoulder_pan_joint" and len(js.position) == 6
    assert rx["pose"][-1][1].header.frame_id == "tray"
    assert wait(lambda: bool(rx["diag"]), 10.0), "no diagnostics"


def test_enable_move_and_bad_targets(stack):
    s = stack
    emu, rx = s.emu, s.rx
    start = s.latest_tip()
    q0 = np.array(emu.snapshot()["q"])
    # Not enabled: targets streamed while the driver publishes 50 poses move nothing.
    t = threading.Thread(target=lambda: [(s.target(start + [0.0, 0.0, 0.04]), time.sleep(0.02)) for _ in range(50)])
    t.start()
    assert s.poses_pass(50)
    t.join()
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12, err_msg="the arm moved before enable")
    res = s.call(I.ENABLE)
    assert res.success, res.message
    n0 = setpoints(emu)

    def send_bad():  # refused: NaN, wrong frame, stale, stamped in the future
        s.target([0.0, math.nan, 0.1])
        s.target(start + [0.0, 0.0, 0.04], frame="base")
        s.target(start + [0.0, 0.0, 0.04], age_s=2.0)
        s.target(start + [0.0, 0.0, 0.04], age_s=-1000.0)

    # The driver counts each refusal in its diagnostics: bad targets are sent until it has counted
    # 40 (it decided on each of those), whatever the transport drops under load.
    assert wait(lambda: (send_bad(), int(s.diag("targets_refused") or 0) >= 40)[1], 30.0, step=0.02), \
        s.diag("targets_refused")
    assert s.poses_pass(50)
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-12, err_msg="a refused target moved the arm")
    assert setpoints(emu) == n0, "a refused target reached the controller"
    goal = start + [0.02, -0.02, 0.04]

    def at_goal():
        s.target(goal, 0.2)
        m = rx["pose"][-1][1].pose.orientation
        return (np.linalg.norm(s.latest_tip() - goal) < 3e-3
                and abs(I.quaternion_to_pitch(m.x, m.y, m.z, m.w)[0] - 0.2) < 0.01)

    assert wait(at_goal, 30.0, step=0.02), f"tip {s.latest_tip()} never reached {goal}"
    assert s.call(I.STOP).success
    assert wait(lambda: s.diag("state") == "DISABLED", 10.0), s.diag("state")


def test_rock_in_bucket_from_wrench(stack):
    s = stack
    rx, emu = s.rx, s.emu
    # The estimator tared on the first 25 wrenches after connecting (empty bucket).
    assert wait(lambda: len(rx["rock"]) >= 30, 30.0), len(rx["rock"])
    assert not rx["rock"][-1][1].data, "a rock reported in an empty bucket"
    emu.call("tcp_force", [0.0, 0.0, -20.0, 0.0, 0.0, 0.0])  # a 2 kg rock's weight along base -z
    assert wait(lambda: rx["rock"][-1][1].data, 20.0), "the rock's weight was not reported"
    emu.call("tcp_force", [0.0] * 6)
    assert wait(lambda: not rx["rock"][-1][1].data, 20.0), "the rock was still reported after it left"
