"""The emulated controller: the model and its control script behind three TCP servers, a 500 Hz
control cycle, and the fault-injection hooks tests and the benchmarks drive.

Threads: one accept loop per port, one reader and one writer per RTDE client, one reader per
dashboard/script client, and the control cycle. Everything shared sits behind the model's lock.
"""

from __future__ import annotations

import random
import socket
import time

from excavation.drivers.rtde_emulator.config import PROTECTIVE_STOP_UNLOCK_DELAY_S, EmulatorConfig
from excavation.drivers.rtde_emulator.control_script import ControlScript
from excavation.drivers.rtde_emulator.dashboard_server import DashboardServer
from excavation.drivers.rtde_emulator.network import Network, close_socket
from excavation.drivers.rtde_emulator.network import is_loopback as _is_loopback
from excavation.drivers.rtde_emulator.robot_model import RobotModel
from excavation.drivers.rtde_emulator.rtde_server import RtdeServer
from excavation.drivers.rtde_emulator.script_server import ScriptServer

__all__ = ["EmulatorConfig", "PROTECTIVE_STOP_UNLOCK_DELAY_S", "UREmulator", "free_loopback_host"]


class UREmulator:
    """Emulated UR5e e-series controller. ``start()`` binds the ports; ``stop()`` closes them."""

    def __init__(self, config: EmulatorConfig | None = None):
        self.cfg = config or EmulatorConfig()
        if not self.cfg.allow_remote_hosts and not _is_loopback(self.cfg.host):
            raise ValueError(f"emulator host {self.cfg.host!r} is not a loopback address")
        self.model = RobotModel(self.cfg)
        self.script = ControlScript(self.model)
        self.network = Network(self.cfg.host, self.model.lock)
        self.rtde = RtdeServer(self.model, self.network)
        self.dashboard = DashboardServer(self.model, self.network)
        self.script_server = ScriptServer(self.model, self.script, self.network)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "UREmulator":
        try:
            self.network.listen(self.cfg.rtde_port, self.rtde.serve)
            self.network.listen(self.cfg.dashboard_port, self.dashboard.serve)
            self.network.listen(self.cfg.script_port, self.script_server.serve)
        except OSError:
            self.stop()
            raise
        self.network.spawn(self._cycle_loop)
        return self

    def stop(self) -> None:
        self.network.stop_listening()
        self.drop_connections()
        self.network.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _cycle_loop(self) -> None:
        model, net = self.model, self.network
        next_t = time.perf_counter()
        while not net.stopping.is_set():
            next_t += model.dt
            # Step and sample in one critical section: each package shows the state of one cycle.
            with model.lock:
                self.script.step_locked()
                model.step_locked()
                values = self.rtde.output_values_locked()
                clients = self.rtde.clients_locked()
            if not net.silent:
                self.rtde.publish(clients, values)
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:
                next_t = time.perf_counter()  # fell far behind (loaded machine): resync, no burst

    # ---------------------------------------------------------------- fault injection

    def protective_stop(self) -> None:
        self.model.protective_stop()

    def emergency_stop(self) -> None:
        self.model.emergency_stop()

    def release_emergency_stop(self) -> None:
        self.model.release_emergency_stop()

    def stop_program(self) -> None:
        self.model.stop_program()

    def set_unlock_delay(self, seconds: float) -> None:
        self.model.set_unlock_delay(seconds)

    def set_tcp_force(self, wrench) -> None:
        self.model.set_tcp_force(wrench)

    def drop_connections(self) -> None:
        """Close every client socket on all three ports (network loss / controller reboot)."""
        with self.model.lock:  # as a reboot would: no cycle or new client sees the drop half done
            sockets = self.network.detach_clients()
            rtde_clients = self.rtde.detach_clients()
            self.model.clear_motion_targets_locked()
        RtdeServer.close_clients(rtde_clients)
        for s in sockets:
            close_socket(s)

    def set_silent(self, silent: bool) -> None:
        """A silent peer accepts TCP connections but never answers or streams."""
        self.network.silent = bool(silent)

    def set_script_stalled(self, stalled: bool) -> None:
        """A stalled control script keeps the RTDE stream alive but never signals "ready" again:
        ur_rtde's servoL / servoStop then block waiting for it (a hung or overloaded controller)."""
        self.script.stalled = bool(stalled)

    def set_latency(self, seconds: float) -> None:
        """Delay every reply and data package by ``seconds``."""
        self.network.latency_s = max(0.0, float(seconds))

    # ---------------------------------------------------------------- what tests read

    def snapshot(self) -> dict:
        return self.model.snapshot()

    @property
    def silent(self) -> bool:
        return self.network.silent

    @property
    def script_stalled(self) -> bool:
        return self.script.stalled

    @property
    def latency_s(self) -> float:
        return self.network.latency_s

    @property
    def command_counts(self):
        return self.script.command_counts

    @property
    def servo_log(self):
        return self.script.servo_log

    @property
    def setpoint_log(self):
        return self.script.setpoint_log

    @property
    def ik_failures(self) -> int:
        return self.script.ik_failures

    @property
    def servo_setpoints(self) -> int:
        return self.script.servo_setpoints

    @property
    def script_uploads(self) -> int:
        return self.script_server.uploads

    @property
    def rtde_connections(self) -> int:
        return self.rtde.connections

    @property
    def dashboard_log(self) -> list[str]:
        return self.dashboard.log


def free_loopback_host(ports=(30004, 29999, 30003), attempts: int = 50) -> str:
    """A 127.x.y.z address whose emulator ports are free, so parallel tests do not collide.

    ur_rtde hard-codes the controller's ports (30004, 29999, 30003), but any 127/8 address is
    loopback on Linux, so each emulator gets its own address instead of its own ports.
    """
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
