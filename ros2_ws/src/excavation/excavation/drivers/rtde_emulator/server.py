"""The emulated controller: three TCP servers, a 500 Hz control cycle and fault injection.

Threads: one accept loop per port, one reader and one writer per RTDE client, one reader per
dashboard/script client, and the control cycle. Everything shared sits behind ``self._lock``; the
cycle thread never writes to sockets (writers do, from per-client queues), so a slow or silent
client cannot stall the emulated robot.
"""

from __future__ import annotations

import collections
import logging
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_emulator import protocol as P

LOG = logging.getLogger("rtde_emulator")

# Robot / safety enumerations as the controller reports them: one home, shared with the driver.
from excavation.drivers.ur_constants import (  # noqa: E402,F401
    ROBOT_MODE_POWER_OFF,
    ROBOT_MODE_IDLE,
    ROBOT_MODE_RUNNING,
    ROBOT_MODE_NAMES,
    SAFETY_MODE_NORMAL,
    SAFETY_MODE_PROTECTIVE_STOP,
    SAFETY_MODE_ROBOT_EMERGENCY_STOP,
    SAFETY_MODE_NAMES,
    SAFETY_BIT_NORMAL,
    SAFETY_BIT_PROTECTIVE_STOPPED,
    SAFETY_BIT_SYSTEM_EMERGENCY_STOPPED,
    SAFETY_BIT_ROBOT_EMERGENCY_STOPPED,
    SAFETY_BIT_EMERGENCY_STOPPED,
    SAFETY_BIT_STOPPED_DUE_TO_SAFETY,
    ROBOT_STATUS_POWER_ON,
    ROBOT_STATUS_PROGRAM_RUNNING,
    RUNTIME_STOPPED,
    RUNTIME_PLAYING,
)
PROTECTIVE_STOP_UNLOCK_DELAY_S = 5.0  # controller rule: no unlock within 5 s of the stop

# ur_rtde control-script command numbers (RTDE::RobotCommand::Type) the emulator interprets.
CMD_NONE = 0
CMD_SPEEDJ = 9
CMD_SPEEDL = 10
CMD_SERVOJ = 11
CMD_SPEED_STOP = 15
CMD_SERVO_STOP = 16
CMD_SERVOL = 24
CMD_SET_TCP = 29
CMD_PROTECTIVE_STOP = 31
CMD_STOPL = 33
CMD_STOPJ = 34
CMD_STOP_SCRIPT = 255
# Commands the script handles "in real time": processed every cycle, then signals ready (1)
# without the done (2) / clear (0) round trip. Same list as ur_rtde's control script.
REALTIME_CMDS = {24, 11, 9, 10, 6, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71}
SCRIPT_READY = 1
SCRIPT_DONE = 2

_SCRIPT_END = re.compile(r"^end\s*$", re.MULTILINE)


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    rtde_port: int = 30004
    dashboard_port: int = 29999
    script_port: int = 30003
    rate_hz: float = 500.0  # e-series control cycle
    controller_version: tuple[int, int, int, int] = (5, 15, 0, 0)
    initial_q: tuple[float, ...] = (0.0, -1.67, 2.0, -1.9, -1.571, -1.578)
    # Fraction of the UR5e max joint speeds the emulated servo may use.
    joint_speed_scale: float = 1.0
    script_start_delay_s: float = 0.02
    protective_stop_unlock_delay_s: float = PROTECTIVE_STOP_UNLOCK_DELAY_S
    allow_remote_hosts: bool = False  # loopback only unless explicitly allowed


@dataclass
class _RtdeClient:
    sock: socket.socket
    addr: tuple
    outputs: dict = field(default_factory=dict)  # id -> (names, struct, decimation)
    inputs: dict = field(default_factory=dict)  # id -> (names, types, struct)
    started: bool = False
    tick: int = 0
    queue: collections.deque = field(default_factory=collections.deque)
    cv: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False


class UREmulator:
    """Emulated UR5e e-series controller. ``start()`` binds the ports; ``stop()`` closes them."""

    def __init__(self, config: EmulatorConfig | None = None):
        self.cfg = config or EmulatorConfig()
        if not self.cfg.allow_remote_hosts and not _is_loopback(self.cfg.host):
            raise ValueError(f"emulator host {self.cfg.host!r} is not a loopback address")
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[socket.socket] = []
        self._clients: list[socket.socket] = []
        self._rtde_clients: list[_RtdeClient] = []
        self.silent = False
        self.script_stalled = False
        self.latency_s = 0.0
        self.dt = 1.0 / self.cfg.rate_hz
        self._t0 = time.monotonic()
        # Robot state.
        self.q = np.array(self.cfg.initial_q, dtype=float)
        self.qd = np.zeros(6)
        self.servo_q: np.ndarray | None = None
        self.speed_l: np.ndarray | None = None
        self.tcp_offset = np.zeros(6)
        self.tcp_force = np.zeros(6)
        self.robot_mode = ROBOT_MODE_RUNNING
        self.safety_mode = SAFETY_MODE_NORMAL
        self.safety_bits = SAFETY_BIT_NORMAL
        self.program_running = False
        self.executing_cmd = False
        self.protective_stop_time: float | None = None
        self.in_int = [0] * 48
        self.in_double = [0.0] * 48
        self.in_bits = 0
        self.out_int = [0] * 48
        self.out_double = [0.0] * 48
        self.speed_slider = 1.0
        # Counters and logs for tests and the benchmark.
        self.cycle = 0
        self.command_counts: collections.Counter = collections.Counter()
        self.servo_log: collections.deque = collections.deque(maxlen=20000)  # (t_rx, pose)
        self.script_uploads = 0
        self.rtde_connections = 0
        self.dashboard_log: list[str] = []
        self.ik_failures = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "UREmulator":
        try:
            for port, handler in (
                (self.cfg.rtde_port, self._serve_rtde),
                (self.cfg.dashboard_port, self._serve_dashboard),
                (self.cfg.script_port, self._serve_script),
            ):
                srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                srv.bind((self.cfg.host, port))
                srv.listen(8)
                srv.settimeout(0.2)
                self._listeners.append(srv)
                self._spawn(self._accept_loop, srv, handler)
        except OSError:
            self.stop()
            raise
        self._spawn(self._cycle_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for s in self._listeners:
            _close(s)
        self.drop_connections()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
        self._threads.clear()
        self._listeners.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _spawn(self, fn, *args) -> threading.Thread:
        t = threading.Thread(target=fn, args=args, daemon=True, name=f"emu-{fn.__name__}")
        t.start()
        self._threads.append(t)
        return t

    # ---------------------------------------------------------------- fault injection

    def protective_stop(self) -> None:
        """What the controller does on a protective stop: halt, stop the program, flag it."""
        with self._lock:
            self.safety_mode = SAFETY_MODE_PROTECTIVE_STOP
            self.safety_bits = SAFETY_BIT_PROTECTIVE_STOPPED | SAFETY_BIT_STOPPED_DUE_TO_SAFETY
            self.protective_stop_time = time.monotonic()
            self._halt_program_locked()

    def emergency_stop(self) -> None:
        """Robot e-stop pressed: halt, stop program, power off the arm."""
        with self._lock:
            self.safety_mode = SAFETY_MODE_ROBOT_EMERGENCY_STOP
            self.safety_bits = (
                SAFETY_BIT_ROBOT_EMERGENCY_STOPPED | SAFETY_BIT_EMERGENCY_STOPPED | SAFETY_BIT_STOPPED_DUE_TO_SAFETY
            )
            self.robot_mode = ROBOT_MODE_POWER_OFF
            self._halt_program_locked()

    def release_emergency_stop(self) -> None:
        """The e-stop button is released; the arm stays powered off until power on + brake release."""
        with self._lock:
            if self.safety_mode == SAFETY_MODE_ROBOT_EMERGENCY_STOP:
                self.safety_mode = SAFETY_MODE_NORMAL
                self.safety_bits = SAFETY_BIT_NORMAL

    def drop_connections(self) -> None:
        """Close every client socket on all three ports (network loss / controller reboot)."""
        with self._lock:
            clients, self._clients = self._clients, []
            rtde, self._rtde_clients = self._rtde_clients, []
            self.servo_q = None
            self.speed_l = None
        for c in rtde:
            with c.cv:
                c.closed = True
                c.cv.notify_all()
        for s in clients:
            _close(s)

    def set_silent(self, silent: bool) -> None:
        """A silent peer accepts TCP connections but never answers or streams."""
        self.silent = bool(silent)

    def set_script_stalled(self, stalled: bool) -> None:
        """A stalled control script keeps the RTDE stream alive but never signals "ready" again:
        ur_rtde's servoL / servoStop then block waiting for it (a hung or overloaded controller)."""
        self.script_stalled = bool(stalled)

    def stop_program(self) -> None:
        """The program stops on the controller (stop pressed on the pendant, a script error) while the
        arm stays powered and the safety system is normal."""
        with self._lock:
            self._halt_program_locked()

    def set_unlock_delay(self, seconds: float) -> None:
        """How long after a protective stop the dashboard refuses to unlock it (tests set a long delay
        to check the refusal, then 0 to allow the unlock, instead of racing a short one)."""
        with self._lock:
            self.cfg.protective_stop_unlock_delay_s = max(0.0, float(seconds))

    def set_latency(self, seconds: float) -> None:
        """Delay every reply and data package by ``seconds``."""
        self.latency_s = max(0.0, float(seconds))

    def set_tcp_force(self, wrench) -> None:
        with self._lock:
            self.tcp_force = np.asarray(wrench, dtype=float).copy()

    # ---------------------------------------------------------------- state helpers

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "q": self.q.copy(),
                "qd": self.qd.copy(),
                "tcp_pose": self._tcp_pose_locked(),
                "program_running": self.program_running,
                "safety_mode": self.safety_mode,
                "robot_mode": self.robot_mode,
                "servoing": self.servo_q is not None,
                "cycle": self.cycle,
            }

    def _tcp_pose_locked(self, q=None) -> np.ndarray:
        T = kin.fk(self.q if q is None else q) @ kin.pose_to_matrix(self.tcp_offset)
        return kin.matrix_to_pose(T)

    def _halt_program_locked(self) -> None:
        self.program_running = False
        self.executing_cmd = False
        self.servo_q = None
        self.speed_l = None
        self.qd = np.zeros(6)
        self.out_int[0] = 0

    def _motion_allowed_locked(self) -> bool:
        return (
            self.program_running
            and self.robot_mode == ROBOT_MODE_RUNNING
            and self.safety_mode == SAFETY_MODE_NORMAL
        )

    def _robot_status_bits_locked(self) -> int:
        bits = 0
        if self.robot_mode != ROBOT_MODE_POWER_OFF:
            bits |= ROBOT_STATUS_POWER_ON
        if self.program_running:
            bits |= ROBOT_STATUS_PROGRAM_RUNNING
        return bits

    # ---------------------------------------------------------------- control cycle

    def _cycle_loop(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            next_t += self.dt
            with self._lock:
                self._interpret_script_locked()
                self._integrate_locked()
                self.cycle += 1
                values = self._output_values_locked()
                clients = list(self._rtde_clients)
            if not self.silent:
                self._publish(clients, values)
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:
                next_t = time.perf_counter()  # fell far behind (loaded machine): resync, no burst

    def _interpret_script_locked(self) -> None:
        """One iteration of ur_rtde's control-script main loop."""
        if not self.program_running:
            return
        if self.script_stalled:
            self.out_int[0] = 0  # busy, never ready
            return
        cmd = self.in_int[0]
        if cmd in REALTIME_CMDS:
            self._process_cmd_locked(cmd)
            self.out_int[0] = SCRIPT_READY
        elif cmd == CMD_NONE:
            self.executing_cmd = False
            self.out_int[0] = SCRIPT_READY
        elif not self.executing_cmd:
            keep = self._process_cmd_locked(cmd)
            self.executing_cmd = True
            if keep and self.program_running:
                self.out_int[0] = SCRIPT_DONE

    def _process_cmd_locked(self, cmd: int) -> bool:
        self.command_counts[cmd] += 1
        d = self.in_double
        if cmd == CMD_SERVOL:
            pose = np.array(d[0:6])
            self.servo_log.append((time.perf_counter(), pose.copy()))
            T_tool0 = kin.pose_to_matrix(pose) @ kin.invert_transform(kin.pose_to_matrix(self.tcp_offset))
            seed = self.servo_q if self.servo_q is not None else self.q
            if self._last_servo_pose is not None and np.array_equal(pose, self._last_servo_pose):
                return True
            q = kin.ik(T_tool0, seed)
            if q is None:
                self.ik_failures += 1
                return True
            self._last_servo_pose = pose
            self.servo_setpoints += 1  # a new set point, not the script repeating the last one
            self.servo_q = q
            self.speed_l = None
        elif cmd == CMD_SERVOJ:
            self.servo_q = np.array(d[0:6])
            self.speed_l = None
        elif cmd == CMD_SPEEDL:
            self.speed_l = np.array(d[0:6])
            self.servo_q = None
        elif cmd in (CMD_SERVO_STOP, CMD_STOPL, CMD_STOPJ, CMD_SPEED_STOP):
            self.servo_q = None
            self.speed_l = None
            self._last_servo_pose = None
        elif cmd == CMD_SET_TCP:
            self.tcp_offset = np.array(d[0:6])
        elif cmd == CMD_PROTECTIVE_STOP:
            self._lock.release()
            try:
                self.protective_stop()
            finally:
                self._lock.acquire()
        elif cmd == CMD_STOP_SCRIPT:
            self._halt_program_locked()
            return False
        return True

    _last_servo_pose: np.ndarray | None = None
    servo_setpoints = 0

    def _integrate_locked(self) -> None:
        if not self._motion_allowed_locked():
            self.qd = np.zeros(6)
            return
        vmax = kin.JOINT_SPEED_MAX * self.cfg.joint_speed_scale * self.speed_slider
        if self.servo_q is not None:
            step = np.clip(self.servo_q - self.q, -vmax * self.dt, vmax * self.dt)
        elif self.speed_l is not None:
            J = kin.jacobian(self.q)
            step = np.clip(np.linalg.lstsq(J, self.speed_l, rcond=None)[0] * self.dt, -vmax * self.dt, vmax * self.dt)
        else:
            step = np.zeros(6)
        self.q = self.q + step
        self.qd = step / self.dt

    def _output_values_locked(self) -> dict:
        tcp = self._tcp_pose_locked()
        T = kin.fk(self.q)
        J = kin.jacobian(self.q)
        tcp_speed = J @ self.qd
        target_q = self.servo_q if self.servo_q is not None else self.q
        return {
            "timestamp": time.monotonic() - self._t0,
            "target_q": target_q,
            "target_qd": self.qd,
            "target_qdd": np.zeros(6),
            "target_current": np.zeros(6),
            "target_moment": np.zeros(6),
            "actual_q": self.q,
            "actual_qd": self.qd,
            "actual_current": np.zeros(6),
            "actual_current_window": np.zeros(6),
            "joint_control_output": np.zeros(6),
            "actual_TCP_pose": tcp,
            "actual_TCP_speed": tcp_speed,
            "actual_TCP_force": self.tcp_force,
            "ft_raw_wrench": self.tcp_force,
            "target_TCP_pose": self._tcp_pose_locked(target_q),
            "target_TCP_speed": tcp_speed,
            "joint_temperatures": np.full(6, 30.0),
            "actual_execution_time": 0.2,
            "robot_mode": self.robot_mode,
            "joint_mode": [253 if self.robot_mode == ROBOT_MODE_RUNNING else 236] * 6,
            "safety_mode": self.safety_mode,
            "safety_status": self.safety_mode,
            "actual_tool_accelerometer": T[:3, :3].T @ np.array([0.0, 0.0, -9.81]),
            "speed_scaling": self.speed_slider,
            "target_speed_fraction": self.speed_slider,
            "actual_main_voltage": 48.0,
            "actual_robot_voltage": 48.0 if self.robot_mode != ROBOT_MODE_POWER_OFF else 0.0,
            "actual_joint_voltage": np.full(6, 48.0),
            "runtime_state": RUNTIME_PLAYING if self.program_running else RUNTIME_STOPPED,
            "elbow_position": kin.fk_all(self.q)[2][:3, 3],
            "robot_status_bits": self._robot_status_bits_locked(),
            "safety_status_bits": self.safety_bits,
            "input_bit_registers0_to_31": self.in_bits & 0xFFFFFFFF,
            "input_bit_registers32_to_63": (self.in_bits >> 32) & 0xFFFFFFFF,
            "payload": 1.0,
            "payload_cog": np.zeros(3),
            "payload_inertia": np.zeros(6),
            "tool_temperature": 30.0,
            "_out_int": list(self.out_int),
            "_out_double": list(self.out_double),
            "_in_int": list(self.in_int),
            "_in_double": list(self.in_double),
        }

    # ---------------------------------------------------------------- RTDE

    def _publish(self, clients: list[_RtdeClient], values: dict) -> None:
        due = time.monotonic() + self.latency_s
        for c in clients:
            if not c.started or c.closed:
                continue
            c.tick += 1
            for rid, (names, st, decim) in c.outputs.items():
                if c.tick % decim:
                    continue
                try:
                    payload = bytes([rid]) + st.pack(*P.flatten(_field(values, n) for n in names))
                except struct.error as exc:  # a recipe we cannot fill is a bug in the table
                    LOG.error("cannot pack output recipe %s: %s", names, exc)
                    continue
                self._enqueue(c, P.pack(P.RTDE_DATA_PACKAGE, payload), due)

    def _enqueue(self, c: _RtdeClient, data: bytes, due: float) -> None:
        with c.cv:
            if len(c.queue) > 2000:  # client not reading: drop oldest rather than grow forever
                c.queue.popleft()
            c.queue.append((due, data))
            c.cv.notify()

    def _writer(self, c: _RtdeClient) -> None:
        while not self._stop.is_set():
            with c.cv:
                while not c.queue and not c.closed and not self._stop.is_set():
                    c.cv.wait(0.2)
                if c.closed or self._stop.is_set():
                    return
                due, data = c.queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                c.sock.sendall(data)
            except OSError:
                return

    def _reply(self, c: _RtdeClient, ptype: int, payload: bytes) -> None:
        self._enqueue(c, P.pack(ptype, payload), time.monotonic() + self.latency_s)

    def _serve_rtde(self, sock: socket.socket, addr) -> None:
        c = _RtdeClient(sock=sock, addr=addr)
        with self._lock:
            self._rtde_clients.append(c)
            self.rtde_connections += 1
        self._spawn(self._writer, c)
        try:
            while not self._stop.is_set() and not c.closed:
                header = _recv_exact(sock, P.HEADER.size)
                if header is None:
                    return
                size, ptype = P.HEADER.unpack(header)
                payload = _recv_exact(sock, size - P.HEADER.size) if size > P.HEADER.size else b""
                if payload is None:
                    return
                if self.silent:
                    continue
                self._handle_rtde(c, ptype, payload)
        finally:
            with c.cv:
                c.closed = True
                c.cv.notify_all()
            with self._lock:
                if c in self._rtde_clients:
                    self._rtde_clients.remove(c)
            _close(sock)

    def _handle_rtde(self, c: _RtdeClient, ptype: int, payload: bytes) -> None:
        if ptype == P.RTDE_REQUEST_PROTOCOL_VERSION:
            (version,) = struct.unpack(">H", payload[:2])
            self._reply(c, ptype, bytes([1 if version in (1, 2) else 0]))
        elif ptype == P.RTDE_GET_URCONTROL_VERSION:
            self._reply(c, ptype, struct.pack(">IIII", *self.cfg.controller_version))
        elif ptype == P.RTDE_CONTROL_PACKAGE_SETUP_OUTPUTS:
            (freq,) = struct.unpack(">d", payload[:8])
            # ur_rtde leaves a trailing comma; the controller ignores empty names.
            names = [n for n in payload[8:].decode().split(",") if n]
            types = [P.output_type(n) for n in names]
            rid = len(c.outputs) + 1
            LOG.info("output recipe %d at %.0f Hz: %s", rid, freq, ",".join(names))
            if "NOT_FOUND" not in types and 0 < freq <= self.cfg.rate_hz:
                decim = max(1, int(round(self.cfg.rate_hz / freq)))
                c.outputs[rid] = (names, P.recipe_struct(types), decim)
            else:
                LOG.warning("output recipe refused: freq=%s unknown=%s", freq,
                            [n for n, t in zip(names, types) if t == "NOT_FOUND"])
                rid = 0
            self._reply(c, ptype, bytes([rid]) + ",".join(types).encode())
        elif ptype == P.RTDE_CONTROL_PACKAGE_SETUP_INPUTS:
            names = [n for n in payload.decode().split(",") if n]
            types = [P.input_type(n) for n in names]
            rid = len(c.inputs) + 1
            LOG.info("input recipe %d: %s", rid, ",".join(names))
            if "NOT_FOUND" not in types:
                c.inputs[rid] = (names, types, P.recipe_struct(types))
            else:
                LOG.warning("input recipe refused: unknown=%s", [n for n, t in zip(names, types) if t == "NOT_FOUND"])
                rid = 0
            self._reply(c, ptype, bytes([rid]) + ",".join(types).encode())
        elif ptype == P.RTDE_CONTROL_PACKAGE_START:
            c.started = True
            self._reply(c, ptype, b"\x01")
        elif ptype == P.RTDE_CONTROL_PACKAGE_PAUSE:
            c.started = False
            self._reply(c, ptype, b"\x01")
        elif ptype == P.RTDE_DATA_PACKAGE:
            rid = payload[0]
            recipe = c.inputs.get(rid)
            if recipe is None:
                return
            names, types, st = recipe
            flat = list(st.unpack(payload[1 : 1 + st.size]))
            with self._lock:
                for name, value in zip(names, flat):
                    self._set_input_locked(name, value)
        elif ptype == P.RTDE_TEXT_MESSAGE:
            pass

    def _set_input_locked(self, name: str, value) -> None:
        reg = P.register(name)
        if reg is not None:
            _, kind, idx = reg
            if kind == "int":
                self.in_int[idx] = int(value)
            elif kind == "double":
                self.in_double[idx] = float(value)
            else:
                self.in_bits = (self.in_bits & ~(1 << idx)) | (int(bool(value)) << idx)
        elif name == "speed_slider_fraction":
            self.speed_slider = min(1.0, max(0.0, float(value)))

    # ---------------------------------------------------------------- dashboard

    def _serve_dashboard(self, sock: socket.socket, addr) -> None:
        try:
            if self.silent:
                _hold_silently(sock, self._stop)
                return
            self._send_text(sock, "Connected: Universal Robots Dashboard Server")
            buf = b""
            while not self._stop.is_set():
                data = sock.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    cmd = line.decode(errors="replace").strip()
                    if self.silent:
                        continue
                    reply = self._dashboard_command(cmd)
                    self._send_text(sock, reply)
                    if cmd == "quit":
                        return
        except OSError:
            return
        finally:
            _close(sock)

    def _send_text(self, sock: socket.socket, text: str) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)
        sock.sendall((text + "\n").encode())

    def _dashboard_command(self, cmd: str) -> str:
        self.dashboard_log.append(cmd)
        c = cmd.lower()
        major, minor, bugfix, build = self.cfg.controller_version
        with self._lock:
            if c == "polyscopeversion":
                return f"URSoftware {major}.{minor}.{bugfix}.{build} (Jan 01 2024)"
            if c == "version":
                return f"{major}.{minor}.{bugfix}.{build}"
            if c == "get serial number":
                return "20235500001"
            if c == "get robot model":
                return "UR5"
            if c == "get loaded program":
                return "Loaded program: rtde_control.urp"
            if c == "is in remote control":
                return "true"
            if c == "robotmode":
                return "Robotmode: " + ROBOT_MODE_NAMES.get(self.robot_mode, "RUNNING")
            if c in ("safetystatus", "safetymode"):
                name = SAFETY_MODE_NAMES.get(self.safety_mode, "NORMAL")
                return ("Safetystatus: " if c == "safetystatus" else "Safetymode: ") + name
            if c == "programstate":
                return "PLAYING rtde_control" if self.program_running else "STOPPED rtde_control"
            if c == "running":
                return f"Program running: {str(self.program_running).lower()}"
            if c == "unlock protective stop":
                if self.safety_mode != SAFETY_MODE_PROTECTIVE_STOP:
                    return "Protective stop releasing"
                waited = time.monotonic() - (self.protective_stop_time or 0.0)
                if waited < self.cfg.protective_stop_unlock_delay_s:
                    return (
                        "Cannot unlock protective stop until 5s after occurrence. "
                        "Always inspect cause of protective stop before unlocking"
                    )
                self.safety_mode = SAFETY_MODE_NORMAL
                self.safety_bits = SAFETY_BIT_NORMAL
                self.protective_stop_time = None
                return "Protective stop releasing"
            if c == "close safety popup":
                return "closing safety popup"
            if c == "close popup":
                return "closing popup"
            if c == "stop":
                self._halt_program_locked()
                return "Stopped"
            if c == "power on":
                if self.safety_mode == SAFETY_MODE_ROBOT_EMERGENCY_STOP:
                    return "Powering on"  # the controller answers, then stays off while e-stopped
                if self.robot_mode == ROBOT_MODE_POWER_OFF:
                    self.robot_mode = ROBOT_MODE_IDLE
                return "Powering on"
            if c == "power off":
                self.robot_mode = ROBOT_MODE_POWER_OFF
                self._halt_program_locked()
                return "Powering off"
            if c == "brake release":
                if self.robot_mode == ROBOT_MODE_IDLE and self.safety_mode == SAFETY_MODE_NORMAL:
                    self.robot_mode = ROBOT_MODE_RUNNING
                return "Brake releasing"
            if c == "quit":
                return "Disconnected"
        LOG.warning("dashboard command not emulated: %r", cmd)
        return f"could not understand: '{cmd}'"

    # ---------------------------------------------------------------- script port

    def _serve_script(self, sock: socket.socket, addr) -> None:
        buf = ""
        try:
            while not self._stop.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                if self.silent:
                    continue
                buf += data.decode(errors="replace")
                start = buf.find("def ")
                if start >= 0 and _SCRIPT_END.search(buf, start):
                    self._run_script(buf[start:])
                    buf = ""
        except OSError:
            return
        finally:
            _close(sock)

    def _run_script(self, script: str) -> None:
        """Start the uploaded program, if the controller would (powered, no safety stop)."""
        time.sleep(self.cfg.script_start_delay_s)
        with self._lock:
            self.script_uploads += 1
            if self.robot_mode != ROBOT_MODE_RUNNING or self.safety_mode != SAFETY_MODE_NORMAL:
                LOG.warning("script not started: robot mode %s, safety mode %s", self.robot_mode, self.safety_mode)
                return
            if "rtde_control" not in script:
                LOG.info("ignoring a script that is not ur_rtde's control script")
                return
            self.program_running = True
            self.executing_cmd = False
            self.servo_q = None
            self.speed_l = None
            self._last_servo_pose = None
            self.out_int[0] = SCRIPT_READY

    # ---------------------------------------------------------------- sockets

    def _accept_loop(self, srv: socket.socket, handler) -> None:
        while not self._stop.is_set():
            try:
                sock, addr = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(sock)
            self._spawn(handler, sock, addr)


def _field(values: dict, name: str):
    if name in values:
        return values[name]
    reg = P.register(name)
    if reg is not None:
        direction, kind, idx = reg
        if kind == "bit":
            return False
        table = values[f"_{'out' if direction == 'output' else 'in'}_{kind}"]
        return table[idx]
    if P.OUTPUT_TYPES.get(name, "").startswith("VECTOR6"):
        return [0] * 6
    if P.OUTPUT_TYPES.get(name) == "VECTOR3D":
        return [0.0] * 3
    return 0


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def _hold_silently(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            if not sock.recv(4096):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


def free_loopback_host(ports=(30004, 29999, 30003), attempts: int = 50) -> str:
    """A 127.x.y.z address whose emulator ports are free, so parallel tests do not collide.

    ur_rtde hard-codes the controller's ports (30004, 29999, 30003), but any 127/8 address is
    loopback on Linux, so each emulator gets its own address instead of its own ports.
    """
    import random

    for _ in range(attempts):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        socks = []
        try:
            for port in ports:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
                socks.append(s)
            return host
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free loopback address for the RTDE emulator")

