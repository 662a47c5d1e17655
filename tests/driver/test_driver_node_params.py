"""ur5e_driver node parameters that change what the arm does, each test with a driver of its own.

Its own module: the node tests' shared driver (test_driver_node.py) is torn down before these run,
so two drivers never answer in one ROS domain.
"""

import threading

import numpy as np
import pytest

from driver_helpers import actual_tip, wait
from excavation_contract import interfaces as I

pytestmark = pytest.mark.timeout(120)

rclpy = pytest.importorskip("rclpy")

from node_stack import CALIBRATION, Stack  # noqa: E402  (needs rclpy)


@pytest.fixture
def own_stack():
    """``own_stack(*params)`` -> a Stack of its own; its driver gets the extra ``name:=value`` parameters."""
    made = []

    def make(*params):
        made.append(Stack(*params))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _calibration():
    from excavation.drivers.robot_calibration import load_robot_calibration

    return load_robot_calibration(CALIBRATION)


def test_workspace_parameters_bound_the_arm(own_stack):
    """The node's workspace_min/max parameters bound where the arm actually goes: a target 8 cm above
    the box's top face leaves the arm on that face (its position read back from the emulator)."""
    from excavation.drivers import ur5e_kinematics as kin
    from excavation.drivers.rtde_emulator.server import EmulatorConfig

    T = _calibration()
    start = np.asarray(kin.bucket_from_base_tool0(T, kin.fk(np.array(EmulatorConfig().initial_q)))[0])
    lo, hi = start - [0.05, 0.05, 0.05], start + [0.05, 0.05, 0.02]
    fmt = lambda v: "[" + ", ".join(f"{x:.5f}" for x in v) + "]"  # noqa: E731  (doubles, not ints)
    s = own_stack(f"workspace_min:={fmt(lo)}", f"workspace_max:={fmt(hi)}")
    emu = s.emu
    np.testing.assert_allclose(actual_tip(emu, T)[0], start, atol=1e-6)
    assert s.call(I.ENABLE).success
    far = start + [0.0, 0.0, 0.10]
    highest = [-np.inf]

    def on_face():
        s.target(far)
        z = actual_tip(emu, T)[0][2]
        highest[0] = max(highest[0], z)
        return abs(z - hi[2]) < 1e-3

    assert wait(on_face, 30.0, step=0.02), \
        f"arm tip {actual_tip(emu, T)[0]} never reached the box face z={hi[2]:.4f}; driver log: {s.driver_log()}"
    # Keep pushing over a window of publish cycles: it stays on the face and does not creep past it.
    t_stop = threading.Event()
    pusher = threading.Thread(target=lambda: [on_face() for _ in iter(lambda: t_stop.wait(0.02), True)])
    pusher.start()
    try:
        assert s.poses_pass(50)
    finally:
        t_stop.set()
        pusher.join(2)
    assert highest[0] <= hi[2] + 1e-3, f"the arm went to z={highest[0]:.4f}, above workspace_max z={hi[2]:.4f}"
    np.testing.assert_allclose(actual_tip(emu, T)[0], [start[0], start[1], hi[2]], atol=2e-3)
    assert s.call(I.STOP).success
