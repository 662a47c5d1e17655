"""Runs the UR5e control loop in a worker process and supervises it.

Why a process: ur_rtde holds the Python GIL while it blocks (constructors waiting on a silent
controller), and tearing down an interface whose link broke races ur_rtde's own internal reconnect
(observed: hangs and segfaults). In a worker process none of that can freeze the ROS executor: a
worker that stops reporting, reports a lost link, or dies is killed (SIGKILL, no ur_rtde teardown)
and, within a bounded number of attempts, replaced by a fresh one that starts DISABLED.

``SupervisedControlLoop`` has the same public API as ``ControlLoop``: ``start``, ``shutdown``,
``set_target``, ``request`` (enable / stop / recover), ``state``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry
from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.safety import DriverState, SafetyConfig, TargetCheck, check_target
from excavation.drivers.ur5e_control_loop import ControlLoop, LoopConfig

LOG = logging.getLogger("ur5e_supervisor")
STATE_PERIOD_S = 0.005
LINK_LOST_EXIT = 3  # the worker's exit code when it leaves on a lost link (its last state says why)
POLL_S = 0.005  # longest wait for a worker message before the health checks run again


def _worker_main(conn, cfg: LoopConfig, safety: SafetyConfig, T_base_tray, geom) -> None:
    """Worker process: one connection attempt, then the control loop until killed."""
    cfg.reconnect_attempts = 1
    send_lock = threading.Lock()

    def leave_on_link_loss():
        # The state saying why goes first (it outlives the process in the pipe), then the process
        # ends with ur_rtde's threads before they can reconnect and re-send a set point.
        try:
            send(("state", loop.state()))
        finally:
            os._exit(LINK_LOST_EXIT)

    loop = ControlLoop(cfg, safety, T_base_tray, geom, supervised=True, on_link_lost=leave_on_link_loss)
    loop.start()

    def send(msg):
        with send_lock:
            conn.send(msg)

    def run_request(rid, name):
        ok, text = loop.request(name)
        send(("state", loop.state()))  # ordered before the reply on the same pipe
        send(("reply", rid, ok, text))

    # stopping: no more state messages (the supervisor may have stopped reading: a full socket
    # buffer would block the "bye" behind them); done: the arm is stopped, the process may leave.
    stopping, done = threading.Event(), threading.Event()

    def halt():
        # Stop the arm on the control thread (servoStop, DISABLED: nothing is commanded after it);
        # the process then leaves without ur_rtde's teardown. That teardown releases nothing the
        # kernel does not close with the process, and costs 2 s (each disconnect and each destructor
        # waits 0.5 s), or blocks on a broken link (see the module docstring).
        stopping.set()
        try:
            loop.request("stop")
        finally:
            done.set()

    def reader():
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                # The supervisor is gone: stop the arm and leave rather than hold the controller
                # connection as an orphan nobody commands.
                halt()
                return
            kind = msg[0]
            if kind == "target":
                loop.set_target(msg[1], msg[2], msg[3])
            elif kind == "request":
                threading.Thread(target=run_request, args=(msg[1], msg[2]), daemon=True).start()
            elif kind == "stats":
                send(("stats", msg[1], {"cycle_starts": list(loop.cycle_starts),
                                         "target_latencies": list(loop.target_latencies),
                                         "servo_calls": loop.servo_calls}))
            elif kind == "exit":
                stopping.set()
                loop.request("stop")
                try:
                    send(("bye",))
                except OSError:
                    pass
                done.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    try:
        while not stopping.wait(STATE_PERIOD_S):
            send(("state", loop.state()))
    except (BrokenPipeError, OSError):
        halt()  # the supervisor is gone: stop the arm before leaving
    done.wait()
    # os._exit: no interpreter teardown, so no ur_rtde destructors (see halt). Before this the worker
    # never left by itself: every graceful shutdown ran into its 3 s timeout and a SIGKILL.
    os._exit(0)


class SupervisedControlLoop:
    def __init__(self, cfg: LoopConfig, safety: SafetyConfig, T_base_tray, geom: BucketGeometry = DEFAULT_BUCKET,
                 worker_silence_timeout_s: float | None = None):
        cfg.validate()
        safety.validate()
        self.cfg, self.safety, self.geom = cfg, safety, geom
        self.T_base_tray = np.asarray(T_base_tray, dtype=float)
        # A worker gets connect probes (2 x timeout) plus ur_rtde construction before it must talk.
        self.silence_timeout = worker_silence_timeout_s or max(5.0, 12.0 * cfg.connect_timeout_s)
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._state: dict = {"driver_state": DriverState.DISCONNECTED.value, "reason": "not connected yet",
                             "connected": False}
        self._attempts_left = cfg.reconnect_attempts
        self._next_spawn = 0.0
        self._spawned_at = 0.0
        self._last_msg = 0.0
        self._last_count = None
        self._last_count_change = 0.0
        self.fault_count = 0  # workers replaced after a fault (lost link, stall, exit)
        self.worker_exit_codes: list[int | None] = []  # of each ended worker: LINK_LOST_EXIT = it left by itself, -9 = killed
        self._replies: dict = {}
        self._reply_cv = threading.Condition()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events: list[str] = []
        self.last_error = ""

    # ------------------------------------------------------------------ API

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="ur5e_supervisor", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._kill_worker(graceful=True)

    def state(self) -> dict:
        with self._lock:
            return dict(self._state)

    def set_target(self, xyz, pitch: float, frame: str) -> TargetCheck:
        res = check_target(self.safety, xyz, pitch, frame)
        if not res.accepted:
            return res
        q = self._state.get("q")
        if q is not None:
            T = kin.base_tool0_from_bucket(self.T_base_tray, res.target[:3], res.target[3], self.geom)
            if kin.ik(T, q) is None:
                return TargetCheck(False, None, reason=f"target {res.target.round(4).tolist()} is out of the arm's reach")
        if not self._send(("target", res.target[:3].tolist(), float(res.target[3]), frame)):
            return TargetCheck(False, None, reason="not connected to the robot")
        return res

    def request(self, name: str) -> tuple[bool, str]:
        if name == "recover" and self._proc is None:
            with self._lock:
                self._attempts_left = self.cfg.reconnect_attempts
                self._next_spawn = 0.0
            return True, f"reconnecting to {self.cfg.robot_ip} ({self.cfg.reconnect_attempts} attempts)"
        if name == "stop" and self._proc is None:
            return True, "stopped (not connected, nothing is moving)"
        rid = next(self._ids)
        if not self._send(("request", rid, name)):
            return False, f"{name}: not connected to {self.cfg.robot_ip} ({self._state.get('reason')})"
        deadline = time.monotonic() + self.cfg.request_timeout_s + 1.0
        with self._reply_cv:
            while rid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self._proc is None:
                    return False, f"{name}: no answer from the control loop"
                self._reply_cv.wait(min(left, 0.1))
            return self._replies.pop(rid)

    def loop_stats(self, timeout: float = 5.0) -> dict | None:
        rid = next(self._ids)
        if not self._send(("stats", rid)):
            return None
        deadline = time.monotonic() + timeout
        with self._reply_cv:
            while ("stats", rid) not in self._replies and time.monotonic() < deadline:
                self._reply_cv.wait(0.1)
            return self._replies.pop(("stats", rid), None)

    # ------------------------------------------------------------------ supervision

    def _send(self, msg) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            with self._lock:
                conn.send(msg)
            return True
        except (OSError, BrokenPipeError, ValueError):
            return False

    def _event(self, text: str) -> None:
        LOG.warning(text)
        self.events.append(text)

    def _spawn_worker(self) -> None:
        # A plain subprocess (not multiprocessing): works whatever the parent's __main__ is, and
        # the worker shares nothing with the parent but one socket.
        a, b = socket.socketpair()
        pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.Popen([sys.executable, "-m", "excavation.drivers.ur5e_supervisor", str(b.fileno())],
                                pass_fds=[b.fileno()], env=env)
        b.close()
        conn = Connection(a.detach())
        conn.send(("init", self.cfg, self.safety, self.T_base_tray, self.geom))
        self._proc, self._conn = proc, conn
        self._spawned_at = self._last_msg = self._last_count_change = time.monotonic()
        self._last_count = None

    def _kill_worker(self, graceful: bool = False) -> None:
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        if proc is None:
            return
        if graceful and conn is not None:
            # Keep reading while the worker shuts its loop down: its last messages (and "bye") must
            # not sit in a full socket buffer while we wait for it.
            deadline = time.monotonic() + 3.0
            try:
                conn.send(("exit",))
                while time.monotonic() < deadline and proc.poll() is None:
                    if conn.poll(0.05) and conn.recv()[0] == "bye":
                        proc.wait(max(0.0, deadline - time.monotonic()))
                        break
            except (OSError, EOFError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.kill()  # SIGKILL on purpose: no ur_rtde teardown (see module docstring)
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            pass
        self.worker_exit_codes.append(proc.returncode)
        if conn is not None:
            conn.close()
        with self._reply_cv:
            self._reply_cv.notify_all()

    def _set_disconnected(self, reason: str) -> None:
        with self._lock:
            keep = {k: v for k, v in self._state.items() if k in ("q", "tip", "pitch")}
            self._state = {**keep, "driver_state": DriverState.DISCONNECTED.value, "reason": reason,
                           "connected": False, "last_error": self.last_error, "stamp": time.monotonic()}

    def _supervise(self) -> None:
        # Health is checked on every pass, whatever the message flow: a worker that keeps sending
        # (its main thread is alive) while its control thread is stuck or its link is gone must
        # still be noticed. A pass lasts at most POLL_S.
        while not self._stop.is_set():
            if self._proc is None:
                if self._attempts_left > 0 and time.monotonic() >= self._next_spawn:
                    self._attempts_left -= 1
                    self._spawn_worker()
                else:
                    time.sleep(POLL_S)
                continue
            closed = self._drain(POLL_S)
            reason = self._health_problem(time.monotonic(), closed)
            if reason is not None:
                self._replace_worker(reason)

    def _drain(self, timeout: float) -> bool:
        """Handle every message waiting (up to a bound); True when the worker's end closed."""
        conn = self._conn
        try:
            if not conn.poll(timeout):
                return False
            for _ in range(1000):
                msg = conn.recv()
                self._last_msg = time.monotonic()
                self._handle(msg)
                if not conn.poll(0):
                    break
        except (EOFError, OSError):
            return True
        return False

    def _health_problem(self, now: float, closed: bool) -> str | None:
        st = self._state
        if st.get("link_lost"):  # first: a worker that left on a lost link said why before it went
            return st.get("reason") or "link lost"
        if self._proc.poll() is not None:
            return f"control worker exited (code {self._proc.returncode})"
        if closed:
            return "control worker closed its link to the supervisor"
        if now - self._last_msg > self.silence_timeout:
            return f"control worker silent for {self.silence_timeout:.0f} s"
        since = st.get("servo_call_since")
        if (since is not None and st.get("driver_state") == DriverState.ENABLED.value
                and now - since > self.cfg.servo_call_timeout_s):
            return (f"control thread stalled inside servoL for {now - since:.3f} s (the controller does not take set "
                    "points, or ur_rtde is reconnecting inside the call)")
        count = st.get("loop_count")
        if count != self._last_count:
            self._last_count, self._last_count_change = count, now
            return None
        stalled = now - self._last_count_change
        # ENABLED means the arm may be streaming: a frozen heartbeat there is a fault at once.
        # Otherwise the control thread may legitimately sit in a request (recover waits for the
        # arm to power on), so allow the request's own timeout.
        limit = (self.cfg.heartbeat_timeout_s if st.get("driver_state") == DriverState.ENABLED.value
                 else self.cfg.request_timeout_s + self.cfg.connect_timeout_s * 2 + 1.0)
        if st.get("connected") and stalled > limit:
            return f"control thread stalled (no heartbeat for {stalled:.2f} s)"
        return None

    def _replace_worker(self, reason: str) -> None:
        err = self._state.get("last_error") or reason
        self.last_error = err
        self._kill_worker()
        left = self._attempts_left
        self._event(f"DISCONNECTED: {reason}; "
                    + (f"reconnecting in {self.cfg.reconnect_backoff_s:.1f} s ({left} attempts left)"
                       if left else f"giving up after {self.cfg.reconnect_attempts} attempts; call `recover` to retry"))
        # Counted after the event is recorded: whoever sees the count sees why.
        self.fault_count += 1
        self._next_spawn = time.monotonic() + self.cfg.reconnect_backoff_s
        self._set_disconnected(reason if left else f"{reason}; gave up after "
                               f"{self.cfg.reconnect_attempts} attempts, call recover")

    def _handle(self, msg) -> None:
        kind = msg[0]
        if kind == "state":
            st = msg[1]
            with self._lock:
                self._state = st
            if st.get("connected"):
                self._attempts_left = self.cfg.reconnect_attempts
        elif kind == "reply":
            with self._reply_cv:
                self._replies[msg[1]] = (msg[2], msg[3])
                self._reply_cv.notify_all()
        elif kind == "stats":
            with self._reply_cv:
                self._replies[("stats", msg[1])] = msg[2]
                self._reply_cv.notify_all()


def _worker_entry(argv) -> int:
    conn = Connection(int(argv[0]))
    kind, cfg, safety, T_base_tray, geom = conn.recv()
    assert kind == "init"
    logging.basicConfig(level=logging.WARNING, format="[ur5e_rtde_worker] %(message)s")
    _worker_main(conn, cfg, safety, T_base_tray, geom)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_entry(sys.argv[1:]))
