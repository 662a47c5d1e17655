"""Start the emulator in a child process and drive its fault-injection port (tests, benchmark)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from excavation.drivers.rtde_emulator.server import free_loopback_host

CONTROL_PORT = 30010


class EmulatorProcess:
    """``with EmulatorProcess() as emu: ...`` -> emulator on its own 127.x.y.z address.

    ``emu.host`` is what a client passes as ``robot_ip``; ``emu.call(op, value)`` injects faults.
    """

    def __init__(self, host: str | None = None, extra_args: list[str] | None = None, env: dict | None = None):
        self.host = host or free_loopback_host(ports=(30004, 29999, 30003, CONTROL_PORT))
        self.extra_args = extra_args or []
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._sock = None
        self._file = None

    def start(self, timeout: float = 20.0) -> "EmulatorProcess":
        env = dict(os.environ if self.env is None else self.env)
        pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "excavation.drivers.rtde_emulator.cli", "--host", self.host,
               "--control-port", str(CONTROL_PORT), *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY") or self.proc.poll() is not None:
                break
        if not line.startswith("READY"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"emulator did not start on {self.host}: {line!r} {err}")
        self._sock = socket.create_connection((self.host, CONTROL_PORT), timeout=5.0)
        self._file = self._sock.makefile("rwb")
        return self

    def call(self, op: str, value=None):
        req = {"op": op}
        if value is not None:
            req["value"] = value
        self._file.write((json.dumps(req) + "\n").encode())
        self._file.flush()
        reply = json.loads(self._file.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"emulator op {op} failed: {reply.get('error')}")
        return reply.get("result")

    def snapshot(self) -> dict:
        return self.call("snapshot")

    def stop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
