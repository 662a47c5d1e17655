"""Helpers shared by the driver tests: waiting on conditions (never on fixed sleeps), streaming
targets as the policy node would, and reading the arm's actual posture from the emulator.

Why windows are counted in control cycles: a check that the arm does *not* move needs an observation
window. Counting cycles of the driver's control loop (its heartbeat) and of the emulated controller
makes that window mean "the driver had this many chances to command the arm", however loaded the
machine is, instead of a number of seconds that a slow CI run may not give it.
"""

from __future__ import annotations

import threading

import numpy as np

from conftest import T_BASE_TRAY
from shared_helpers import wait_for
from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import LoopConfig
from excavation.drivers.ur5e_supervisor import SupervisedControlLoop

SERVOL = "24"  # ur_rtde's servoL command number, as the emulator counts it
WINDOW_CYCLES = 150  # control cycles a "nothing moves" check watches (0.3 s at 500 Hz, unloaded)


def wait(pred, timeout: float = 20.0, step: float = 0.01) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` s passed; True if it became true."""
    return wait_for(pred, timeout, step)


def ready(loop) -> bool:
    """Connected and a measured posture known (the first snapshot after connecting has none yet)."""
    st = loop.state()
    return bool(st.get("connected")) and "tip" in st


# The driver's defaults (0.15 s) call a link lost / a control thread stalled after 75 missed cycles.
# On a loaded 2-core CI machine a process can be starved that long, which showed up as spurious
# "link lost" in tests about something else. Tests use 1 s: every fault they inject still trips
# these checks (a silent controller, a blocked servoL, a frozen worker never recover by themselves).
LOAD_TOLERANT = {"stale_state_timeout_s": 1.0, "heartbeat_timeout_s": 1.0, "servo_call_timeout_s": 1.0}


def make_loop(host: str, safety: SafetyConfig | None = None, silence_timeout_s: float | None = None,
              **loop_kw) -> SupervisedControlLoop:
    cfg = LoopConfig(robot_ip=host, **{"reconnect_backoff_s": 0.2, "connect_timeout_s": 1.0, **LOAD_TOLERANT,
                                       **loop_kw})
    return SupervisedControlLoop(cfg, safety or SafetyConfig(watchdog_timeout_s=0.5), np.array(T_BASE_TRAY),
                                 worker_silence_timeout_s=silence_timeout_s)


def loop_cycles_pass(loop, n: int = WINDOW_CYCLES, timeout: float = 30.0) -> bool:
    """Wait until the driver's control loop ran ``n`` more cycles (its heartbeat counter)."""
    start = loop.state().get("loop_count")
    if start is None:
        return False
    return wait(lambda: (loop.state().get("loop_count") or 0) >= start + n, timeout)


def emu_cycles_pass(emu, n: int = WINDOW_CYCLES, timeout: float = 30.0) -> bool:
    """Wait until the emulated controller ran ``n`` more control cycles."""
    start = emu.snapshot()["cycle"]
    return wait(lambda: emu.snapshot()["cycle"] >= start + n, timeout, step=0.02)


def setpoints(emu) -> int:
    """New servoL set points the emulated controller received (a repeated set point is not one)."""
    return emu.snapshot()["servo_setpoints"]


def actual_tip(emu, T_base_tray=T_BASE_TRAY):
    """The bucket tip (tray frame) and pitch of the arm's actual joint angles, read from the emulator."""
    q = np.array(emu.snapshot()["q"])
    tip, pitch = kin.bucket_from_base_tool0(np.array(T_base_tray), kin.fk(q))
    return np.asarray(tip), float(pitch)


class Streamer:
    """Sends a fresh target at 50 Hz from a thread, as the policy node would. ``goal`` may change."""

    def __init__(self, loop, goal=None, pitch=None):
        st = loop.state()
        self.loop, self.stop = loop, threading.Event()
        self.goal = np.array(st["tip"]) + [0.0, 0.0, 0.05] if goal is None else np.asarray(goal, dtype=float)
        self.pitch = float(st["pitch"]) if pitch is None else float(pitch)
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.02):
            self.loop.set_target(self.goal, self.pitch, "tray")
            self.sent += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(2.0)


def stream_over_window(loop, goal, pitch: float = 0.0, cycles: int = WINDOW_CYCLES) -> None:
    """Stream ``goal`` while the driver runs ``cycles`` control cycles (the window of a no-motion check)."""
    with Streamer(loop, goal, pitch) as s:
        assert wait(lambda: s.sent >= 3), "the streamer sent no targets"
        assert loop_cycles_pass(loop, cycles), f"the control loop stopped cycling: {loop.state()}"


def servoing(emu, loop) -> None:
    """Enable (a Streamer must be running) and wait until new servoL set points reach the controller."""
    ok, msg = loop.request("enable")
    assert ok, f"enable refused: {msg} ({loop.state()})"
    n0 = setpoints(emu)
    assert wait(lambda: setpoints(emu) > n0 + 10), f"no servoL set points reached the controller: {loop.state()}"


def holds_still(emu, loop, goal, pitch: float = 0.0) -> None:
    """Targets streamed over a window of control cycles move neither the arm nor add set points."""
    q0, n0 = np.array(emu.snapshot()["q"]), setpoints(emu)
    stream_over_window(loop, goal, pitch)
    assert emu_cycles_pass(emu), "the emulated controller stopped cycling"
    np.testing.assert_allclose(emu.snapshot()["q"], q0, atol=1e-9, err_msg="the arm moved while it must hold")
    assert setpoints(emu) == n0, f"{setpoints(emu) - n0} servoL set points sent while motion is refused"


def back_disabled(loop, emu) -> None:
    """Reconnected, DISABLED, and targets streamed now do not move the arm."""
    assert wait(lambda: ready(loop) and loop.state()["driver_state"] == "DISABLED", 30.0), loop.state()
    holds_still(emu, loop, np.array(loop.state()["tip"]) + [0.0, 0.0, 0.03], loop.state()["pitch"])


def moves_again(emu, loop) -> None:
    """After enable, a fresh target moves the arm again (motion really is back, not only the state)."""
    start = np.array(loop.state()["tip"])
    with Streamer(loop, start + [0.0, 0.0, 0.02]):
        servoing(emu, loop)
        assert wait(lambda: actual_tip(emu)[0][2] > start[2] + 0.01), \
            f"the arm did not move toward the target after enable: {loop.state()}"
    loop.request("stop")
