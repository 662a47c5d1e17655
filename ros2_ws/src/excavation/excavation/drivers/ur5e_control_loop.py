"""The UR5e control thread: reads the robot, applies safety, streams servoL at the robot's rate.

All ur_rtde calls happen on this one thread (the interfaces are not thread-safe). Other threads
(the ROS executor) only call ``set_target`` (stores a validated target), ``request`` (enable / stop
/ recover, executed by this thread between two cycles) and ``state`` (a snapshot copy).

Cycle (every ``1/rate_hz`` s):
1. read actual q, TCP pose, TCP force, safety and program status;
2. connection loss (ur_rtde reports disconnected, or the robot timestamp stops advancing) ->
   DISCONNECTED, interfaces dropped, bounded reconnect attempts; after reconnecting the driver is
   DISABLED and needs a new enable;
3. protective / emergency stop, or the control script no longer running while enabled -> servoStop,
   FAULT; ``recover`` must succeed (then ``enable``) before anything moves again;
4. ENABLED and a fresh target -> next set point from the MotionLimiter -> servoL;
   ENABLED and the target older than the watchdog timeout -> servoStop, hold (motion resumes when a
   fresh target arrives, starting at rest from the measured posture).
"""

from __future__ import annotations

import collections
import datetime
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry
from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_connection import RobotConnectionError, RtdeInterfaces, connect
from excavation.drivers.safety import (
    DriverState,
    MotionLimiter,
    SafetyConfig,
    SafetyStateMachine,
    TargetCheck,
    Watchdog,
    check_target,
)

from excavation.drivers.ur_constants import (ROBOT_MODE_RUNNING, SAFETY_BIT_PROTECTIVE_STOPPED,  # noqa: E402
                                            SAFETY_BITS_EMERGENCY)

LOG = logging.getLogger("ur5e_control_loop")

PACING_CHOICES = ("hybrid", "sleep", "ur_rtde")


@dataclass
class LoopConfig:
    robot_ip: str = "127.0.0.1"
    rate_hz: float = 500.0
    servo_lookahead_s: float = 0.1  # servoL lookahead_time, [0.03, 0.2]
    servo_gain: float = 300.0  # servoL gain, [100, 2000]
    connect_timeout_s: float = 2.0
    reconnect_attempts: int = 5
    reconnect_backoff_s: float = 1.0
    stale_state_timeout_s: float = 0.15  # robot timestamp frozen this long = link lost (75 packets at 500 Hz)
    heartbeat_timeout_s: float = 0.15  # ENABLED and the control thread's loop counter frozen this long = FAULT
    # A servoL call (other than a streaming session's first) not returned after this long = FAULT. Shorter
    # than the heartbeat on purpose: ur_rtde reconnects by itself inside a servoL that meets a broken
    # socket and re-sends the set point when the new session is up (~0.1-0.15 s); the worker must be
    # gone before that, or the controller executes a set point after the driver reported the stop.
    servo_call_timeout_s: float = 0.06
    request_timeout_s: float = 10.0
    recover_power_on: bool = True  # after an e-stop is released, power on + brake release on recover
    # How each cycle waits for its deadline (see ``LoopPacer``; figures in bench/results/rtde_loop.json):
    # "hybrid" (default): time.sleep to ``pacing_spin_s`` before the absolute deadline, then a short
    #   spin on time.perf_counter, holding the GIL for at most ``pacing_spin_s``: the thread wakes early,
    #   takes the GIL back while other threads may still hold it, and is running at the deadline
    #   ("sleep" and "ur_rtde" retake the GIL after the deadline). With SCHED_FIFO at load avg ~5 it gave
    #   p99 0.006 ms twice (ur_rtde 0.12-1.5, sleep 0.22-1.6); at load 8-12 all three were ~5-6 ms;
    # "sleep": time.sleep to the absolute deadline (no spin; least CPU);
    # "ur_rtde": RTDEControlInterface.waitPeriod to the same absolute deadlines (ur_rtde's clock_nanosleep
    #   + spin in C++, GIL released); only for rates whose period is whole ms (500, 250, 125 Hz ...).
    pacing: str = "hybrid"
    pacing_spin_s: float = 0.0004  # "hybrid" only: spin this long before each deadline, [0, 0.002]
    # SCHED_FIFO priority for the control thread only (1..99; 0 = leave the normal scheduler). Needs
    # CAP_SYS_NICE or an RLIMIT_RTPRIO; where refused the loop logs once (info) and runs without it.
    # Threads the control thread starts inherit it: ur_rtde's receive threads, which feed the state the
    # loop checks for staleness (without them at FIFO, CPU burners starved them into stale-state
    # disconnects in the bench), and the teardown thread (it blocks; it does not spin).
    # 20: below ur_rtde's own threads on an RT kernel (up to 90) and the kernel's IRQ threads (50).
    rt_priority: int = 20
    # CPUs the control thread may run on (empty = leave as is); refused or invalid -> logged once, ignored.
    # Threads the control thread starts afterwards (ur_rtde's receive threads) inherit the mask.
    cpu_affinity: tuple[int, ...] = ()

    def validate(self) -> None:
        errors = []
        if self.pacing not in PACING_CHOICES:
            errors.append(f"pacing must be one of {', '.join(PACING_CHOICES)}, got {self.pacing!r}")
        if not (0 <= self.pacing_spin_s <= 0.002):
            errors.append(f"pacing_spin_s must be in [0, 0.002], got {self.pacing_spin_s}")
        if not (0 <= int(self.rt_priority) <= 99):
            errors.append(f"rt_priority must be in [0, 99] (0 = normal scheduling), got {self.rt_priority}")
        if self.pacing == "ur_rtde" and self.rate_hz > 0 and abs(1000.0 / self.rate_hz - round(1000.0 / self.rate_hz)) > 1e-9:
            errors.append(f"pacing 'ur_rtde' needs a period of whole milliseconds (ur_rtde's waitPeriod rounds "
                          f"it down), got rate_hz {self.rate_hz}")
        if any(int(c) < 0 for c in self.cpu_affinity):
            errors.append(f"cpu_affinity must list CPU numbers >= 0, got {list(self.cpu_affinity)}")
        if not (0 < self.rate_hz <= 500):
            errors.append(f"rate_hz must be in (0, 500], got {self.rate_hz}")
        if not (0.03 <= self.servo_lookahead_s <= 0.2):
            errors.append(f"servo_lookahead_s must be in [0.03, 0.2], got {self.servo_lookahead_s}")
        if not (100 <= self.servo_gain <= 2000):
            errors.append(f"servo_gain must be in [100, 2000], got {self.servo_gain}")
        if not (0 < self.connect_timeout_s <= 30):
            errors.append(f"connect_timeout_s must be in (0, 30], got {self.connect_timeout_s}")
        if not (1 <= int(self.reconnect_attempts) <= 100):
            errors.append(f"reconnect_attempts must be in [1, 100], got {self.reconnect_attempts}")
        if not (0 <= self.reconnect_backoff_s <= 60):
            errors.append(f"reconnect_backoff_s must be in [0, 60], got {self.reconnect_backoff_s}")
        if not (0.01 <= self.stale_state_timeout_s <= 5):
            errors.append(f"stale_state_timeout_s must be in [0.01, 5], got {self.stale_state_timeout_s}")
        if not (0.02 <= self.heartbeat_timeout_s <= 5):
            errors.append(f"heartbeat_timeout_s must be in [0.02, 5], got {self.heartbeat_timeout_s}")
        if not (0.01 <= self.servo_call_timeout_s <= 5):
            errors.append(f"servo_call_timeout_s must be in [0.01, 5], got {self.servo_call_timeout_s}")
        if not self.robot_ip:
            errors.append("robot_ip is empty")
        if errors:
            raise ValueError("invalid driver configuration: " + "; ".join(errors))


class ControlLoop:
    def __init__(
        self,
        cfg: LoopConfig,
        safety: SafetyConfig,
        T_base_tray: np.ndarray,
        geom: BucketGeometry = DEFAULT_BUCKET,
        connector=None,
        supervised: bool = False,
        on_link_lost=None,
    ):
        cfg.validate()
        safety.validate()
        self.cfg, self.safety, self.geom = cfg, safety, geom
        self.T_base_tray = np.asarray(T_base_tray, dtype=float)
        self.dt = 1.0 / cfg.rate_hz
        self.sm = SafetyStateMachine()
        self.limiter = MotionLimiter(safety, self.dt)
        self.watchdog = Watchdog(safety.watchdog_timeout_s)
        self._connector = connector or (lambda: connect(cfg.robot_ip, cfg.rate_hz, cfg.connect_timeout_s))
        self._io: RtdeInterfaces | None = None
        self._lock = threading.Lock()
        self._goal: np.ndarray | None = None
        self._goal_t: float | None = None
        self._goal_id = 0
        self._sent_goal_id = 0
        self._requests: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._servoing = False
        self._holding_reason = ""
        self._reconnect_budget = cfg.reconnect_attempts
        self._next_attempt = 0.0
        self._last_ts: float | None = None
        self._last_ts_change = 0.0
        self._fault_time: float | None = None
        self._teardown: threading.Thread | None = None
        # Supervised (inside a worker process): a lost link is reported, never torn down or
        # reconnected here; the supervisor kills this process and starts a fresh one.
        self.supervised = supervised
        # supervised: called on the control thread the moment a streaming link is found lost (the worker
        # reports it and leaves: ur_rtde's own threads must not outlive the decision, see _lost_connection)
        self.on_link_lost = on_link_lost
        self.link_lost = False
        self._teardown_deadline = 0.0
        self._state: dict = {"driver_state": self.sm.state.value, "reason": self.sm.reason, "connected": False}
        self.last_error = ""
        # Loop statistics for diagnostics and the benchmark.
        self.cycle_starts: collections.deque = collections.deque(maxlen=100000)
        self.target_latencies: collections.deque = collections.deque(maxlen=100000)
        self.servo_calls = 0
        # Heartbeat: counts control cycles; published with every state snapshot so a supervisor can
        # tell a control thread stuck inside ur_rtde (servoL / servoStop blocking) from a live one.
        self.loop_count = 0
        # monotonic time the servoL now in flight was called (None: none, or the session's first call,
        # which may wait for the controller's script); read live by state(), checked by the supervisor
        self.servo_call_since: float | None = None
        self.events: collections.deque = collections.deque(maxlen=200)  # (time, text) for logs
        self.scheduling: dict = {}  # what apply_thread_scheduling could set on the control thread

    # ------------------------------------------------------------------ public (any thread)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ur5e_control_loop", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_target(self, xyz, pitch: float, frame: str) -> TargetCheck:
        """Validate and store a bucket target (tray frame). Never moves the robot by itself."""
        res = check_target(self.safety, xyz, pitch, frame)
        if not res.accepted:
            self._event("target refused: " + res.reason)
            return res
        q = self._state.get("q")
        if q is not None:
            T = kin.base_tool0_from_bucket(self.T_base_tray, res.target[:3], res.target[3], self.geom)
            if kin.ik(T, q) is None:
                res = TargetCheck(False, None, reason=f"target {res.target.round(4).tolist()} is out of the arm's reach")
                self._event("target refused: " + res.reason)
                return res
        if res.clamped:
            self._event(res.reason)
        with self._lock:
            self._goal = res.target
            self._goal_t = time.monotonic()
            self._goal_id += 1
        return res

    def request(self, name: str) -> tuple[bool, str]:
        """Run ``enable`` / ``stop`` / ``recover`` on the control thread and wait for its answer."""
        if name not in ("enable", "stop", "recover"):
            return False, f"unknown request {name!r}"
        done = threading.Event()
        box: list = []
        self._requests.put((name, done, box))
        if not done.wait(self.cfg.request_timeout_s):
            return False, f"{name}: control thread did not answer within {self.cfg.request_timeout_s} s"
        with self._lock:  # the caller sees the state its request produced, not last cycle's
            self._state["driver_state"] = self.sm.state.value
            self._state["reason"] = self.sm.reason
        return box[0]

    def state(self) -> dict:
        with self._lock:
            out = dict(self._state)
        out["servo_call_since"] = self.servo_call_since  # live: the snapshot freezes while servoL blocks
        return out

    # ------------------------------------------------------------------ control thread

    def _event(self, text: str) -> None:
        LOG.warning(text)
        self.events.append((time.monotonic(), text))

    def _run(self) -> None:
        self.scheduling = apply_thread_scheduling(self.cfg.rt_priority, self.cfg.cpu_affinity)
        pacer = LoopPacer(self.dt, self.cfg.pacing, self.cfg.pacing_spin_s)
        while not self._stop.is_set():
            now = time.perf_counter()
            self.cycle_starts.append(now)
            self.loop_count += 1
            try:
                self._cycle()
            except Exception as exc:  # a bug here must stop the arm, not kill the thread silently
                self._event(f"control cycle error: {exc!r}")
                self._safe_stop()
                self.sm.fault(f"internal error: {exc!r}")
            if self._io is None:
                pacer.idle(0.05)  # disconnected: no need to run at 500 Hz
            else:
                pacer.wait(self._io.control)
        self._safe_stop()
        if self._io is not None:
            self._io.close()
            self._io = None

    def _cycle(self) -> None:
        self._handle_requests()
        if self._io is None:
            self._try_connect()
            self._publish_state(None)
            return
        io = self._io
        r = io.receive
        mono = time.monotonic()
        connected = bool(r.isConnected()) and bool(io.control.isConnected())
        ts = r.getTimestamp()
        if ts != self._last_ts:
            self._last_ts, self._last_ts_change = ts, mono
        elif mono - self._last_ts_change > self.cfg.stale_state_timeout_s:
            connected = False
        if not connected:
            self._lost_connection("controller link lost (no fresh robot state)")
            return
        q = np.array(r.getActualQ())
        tcp = np.array(r.getActualTCPPose())
        wrench = np.array(r.getActualTCPForce())
        bits = int(r.getSafetyStatusBits())
        program_running = bool(io.control.isProgramRunning())
        robot_mode = int(r.getRobotMode())
        tip, pitch = kin.bucket_from_base_tool0(self.T_base_tray, kin.fk(q), self.geom)

        if bits & SAFETY_BITS_EMERGENCY:
            self._fault("emergency stop")
        elif bits & SAFETY_BIT_PROTECTIVE_STOPPED:
            self._fault("protective stop")
        elif self.sm.enabled and not program_running:
            self._fault("control script stopped on the controller")

        if self.sm.enabled:
            self._servo(np.array([*tip, pitch]), mono)
        elif self._servoing:
            self._safe_stop()
        self._publish_state(dict(q=q, qd=np.array(r.getActualQd()), tcp_pose=tcp, wrench=wrench, tip=tip,
                                 pitch=pitch, safety_bits=bits, program_running=program_running,
                                 robot_mode=robot_mode, robot_timestamp=ts))

    def _servo(self, measured: np.ndarray, mono: float) -> None:
        with self._lock:
            goal, goal_t, goal_id = self._goal, self._goal_t, self._goal_id
        if goal is None or goal_t is None or mono - goal_t > self.safety.watchdog_timeout_s:
            if self._servoing:
                self._event("watchdog: no fresh target for %.2f s; servoStop and hold" % self.safety.watchdog_timeout_s)
                self._safe_stop()
            self._holding_reason = "holding: no fresh target"
            return
        if not self._servoing:
            self.limiter.reset(measured)
        previous = self.limiter.setpoint.copy()
        setpoint = self.limiter.step(goal)
        limited = flange_limited_setpoint(previous, setpoint, self.safety.max_speed_m_s * self.dt, self.geom)
        if limited is not setpoint:
            # Keep the limiter's plan consistent with what is actually commanded.
            k = float(np.linalg.norm(limited - previous) / max(np.linalg.norm(setpoint - previous), 1e-12))
            self.limiter.setpoint, self.limiter.velocity = limited.copy(), self.limiter.velocity * k
            setpoint = limited
        T = kin.base_tool0_from_bucket(self.T_base_tray, setpoint[:3], setpoint[3], self.geom)
        pose = kin.matrix_to_pose(T).tolist()
        speed = max(self.safety.max_speed_m_s, 0.01)
        accel = max(self.safety.max_accel_m_s2, 0.01)
        if self._servoing:
            self.servo_call_since = time.monotonic()
        try:
            ok = self._io.control.servoL(pose, speed, accel, self.dt, self.cfg.servo_lookahead_s, self.cfg.servo_gain)
        finally:
            self.servo_call_since = None
        self.servo_calls += 1
        if ok is False:
            self._fault("servoL refused by the controller (control script not running?)")
            return
        if goal_id != self._sent_goal_id:
            self.target_latencies.append(time.monotonic() - goal_t)
            self._sent_goal_id = goal_id
        self._servoing = True
        self._holding_reason = ""

    def _safe_stop(self) -> None:
        """servoStop if we were streaming; errors are logged, the state machine handles the rest."""
        if self._io is not None and self._servoing:
            try:
                self._io.control.servoStop(2.0)
            except Exception as exc:
                self._event(f"servoStop failed: {exc!r}")
        self._servoing = False

    def _fault(self, reason: str) -> None:
        if self.sm.state == DriverState.FAULT:
            # The program stopping is often seen one cycle before the safety bits that caused it;
            # report the root cause once it shows.
            if reason in ("protective stop", "emergency stop") and reason not in self.sm.reason:
                self.sm.reason = f"{reason} ({self.sm.reason})"
                self._event(f"FAULT cause: {reason}")
            return
        self._safe_stop()
        self._fault_time = time.monotonic()
        self.sm.fault(reason)
        self._event(f"FAULT: {reason}; motion refused until `recover` succeeds")

    def _lost_connection(self, reason: str) -> None:
        self._servoing = False
        io, self._io = self._io, None
        self.sm.disconnected(reason)
        self._event(f"DISCONNECTED: {reason}; will reconnect up to {self.cfg.reconnect_attempts} times")
        self._reconnect_budget = self.cfg.reconnect_attempts
        self._next_attempt = time.monotonic() + self.cfg.reconnect_backoff_s
        self._last_ts = None
        if self.supervised:
            self.link_lost = True
            self._keep_alive = io  # never destroyed here: ur_rtde teardown races its own reconnect
            self._reconnect_budget = 0
        self._publish_state(None)
        if self.supervised:
            if self.on_link_lost is not None:
                # ur_rtde reconnects by itself in its background threads and can deliver a last set point
                # over the new session: the process that holds those threads goes now, not when the
                # supervisor gets round to killing it.
                self.on_link_lost()
            return
        if io is not None:
            # ur_rtde's teardown of a broken link can block for seconds (its own reconnect loop);
            # do it off the control thread and only reconnect once it is done (or timed out).
            self._teardown = threading.Thread(target=io.close, name="rtde_teardown", daemon=True)
            self._teardown.start()
            self._teardown_deadline = time.monotonic() + 5.0

    def _try_connect(self) -> None:
        if self._reconnect_budget <= 0 or time.monotonic() < self._next_attempt:
            return
        if self._teardown is not None and self._teardown.is_alive() and time.monotonic() < self._teardown_deadline:
            return
        self._teardown = None
        self._reconnect_budget -= 1
        try:
            io = self._connector()
        except RobotConnectionError as exc:
            self.last_error = str(exc)
            left = self._reconnect_budget
            self._event(f"connect to {self.cfg.robot_ip} failed: {exc}"
                        + (f"; {left} attempts left" if left else "; giving up, call `recover` to retry"))
            self.sm.disconnected(f"connect failed: {exc}")
            if self.supervised:
                self.link_lost = True
            self._next_attempt = time.monotonic() + self.cfg.reconnect_backoff_s
            return
        try:
            io.control.setTcp([0.0] * 6)  # servoL poses are tool0 poses; kinematics lives here
        except Exception as exc:
            io.close()
            self.last_error = f"setTcp failed: {exc!r}"
            self.sm.disconnected(self.last_error)
            self.link_lost = self.supervised
            return
        self._io = io
        self._last_ts = None
        self._last_ts_change = time.monotonic()
        self.last_error = ""
        self.sm.connected()
        self._event(f"connected to {self.cfg.robot_ip}; DISABLED until `enable`")

    def _handle_requests(self) -> None:
        while True:
            try:
                name, done, box = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                box.append(getattr(self, f"_do_{name}")())
            except Exception as exc:
                box.append((False, f"{name} failed: {exc!r}"))
            done.set()

    def _do_enable(self) -> tuple[bool, str]:
        if self._io is None:
            return False, f"not connected to {self.cfg.robot_ip}: {self.sm.reason}"
        if self.sm.state == DriverState.FAULT:
            return False, f"in FAULT ({self.sm.reason}); call recover first"
        if not self._io.control.isProgramRunning():
            if not self._io.control.reuploadScript() or not self._io.control.isProgramRunning():
                return False, "control script is not running on the controller"
        with self._lock:
            self._goal, self._goal_t = None, None  # targets sent before enable are never executed
        ok, msg = self.sm.enable()
        if ok:
            self._event("ENABLED")
        return ok, msg

    def _do_stop(self) -> tuple[bool, str]:
        self._safe_stop()
        with self._lock:
            self._goal, self._goal_t = None, None
        self.sm.disable("stopped by request")
        return True, f"stopped; state {self.sm.state.value}"

    def _do_recover(self) -> tuple[bool, str]:
        if self.sm.state == DriverState.DISCONNECTED:
            self._reconnect_budget = self.cfg.reconnect_attempts
            self._next_attempt = 0.0
            return True, f"reconnecting to {self.cfg.robot_ip} ({self.cfg.reconnect_attempts} attempts)"
        if self.sm.state != DriverState.FAULT:
            return True, f"nothing to recover (state {self.sm.state.value})"
        io = self._io
        r = io.receive
        bits = int(r.getSafetyStatusBits())
        if bits & SAFETY_BITS_EMERGENCY:
            return False, "emergency stop still engaged: release the e-stop button first"
        if bits & SAFETY_BIT_PROTECTIVE_STOPPED:
            reply = io.dashboard.unlock_protective_stop()
            if "releasing" not in reply.lower():
                return False, f"controller refused to unlock the protective stop: {reply}"
            if not self._wait(lambda: not (int(r.getSafetyStatusBits()) & SAFETY_BIT_PROTECTIVE_STOPPED), 3.0):
                return False, "protective stop did not clear after unlocking"
        io.dashboard.close_safety_popup()
        if int(r.getRobotMode()) != ROBOT_MODE_RUNNING:
            if not self.cfg.recover_power_on:
                return False, "arm is not powered/brakes engaged; power it on from the pendant"
            io.dashboard.power_on()
            io.dashboard.brake_release()
            if not self._wait(lambda: int(r.getRobotMode()) == ROBOT_MODE_RUNNING, 10.0):
                return False, "arm did not reach RUNNING after power on + brake release"
        if not io.control.isProgramRunning():
            if not io.control.reuploadScript() or not self._wait(io.control.isProgramRunning, 3.0):
                return False, "could not restart the control script"
        self.sm.recovered()
        self._event("recovered; DISABLED until `enable`")
        return True, "recovered; call enable to move"

    @staticmethod
    def _wait(pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.01)
        return bool(pred())

    def _publish_state(self, s: dict | None) -> None:
        with self._lock:
            base = {
                "driver_state": self.sm.state.value,
                "reason": self.sm.reason,
                "connected": self._io is not None,
                "holding": self._holding_reason,
                "servoing": self._servoing,
                "last_error": self.last_error,
                "link_lost": self.link_lost,
                "loop_count": self.loop_count,
                "stamp": time.monotonic(),
            }
            if s is None:
                keep = {k: v for k, v in self._state.items() if k in ("q", "tip", "pitch")}
                self._state = {**keep, **base}
            else:
                self._state = {**s, **base}


_SCHED_LOGGED: set = set()  # each refusal is logged once per process, not once per loop or reconnect


def apply_thread_scheduling(rt_priority: int = 0, cpus=()) -> dict:
    """SCHED_FIFO at ``rt_priority`` and/or a CPU mask for the calling thread, where permitted.

    Call from the thread itself (Linux applies both per thread). Never raises: a refusal (no
    CAP_SYS_NICE / RLIMIT_RTPRIO, a CPU that is not there, a platform without these calls) is logged
    once at info level and the thread keeps the normal scheduler. Returns what was applied.
    """
    out: dict = {"rt_priority": 0, "cpus": None, "refused": []}

    def refused(what: str, exc: BaseException) -> None:
        out["refused"].append(f"{what}: {exc}")
        if what not in _SCHED_LOGGED:
            _SCHED_LOGGED.add(what)
            LOG.info("control loop: %s not applied (%s); running without it", what, exc)

    if cpus:
        try:
            os.sched_setaffinity(0, {int(c) for c in cpus})
            out["cpus"] = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError, ValueError) as exc:  # PermissionError is an OSError
            refused(f"cpu_affinity {sorted(int(c) for c in cpus)}", exc)
    if rt_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(rt_priority)))
            out["rt_priority"] = int(rt_priority)
        except (AttributeError, OSError, ValueError) as exc:
            refused(f"SCHED_FIFO priority {int(rt_priority)}", exc)
    return out


class LoopPacer:
    """Waits for the next deadline of a fixed-rate loop (``period_s``), in one of ``PACING_CHOICES``.

    Deadlines are absolute (next = previous + period), so one late cycle does not shift the ones
    after it; after an overrun of more than ``resync_s`` the schedule restarts from now instead of
    bursting to catch up. "sleep" time.sleeps to the deadline; "hybrid" sleeps until ``spin_s``
    before it (the sleep's wake-up lateness), then spins on the clock; "ur_rtde" hands the same
    absolute deadline to ``control.waitPeriod`` (clock_nanosleep + spin in C++, GIL released). Its
    ``waitPeriod(t_start)`` waits until t_start + the period, so t_start is this deadline minus one
    period (ur_rtde's own ``initPeriod()`` per cycle would add the loop's own overhead to every period:
    measured 2.02-2.07 ms instead of 2.000). Without a control interface, or if ur_rtde fails,
    "ur_rtde" falls back to "hybrid". ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, period_s: float, mode: str = "hybrid", spin_s: float = 0.0004, resync_s: float = 0.05,
                 clock=time.perf_counter, sleep=time.sleep):
        if mode not in PACING_CHOICES:
            raise ValueError(f"pacing must be one of {', '.join(PACING_CHOICES)}, got {mode!r}")
        self.period, self.mode, self.resync_s = float(period_s), mode, float(resync_s)
        self.spin_s = float(spin_s) if mode == "hybrid" else 0.0
        self._clock, self._sleep = clock, sleep
        self.next_t = clock()
        self._control = None
        self._ur_offset = None  # ur_rtde steady_clock time point (a timedelta) minus ``clock()``
        self.overruns = 0  # deadlines already past when the cycle ended

    def wait(self, control=None) -> None:
        """Wait until this cycle's deadline (the previous deadline + one period)."""
        self.next_t += self.period
        now = self._clock()
        if self.next_t - now < -self.resync_s:
            self.overruns += 1
            self.next_t = now  # overran badly: resync instead of bursting
            return
        if self.next_t <= now:
            self.overruns += 1
            return
        if self.mode == "ur_rtde" and control is not None:
            try:
                if control is not self._control or self._ur_offset is None:
                    c0 = self._clock()
                    ur_now = control.initPeriod()
                    self._ur_offset = ur_now - datetime.timedelta(seconds=0.5 * (c0 + self._clock()))
                    self._control = control
                control.waitPeriod(self._ur_offset + datetime.timedelta(seconds=self.next_t - self.period))
                return
            except Exception as exc:
                LOG.info("control loop: ur_rtde initPeriod/waitPeriod failed (%r); pacing falls back to hybrid", exc)
                self.mode, self.spin_s, self._control, self._ur_offset = "hybrid", 0.0004, None, None
        if self.next_t - now > self.spin_s:
            self._sleep(self.next_t - now - self.spin_s)
        while self._clock() < self.next_t:  # at most spin_s (plus any wake-up lateness)
            pass

    def idle(self, seconds: float) -> None:
        """Wait ``seconds`` (disconnected: no fixed rate) and restart the schedule from there."""
        self._sleep(seconds)
        self.next_t = self._clock()


def flange_limited_setpoint(previous: np.ndarray, setpoint: np.ndarray, max_flange_step_m: float,
                            geom: BucketGeometry = DEFAULT_BUCKET) -> np.ndarray:
    """``setpoint`` (tip xyz, pitch), or a point on the way to it, so the flange (tool0) moves at
    most ``max_flange_step_m`` from ``previous``.

    Why: the limiter bounds the tip's speed and the pitch rate separately; a pitch change swings the
    flange around the tip, so the flange alone could exceed the linear speed limit (measured
    0.376 m/s against 0.25). Returns ``setpoint`` itself when it is within the limit.
    """
    p0 = kin.tray_tool0_from_bucket(previous[:3], float(previous[3]), geom)[:3, 3]
    p1 = kin.tray_tool0_from_bucket(setpoint[:3], float(setpoint[3]), geom)[:3, 3]
    d = float(np.linalg.norm(p1 - p0))
    if d <= max_flange_step_m:
        return setpoint
    # The flange path is nearly straight over one 2 ms step: shrink the step, then check again.
    k = max_flange_step_m / d
    for _ in range(4):
        out = previous + (setpoint - previous) * k
        p = kin.tray_tool0_from_bucket(out[:3], float(out[3]), geom)[:3, 3]
        if float(np.linalg.norm(p - p0)) <= max_flange_step_m * (1 + 1e-9):
            return out
        k *= 0.95
    return previous.copy()


def loop_jitter_stats(cycle_starts, rate_hz: float) -> dict:
    """Mean period and jitter figures (ms) from cycle start times (s)."""
    t = np.asarray(cycle_starts, dtype=float)
    if len(t) < 3:
        return {}
    periods = np.diff(t)
    jitter = np.abs(periods - 1.0 / rate_hz)
    return {
        "cycles": int(len(periods)),
        "period_mean_ms": float(periods.mean() * 1e3),
        "period_jitter_mean_ms": float(jitter.mean() * 1e3),
        "period_jitter_p99_ms": float(np.percentile(jitter, 99) * 1e3),
        "period_jitter_max_ms": float(jitter.max() * 1e3),
        "rate_hz_measured": float(1.0 / periods.mean()),
    }

