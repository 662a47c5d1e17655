"""Guarded connection to a UR controller: never hand a silent peer to ur_rtde.

ur_rtde's constructors block, holding the Python GIL, until the controller answers; against a peer
that accepts TCP but never answers the whole process freezes (no thread, timer or executor runs).
So before constructing anything we talk to the controller ourselves over plain sockets with
timeouts: the RTDE handshake (protocol version + controller version on 30004) and the dashboard
greeting (29999). Only a controller that answered both within the timeout is handed to ur_rtde.

The remaining window (a controller that dies between the probe and the end of construction) is
covered by a hard deadline: ``faulthandler`` runs its timer in a C thread that needs no GIL, so if
construction overruns it prints the stack and exits the process with a clear message instead of
hanging forever; the launch file's respawn policy then restarts the driver.
"""

from __future__ import annotations

import faulthandler
import socket
import struct
import sys
import time
from dataclasses import dataclass

RTDE_PORT = 30004
DASHBOARD_PORT = 29999


class RobotConnectionError(RuntimeError):
    """The controller could not be reached or did not answer in time (message says which)."""


def _recv_exact(sock: socket.socket, n: int, deadline: float, what: str) -> bytes:
    buf = b""
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RobotConnectionError(f"{what}: no answer within the timeout (silent peer?)")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            raise RobotConnectionError(f"{what}: no answer within the timeout (silent peer?)") from None
        except OSError as exc:
            raise RobotConnectionError(f"{what}: {exc}") from None
        if not chunk:
            raise RobotConnectionError(f"{what}: connection closed by the peer")
        buf += chunk
    return buf


def _open(host: str, port: int, timeout: float, what: str) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise RobotConnectionError(f"{what}: TCP connect to {host}:{port} timed out after {timeout:.1f} s") from None
    except OSError as exc:
        raise RobotConnectionError(f"{what}: cannot connect to {host}:{port}: {exc}") from None


def probe_rtde(host: str, timeout: float, port: int = RTDE_PORT) -> tuple[int, int, int, int]:
    """RTDE handshake with a deadline; returns the controller version (major, minor, bugfix, build)."""
    what = f"RTDE handshake with {host}:{port}"
    deadline = time.monotonic() + timeout
    sock = _open(host, port, timeout, what)
    try:
        sock.sendall(struct.pack(">HBH", 5, 86, 2))  # request protocol version 2
        size, ptype = struct.unpack(">HB", _recv_exact(sock, 3, deadline, what))
        body = _recv_exact(sock, size - 3, deadline, what)
        if ptype != 86 or not body or body[0] != 1:
            raise RobotConnectionError(f"{what}: controller refused RTDE protocol version 2")
        sock.sendall(struct.pack(">HB", 3, 118))  # get URControl version
        size, ptype = struct.unpack(">HB", _recv_exact(sock, 3, deadline, what))
        body = _recv_exact(sock, size - 3, deadline, what)
        if ptype != 118 or len(body) < 16:
            raise RobotConnectionError(f"{what}: unexpected reply to the version request")
        return struct.unpack(">IIII", body[:16])
    finally:
        sock.close()


def probe_dashboard(host: str, timeout: float, port: int = DASHBOARD_PORT) -> str:
    """Read the dashboard server's greeting line with a deadline."""
    what = f"dashboard server {host}:{port}"
    deadline = time.monotonic() + timeout
    sock = _open(host, port, timeout, what)
    try:
        line = b""
        while not line.endswith(b"\n"):
            line += _recv_exact(sock, 1, deadline, what)
        return line.decode(errors="replace").strip()
    finally:
        sock.close()


class DashboardConnection:
    """Minimal dashboard client (text lines, every call with a timeout).

    Only the fixed commands the driver needs are exposed; there is no way to send arbitrary text
    from outside the driver (no URScript, no program loading).
    """

    def __init__(self, host: str, timeout: float, port: int = DASHBOARD_PORT):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def _ensure(self) -> None:
        if self._sock is None:
            self._sock = _open(self.host, self.port, self.timeout, "dashboard")
            self._buf = b""
            self._readline()  # greeting

    def _readline(self) -> str:
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            self._buf += _recv_exact(self._sock, 1, deadline, "dashboard")
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def _command(self, text: str) -> str:
        try:
            self._ensure()
            self._sock.sendall((text + "\n").encode())
            return self._readline()
        except (OSError, RobotConnectionError):
            self.close()
            raise

    def unlock_protective_stop(self) -> str:
        return self._command("unlock protective stop")

    def close_safety_popup(self) -> str:
        return self._command("close safety popup")

    def power_on(self) -> str:
        return self._command("power on")

    def brake_release(self) -> str:
        return self._command("brake release")

    def robot_mode(self) -> str:
        return self._command("robotmode")

    def safety_status(self) -> str:
        return self._command("safetystatus")

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None


@dataclass
class RtdeInterfaces:
    control: object  # rtde_control.RTDEControlInterface
    receive: object  # rtde_receive.RTDEReceiveInterface
    dashboard: DashboardConnection
    controller_version: tuple[int, int, int, int]

    def close(self) -> None:
        # Receive first: tearing the control interface down while its own reconnect loop runs can
        # block for a long time; by then the receive side is already released.
        for obj in (self.receive, self.control):
            try:
                obj.disconnect()
            except Exception:  # already gone; nothing else to release
                pass
        self.dashboard.close()


def connect(host: str, frequency: float, timeout: float, hard_deadline: float | None = None) -> RtdeInterfaces:
    """Probe, then construct ur_rtde's receive and control interfaces.

    Raises ``RobotConnectionError`` (silent/absent peer, refused handshake) within about
    ``timeout`` seconds per probe. Construction itself is bounded by ``hard_deadline`` seconds
    (default 10 x timeout, at least 10 s), after which the process exits with a clear message.
    """
    version = probe_rtde(host, timeout)
    greeting = probe_dashboard(host, timeout)
    if "Universal Robots Dashboard" not in greeting:
        raise RobotConnectionError(f"{host}:{DASHBOARD_PORT} is not a UR dashboard server (greeting {greeting!r})")
    import rtde_control  # deferred: ur_rtde is only needed on the robot side
    import rtde_receive

    limit = hard_deadline if hard_deadline is not None else max(10.0, 10.0 * timeout)
    print(f"ur5e_driver: controller {host} answered (version {'.'.join(map(str, version))}); constructing "
          f"ur_rtde interfaces (process exits if this takes more than {limit:.0f} s)", file=sys.stderr, flush=True)
    faulthandler.dump_traceback_later(limit, exit=True)
    try:
        try:
            receive = rtde_receive.RTDEReceiveInterface(host, frequency)
        except RuntimeError as exc:
            raise RobotConnectionError(f"RTDE receive interface to {host}: {exc}") from None
        try:
            control = rtde_control.RTDEControlInterface(host, frequency)
        except RuntimeError as exc:
            try:
                receive.disconnect()
            except Exception:
                pass
            raise RobotConnectionError(f"RTDE control interface to {host}: {exc}") from None
    finally:
        faulthandler.cancel_dump_traceback_later()
    return RtdeInterfaces(control, receive, DashboardConnection(host, timeout), version)
