"""The 3D and depth view of the simulated cell, on Rerun: the web viewer it is served by, and (re-exported
from the simulator's ``excavation_sim.scene_view``, their one home) what each thing is called and how it
is logged.

The entity names and logging helpers live in the simulator because ``excavation-sim picture --rrd`` and
``excavation-train train --view`` write the same scene under the same names, and the simulator cannot
import this ROS package. Everything lives in the tray frame (metres, z up), so perception's estimates,
the simulator's truth and the depth image (placed by the camera's calibrated pose) overlay in one 3D
view. Timelines: ``sim_time`` (seconds of simulated time, the stamp of the message that carried the
data) and ``episode`` (the episode count, for the per-episode scalars).

Rerun is optional: only ``excavation_sim.scene_view`` imports it, when a recording is opened; nothing
imports this module but the view itself (``launch_stack --view``, ``bench/view_bench.py``, tests/view).
The web viewer runs as the Rerun CLI's own server process bound to loopback: the SDK's built-in
web server listens on every interface.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
import urllib.parse

from excavation_sim.scene_view import (  # noqa: F401  (this module's public names since before the move)
    APPLICATION_ID,
    BUCKET_COLOR,
    ENTITIES,
    EPISODE_TIMELINE,
    LOOPBACK,
    PATH_POINTS,
    PERCEPTION_COLOR,
    ROCK_COLOR,
    SOIL_COLOR,
    TARGET_COLOR,
    TIMELINE,
    View,
    open_view,
)

WEB_PORT = 9090
GRPC_PORT = 9876


# ---------------------------------------------------------------------- the web server
def viewer_url(web_port: int, grpc_port: int, host: str = LOOPBACK) -> str:
    proxy = f"rerun+http://{host}:{grpc_port}/proxy"
    return f"http://{host}:{web_port}/?url={urllib.parse.quote(proxy, safe='')}"


def rerun_executable() -> str:
    spec = importlib.util.find_spec("rerun_cli")
    path = os.path.join(os.path.dirname(spec.origin), "rerun") if spec and spec.origin else ""
    if not os.path.isfile(path):
        raise FileNotFoundError("the Rerun CLI of rerun-sdk is missing (pip install rerun-sdk)")
    return path


class WebViewer:
    """The Rerun web viewer and its gRPC proxy, served on loopback by the Rerun CLI in its own process group."""

    def __init__(self, web_port: int = WEB_PORT, grpc_port: int = GRPC_PORT, memory_limit: str = "1GiB", paths=()):
        """``paths``: recordings (.rrd) and blueprints (.rbl) the server holds for the page from the start."""
        self.web_port, self.grpc_port = int(web_port), int(grpc_port)
        for port in (self.web_port, self.grpc_port):
            if _listening(port):
                raise OSError(f"port {port} on {LOOPBACK} is already in use (another viewer?); pick another")
        cmd = [rerun_executable(), "--serve-web", "--bind", LOOPBACK, "--port", str(self.grpc_port),
               "--web-viewer-port", str(self.web_port), "--server-memory-limit", memory_limit, *map(str, paths)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.url = viewer_url(self.web_port, self.grpc_port)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (_listening(self.web_port) and _listening(self.grpc_port)):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")[-1500:]
                raise RuntimeError(f"the Rerun web viewer exited with {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the Rerun web viewer did not listen on {self.web_port}/{self.grpc_port} in {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        import signal

        for sig, wait in ((signal.SIGINT, 3.0), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, int(port))) == 0
