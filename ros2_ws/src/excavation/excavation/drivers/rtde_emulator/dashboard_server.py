"""The dashboard interface (port 29999): one text command a line, one reply a line.

Only the commands ``ur_rtde`` and the driver send are emulated; the replies are the controller's own
text, since clients match on it.
"""

from __future__ import annotations

import logging
import socket
import time

from excavation.drivers.rtde_emulator.network import Network, close_socket, hold_silently
from excavation.drivers.rtde_emulator.robot_model import RobotModel
from excavation.drivers.ur_constants import ROBOT_MODE_NAMES, SAFETY_MODE_NAMES

LOG = logging.getLogger("rtde_emulator")


class DashboardServer:
    def __init__(self, model: RobotModel, network: Network):
        self.model = model
        self.network = network
        self.log: list[str] = []  # every command received, for tests

    def serve(self, sock: socket.socket, addr) -> None:
        net = self.network
        try:
            if net.silent:
                hold_silently(sock, net.stopping)
                return
            self._send_text(sock, "Connected: Universal Robots Dashboard Server")
            buf = b""
            while not net.stopping.is_set():
                data = sock.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    cmd = line.decode(errors="replace").strip()
                    if net.silent:
                        continue
                    reply = self.command(cmd)
                    self._send_text(sock, reply)
                    if cmd == "quit":
                        return
        except OSError:
            return
        finally:
            close_socket(sock)

    def _send_text(self, sock: socket.socket, text: str) -> None:
        if self.network.latency_s:
            time.sleep(self.network.latency_s)
        sock.sendall((text + "\n").encode())

    def command(self, cmd: str) -> str:
        """The controller's reply to one dashboard command, after carrying it out."""
        self.log.append(cmd)
        c = cmd.lower()
        m = self.model
        major, minor, bugfix, build = m.cfg.controller_version
        with m.lock:
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
                return "Robotmode: " + ROBOT_MODE_NAMES.get(m.robot_mode, "RUNNING")
            if c in ("safetystatus", "safetymode"):
                name = SAFETY_MODE_NAMES.get(m.safety_mode, "NORMAL")
                return ("Safetystatus: " if c == "safetystatus" else "Safetymode: ") + name
            if c == "programstate":
                return "PLAYING rtde_control" if m.program_running else "STOPPED rtde_control"
            if c == "running":
                return f"Program running: {str(m.program_running).lower()}"
            if c == "unlock protective stop":
                if not m.unlock_protective_stop_locked():
                    return (
                        "Cannot unlock protective stop until 5s after occurrence. "
                        "Always inspect cause of protective stop before unlocking"
                    )
                return "Protective stop releasing"
            if c == "close safety popup":
                return "closing safety popup"
            if c == "close popup":
                return "closing popup"
            if c == "stop":
                m.halt_program_locked()
                return "Stopped"
            if c == "power on":
                m.power_on_locked()
                return "Powering on"
            if c == "power off":
                m.power_off_locked()
                return "Powering off"
            if c == "brake release":
                m.brake_release_locked()
                return "Brake releasing"
            if c == "quit":
                return "Disconnected"
        LOG.warning("dashboard command not emulated: %r", cmd)
        return f"could not understand: '{cmd}'"
