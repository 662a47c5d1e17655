"""The script interface (secondary client, port 30003): receives URScript programs and starts
ur_rtde's control script when the controller would.

A program counts as received once a ``def`` has its closing ``end`` line; it may arrive in any
number of TCP segments.
"""

from __future__ import annotations

import logging
import re
import socket
import time

from excavation.drivers.rtde_emulator.control_script import ControlScript
from excavation.drivers.rtde_emulator.network import Network, close_socket
from excavation.drivers.rtde_emulator.robot_model import RobotModel

LOG = logging.getLogger("rtde_emulator")

_SCRIPT_END = re.compile(r"^end\s*$", re.MULTILINE)


class ScriptServer:
    def __init__(self, model: RobotModel, script: ControlScript, network: Network):
        self.model = model
        self.script = script
        self.network = network
        self.uploads = 0

    def serve(self, sock: socket.socket, addr) -> None:
        buf = ""
        try:
            while not self.network.stopping.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                if self.network.silent:
                    continue
                buf += data.decode(errors="replace")
                start = buf.find("def ")
                if start >= 0 and _SCRIPT_END.search(buf, start):
                    self._run(buf[start:])
                    buf = ""
        except OSError:
            return
        finally:
            close_socket(sock)

    def _run(self, program: str) -> None:
        """Start the uploaded program, if the controller would (powered, no safety stop)."""
        time.sleep(self.model.cfg.script_start_delay_s)
        m = self.model
        with m.lock:
            self.uploads += 1
            if not m.arm_ready_locked():
                LOG.warning("script not started: robot mode %s, safety mode %s", m.robot_mode, m.safety_mode)
                return
            if "rtde_control" not in program:
                LOG.info("ignoring a script that is not ur_rtde's control script")
                return
            self.script.start_locked()
