"""Each fault kind a few times: the supervisor notices it while the worker keeps talking, stops
commanding the arm, and comes back DISABLED once the controller is back.

Every test starts its own emulator (no shared rig, no order dependence) and waits on state
changes with generous timeouts; nothing here measures time (bench/fault_bench.py does).
"""

import contextlib
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from conftest import T_BASE_TRAY
from driver_helpers import (
    LOAD_TOLERANT,
    Streamer,
    back_disabled,
    holds_still,
    loop_cycles_pass,
    make_loop,
    moves_again,
    ready,
    servoing,
    wait,
)
from excavation.drivers.rtde_connection import connect
from excavation.drivers.rtde_emulator.harness import EmulatorProcess
from excavation.drivers.rtde_emulator.server import free_loopback_host
from excavation.drivers.safety import SafetyConfig
from excavation.drivers.ur5e_control_loop import ControlLoop, LoopConfig

pytestmark = pytest.mark.timeout(120)
REPEATS = 2


def left_enabled(loop):
    return loop.state()["driver_state"] != "ENABLED"


# (emulator op, what the driver must say): "stall_script" keeps the stream alive but never answers
# "ready", so servoL blocks inside ur_rtde while the worker keeps sending state (caught by the
# heartbeat); "silent" stops the stream (the robot timestamp freezes: a lost link).
STALLS = [("stall_script", "stalled"), ("silent", "link lost")]


@contextlib.contextmanager
def streaming_driver(**loop_kw):
    """An emulator and a supervised driver ENABLED and streaming servoL toward fresh targets."""
    with EmulatorProcess() as emu:
        loop = make_loop(emu.host, **loop_kw)
        loop.start()
        try:
            assert wait(lambda: ready(loop)), loop.state()
            with Streamer(loop):
                servoing(emu, loop)
                yield emu, loop
        finally:
            loop.shutdown()


@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("op, said", STALLS)
def test_stall_stops_commanding_and_comes_back_disabled(op, said, repeat):
    with streaming_driver() as (emu, loop):
        emu.call(op, True)
        assert wait(lambda: left_enabled(loop), 10.0), loop.state()
        assert wait(lambda: loop.fault_count >= 1, 10.0)  # the worker was replaced
        assert any(said in e for e in loop.events), loop.events
        emu.call(op, False)
        back_disabled(loop, emu)


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_a_servol_call_that_does_not_return_is_a_fault_before_the_heartbeat(repeat):
    # The heartbeat alone would take 5 s here: the servoL check (0.3 s) must be the one that fires.
    with streaming_driver(heartbeat_timeout_s=5.0, servo_call_timeout_s=0.3) as (emu, loop):
        emu.call("stall_script", True)
        assert wait(lambda: loop.fault_count >= 1, 10.0), loop.state()
        assert any("inside servoL" in e for e in loop.events), loop.events
        emu.call("stall_script", False)
        back_disabled(loop, emu)


@pytest.mark.parametrize("repeat", range(REPEATS))
def test_on_a_dropped_link_the_worker_leaves_by_itself_and_says_why(repeat):
    # ur_rtde's threads reconnect on their own: the worker holding them must end at the decision
    # (exit code LINK_LOST_EXIT), not live on until the supervisor kills it (-9).
    from excavation.drivers.ur5e_supervisor import LINK_LOST_EXIT

    with streaming_driver() as (emu, loop):
        emu.call("silent", True)  # the stream stops: a lost link
        assert wait(lambda: loop.fault_count >= 1, 10.0), loop.state()
        assert loop.worker_exit_codes[-1] == LINK_LOST_EXIT, loop.worker_exit_codes
        assert any("link lost" in e for e in loop.events), loop.events
        emu.call("silent", False)
        back_disabled(loop, emu)


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


def test_gives_up_after_the_configured_attempts_then_recover_brings_it_back():
    """The controller goes silent while streaming: the driver leaves ENABLED, tries exactly the
    configured number of times, gives up (no retry on its own, also once the controller is back);
    ``recover`` reconnects it DISABLED, and only ``enable`` moves the arm again."""
    with EmulatorProcess() as emu:
        loop = make_loop(emu.host, reconnect_attempts=2, connect_timeout_s=0.5)
        loop.start()
        try:
            assert wait(lambda: ready(loop)), loop.state()
            with Streamer(loop):
                servoing(emu, loop)
                before = emu.snapshot()["rtde_connections"]
                emu.call("silent", True)
                assert wait(lambda: left_enabled(loop)), loop.state()
                assert wait(lambda: "gave up" in (loop.state().get("reason") or ""), 60.0), loop.state()
            assert loop.state()["driver_state"] == "DISCONNECTED", loop.state()
            n = emu.snapshot()["rtde_connections"]
            # Each attempt is one RTDE handshake probe (it times out on the silent controller).
            assert n - before == 2, f"{n - before} connection attempts, 2 configured"
            assert loop.fault_count == 3, f"{loop.fault_count} workers replaced: the lost one + 2 attempts expected"
            emu.call("silent", False)
            # A negative check needs a window: a driver still retrying would connect within one
            # backoff (0.2 s) plus a worker start; give it many times that.
            assert not wait(lambda: loop.state().get("connected") or emu.snapshot()["rtde_connections"] > n, 4.0), \
                f"the driver reconnected on its own after giving up: {loop.state()}"
            ok, msg = loop.request("recover")
            assert ok and "reconnecting" in msg, msg
            back_disabled(loop, emu)
            moves_again(emu, loop)
        finally:
            loop.shutdown()


def _worker_pid(loop):
    proc = loop._proc  # the supervisor's current worker (no public handle: tests only)
    assert proc is not None and proc.poll() is None, "no live worker"
    return proc.pid


def test_crashed_worker_is_replaced_and_comes_back_disabled():
    """The worker process dies (SIGKILL) while streaming: the supervisor sees it exit, the arm gets
    no new set points, and a fresh worker comes back DISABLED."""
    with EmulatorProcess() as emu:
        loop = make_loop(emu.host)
        loop.start()
        try:
            assert wait(lambda: ready(loop)), loop.state()
            with Streamer(loop):
                servoing(emu, loop)
                pid = _worker_pid(loop)
                os.kill(pid, signal.SIGKILL)
                assert wait(lambda: left_enabled(loop)), loop.state()
                assert wait(lambda: loop.fault_count >= 1), loop.events
                said = " | ".join(loop.events)
                assert "worker exited" in said or "closed its link" in said, said
                assert wait(lambda: ready(loop) and _worker_pid(loop) != pid, 30.0), loop.state()
            # No set point from the fresh worker while the policy keeps streaming (back_disabled
            # streams and counts). Counted from here, not from the kill: the dead worker's last
            # packets may still sit in the controller's socket buffer when its death is noticed.
            back_disabled(loop, emu)
            moves_again(emu, loop)
        finally:
            loop.shutdown()


# (driver state when the worker freezes, what the supervisor must say): a frozen worker (SIGSTOP:
# alive, sending nothing) while ENABLED is caught by its heartbeat at once; while DISABLED by the
# silence timeout (the heartbeat allows a long request there).
FREEZES = [("ENABLED", "stalled"), ("DISABLED", "silent")]


@pytest.mark.parametrize("when, said", FREEZES)
def test_frozen_worker_is_replaced_and_comes_back_disabled(when, said):
    with EmulatorProcess() as emu:
        # 5 s: the shortest the supervisor allows by default. A worker is silent while ur_rtde's
        # constructors hold its GIL; on a loaded machine that took over 2 s, and a 2 s limit then
        # killed every fresh worker before it could report.
        loop = make_loop(emu.host, silence_timeout_s=5.0)
        loop.start()
        pid = None
        try:
            assert wait(lambda: ready(loop)), loop.state()
            with Streamer(loop):
                if when == "ENABLED":
                    servoing(emu, loop)
                pid = _worker_pid(loop)
                os.kill(pid, signal.SIGSTOP)
                assert wait(lambda: loop.fault_count >= 1), loop.state()
                assert wait(lambda: loop.state()["driver_state"] == "DISCONNECTED" or ready(loop)), loop.state()
                assert any(said in e for e in loop.events), loop.events
                assert wait(lambda: ready(loop) and _worker_pid(loop) != pid, 30.0), loop.state()
            back_disabled(loop, emu)  # no set points from the fresh worker (see the crashed-worker test)
            moves_again(emu, loop)
        finally:
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)  # never leave a stopped process behind
                except ProcessLookupError:
                    pass
            loop.shutdown()


class RefusingControl:
    """ur_rtde's control interface, except that servoL returns False while ``refuse`` is set.

    Why not the emulator: with ur_rtde 1.6.5 servoL returns False only when the control script is
    not running (runtime state stopped), and isProgramRunning() then says so too; the driver's own
    check of servoL's answer (the controller refusing between that check and the call) can only be
    reached deterministically at the client boundary.
    """

    def __init__(self, inner):
        self._inner, self.refuse = inner, threading.Event()

    def servoL(self, *args):
        if self.refuse.is_set():
            return False
        return self._inner.servoL(*args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_refused_servol_faults_and_stops_commanding():
    controls = []
    with EmulatorProcess() as emu:
        def connector():
            io = connect(emu.host, 500.0, 2.0)
            io.control = RefusingControl(io.control)
            controls.append(io.control)
            return io

        loop = ControlLoop(LoopConfig(robot_ip=emu.host, **LOAD_TOLERANT), SafetyConfig(watchdog_timeout_s=0.5),
                           np.array(T_BASE_TRAY), connector=connector)
        loop.start()
        try:
            assert wait(lambda: ready(loop)), loop.state()
            with Streamer(loop):
                servoing(emu, loop)
                controls[-1].refuse.set()
                assert wait(lambda: loop.state()["driver_state"] == "FAULT"), loop.state()
                assert "servoL refused" in loop.state()["reason"], loop.state()
                calls = loop.servo_calls  # the driver's own count of servoL calls (refused ones too)
                assert loop_cycles_pass(loop)
                assert loop.servo_calls == calls, f"{loop.servo_calls - calls} servoL calls after the refusal"
                ok, msg = loop.request("enable")
                assert not ok and "recover" in msg, msg
            controls[-1].refuse.clear()
            ok, msg = loop.request("recover")
            assert ok, msg
            assert loop.state()["driver_state"] == "DISABLED", loop.state()
            holds_still(emu, loop, np.array(loop.state()["tip"]) + [0.0, 0.0, 0.03])
            moves_again(emu, loop)
        finally:
            loop.shutdown()
