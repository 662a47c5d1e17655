"""The RTDE interface (port 30004): recipes, start/pause, input packages into the model's registers,
and output packages sampled from the model after every control cycle.

Each client has a reader thread and a writer thread fed from a queue. The control cycle only
enqueues, never writes to a socket, so a slow or silent client cannot stall the emulated robot.
"""

from __future__ import annotations

import collections
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from excavation.drivers import ur5e_kinematics as kin
from excavation.drivers.rtde_emulator import protocol as P
from excavation.drivers.rtde_emulator.network import Network, close_socket, enable_rx_timestamps, recv_exact_stamped
from excavation.drivers.rtde_emulator.robot_model import RobotModel
from excavation.drivers.ur_constants import (
    ROBOT_MODE_POWER_OFF,
    ROBOT_MODE_RUNNING,
    RUNTIME_PLAYING,
    RUNTIME_STOPPED,
)

LOG = logging.getLogger("rtde_emulator")

MAX_QUEUED_PACKAGES = 2000


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


class RtdeServer:
    def __init__(self, model: RobotModel, network: Network):
        self.model = model
        self.network = network
        self._clients: list[_RtdeClient] = []
        self.connections = 0

    # ---------------------------------------------------------------- clients

    def serve(self, sock: socket.socket, addr) -> None:
        c = _RtdeClient(sock=sock, addr=addr)
        with self.model.lock:
            self._clients.append(c)
            self.connections += 1
        self.network.spawn(self._writer, c)
        enable_rx_timestamps(sock)
        try:
            while not self.network.stopping.is_set() and not c.closed:
                header, stamp = recv_exact_stamped(sock, P.HEADER.size)
                if header is None:
                    return
                size, ptype = P.HEADER.unpack(header)
                if size > P.HEADER.size:
                    payload, stamp = recv_exact_stamped(sock, size - P.HEADER.size)
                else:
                    payload = b""
                if payload is None:
                    return
                if self.network.silent:
                    continue
                self._handle(c, ptype, payload, stamp)
        finally:
            _mark_closed(c)
            with self.model.lock:
                if c in self._clients:
                    self._clients.remove(c)
            close_socket(sock)

    def clients_locked(self) -> list[_RtdeClient]:
        return list(self._clients)

    def detach_clients(self) -> list[_RtdeClient]:
        with self.model.lock:
            clients, self._clients = self._clients, []
        return clients

    @staticmethod
    def close_clients(clients: list[_RtdeClient]) -> None:
        """Wake each client's writer to exit; closing the socket (the network's) ends the reader."""
        for c in clients:
            _mark_closed(c)

    # ---------------------------------------------------------------- client -> controller

    def _handle(self, c: _RtdeClient, ptype: int, payload: bytes, arrived: float | None = None) -> None:
        cfg = self.model.cfg
        if ptype == P.RTDE_REQUEST_PROTOCOL_VERSION:
            (version,) = struct.unpack(">H", payload[:2])
            self._reply(c, ptype, bytes([1 if version in (1, 2) else 0]))
        elif ptype == P.RTDE_GET_URCONTROL_VERSION:
            self._reply(c, ptype, struct.pack(">IIII", *cfg.controller_version))
        elif ptype == P.RTDE_CONTROL_PACKAGE_SETUP_OUTPUTS:
            (freq,) = struct.unpack(">d", payload[:8])
            # ur_rtde leaves a trailing comma; the controller ignores empty names.
            names = [n for n in payload[8:].decode().split(",") if n]
            types = [P.output_type(n) for n in names]
            rid = len(c.outputs) + 1
            LOG.info("output recipe %d at %.0f Hz: %s", rid, freq, ",".join(names))
            if "NOT_FOUND" not in types and 0 < freq <= cfg.rate_hz:
                decim = max(1, int(round(cfg.rate_hz / freq)))
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
            with self.model.lock:  # one package is one atomic write, as the script sees it
                for name, value in zip(names, flat):
                    self._set_input_locked(name, value)
                self.model.in_written_at = time.monotonic()
                # when the package reached this machine's kernel (its sender's send time on loopback)
                self.model.in_arrived_at = arrived if arrived is not None else self.model.in_written_at
        elif ptype == P.RTDE_TEXT_MESSAGE:
            pass

    def _set_input_locked(self, name: str, value) -> None:
        m = self.model
        reg = P.register(name)
        if reg is not None:
            _, kind, idx = reg
            if kind == "int":
                m.in_int[idx] = int(value)
            elif kind == "double":
                m.in_double[idx] = float(value)
            else:
                m.in_bits = (m.in_bits & ~(1 << idx)) | (int(bool(value)) << idx)
        elif name == "speed_slider_fraction":
            m.speed_slider = min(1.0, max(0.0, float(value)))

    # ---------------------------------------------------------------- controller -> client

    def output_values_locked(self) -> dict:
        """Every output field the emulator fills, from the model as it is after this cycle."""
        m = self.model
        tcp = m.tcp_pose_locked()
        T = kin.fk(m.q)
        J = kin.jacobian(m.q)
        tcp_speed = J @ m.qd
        target_q = m.servo_q if m.servo_q is not None else m.q
        return {
            "timestamp": m.uptime_s(),
            "target_q": target_q,
            "target_qd": m.qd,
            "target_qdd": np.zeros(6),
            "target_current": np.zeros(6),
            "target_moment": np.zeros(6),
            "actual_q": m.q,
            "actual_qd": m.qd,
            "actual_current": np.zeros(6),
            "actual_current_window": np.zeros(6),
            "joint_control_output": np.zeros(6),
            "actual_TCP_pose": tcp,
            "actual_TCP_speed": tcp_speed,
            "actual_TCP_force": m.tcp_force,
            "ft_raw_wrench": m.tcp_force,
            "target_TCP_pose": m.tcp_pose_locked(target_q),
            "target_TCP_speed": tcp_speed,
            "joint_temperatures": np.full(6, 30.0),
            "actual_execution_time": 0.2,
            "robot_mode": m.robot_mode,
            "joint_mode": [253 if m.robot_mode == ROBOT_MODE_RUNNING else 236] * 6,
            "safety_mode": m.safety_mode,
            "safety_status": m.safety_mode,
            "actual_tool_accelerometer": T[:3, :3].T @ np.array([0.0, 0.0, -9.81]),
            "speed_scaling": m.speed_slider,
            "target_speed_fraction": m.speed_slider,
            "actual_main_voltage": 48.0,
            "actual_robot_voltage": 48.0 if m.robot_mode != ROBOT_MODE_POWER_OFF else 0.0,
            "actual_joint_voltage": np.full(6, 48.0),
            "runtime_state": RUNTIME_PLAYING if m.program_running else RUNTIME_STOPPED,
            "elbow_position": kin.fk_all(m.q)[2][:3, 3],
            "robot_status_bits": m.robot_status_bits_locked(),
            "safety_status_bits": m.safety_bits,
            "input_bit_registers0_to_31": m.in_bits & 0xFFFFFFFF,
            "input_bit_registers32_to_63": (m.in_bits >> 32) & 0xFFFFFFFF,
            "payload": 1.0,
            "payload_cog": np.zeros(3),
            "payload_inertia": np.zeros(6),
            "tool_temperature": 30.0,
            # Copies: publishing runs after the lock is released, and the register lists change in place.
            "_out_int": list(m.out_int),
            "_out_double": list(m.out_double),
            "_in_int": list(m.in_int),
            "_in_double": list(m.in_double),
        }

    def publish(self, clients: list[_RtdeClient], values: dict) -> None:
        """Queue a data package for each started recipe whose decimation falls on this cycle."""
        due = time.monotonic() + self.network.latency_s
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

    def _reply(self, c: _RtdeClient, ptype: int, payload: bytes) -> None:
        self._enqueue(c, P.pack(ptype, payload), time.monotonic() + self.network.latency_s)

    def _enqueue(self, c: _RtdeClient, data: bytes, due: float) -> None:
        with c.cv:
            if len(c.queue) > MAX_QUEUED_PACKAGES:  # client not reading: drop oldest rather than grow forever
                c.queue.popleft()
            c.queue.append((due, data))
            c.cv.notify()

    def _writer(self, c: _RtdeClient) -> None:
        stopping = self.network.stopping
        while not stopping.is_set():
            with c.cv:
                while not c.queue and not c.closed and not stopping.is_set():
                    c.cv.wait(0.2)
                if c.closed or stopping.is_set():
                    return
                due, data = c.queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                c.sock.sendall(data)
            except OSError:
                return


def _mark_closed(c: _RtdeClient) -> None:
    with c.cv:
        c.closed = True
        c.cv.notify_all()


def _field(values: dict, name: str):
    """A field's value, or the zero of its type for the fields the emulator leaves unmodelled."""
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
