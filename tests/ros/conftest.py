"""ROS test session setup: loopback only, a random ROS_DOMAIN_ID, the package importable, test bundles."""

import os
import random
import sys

import pytest

from shared_helpers import spinning_probe, wait_for  # noqa: F401  (ros tests import wait_for from here)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PKG = os.path.join(REPO, "ros2_ws", "src", "excavation")
SIM_PKG = os.path.join(REPO, "ros2_ws", "src", "excavation_simulation")
for p in (PKG, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ["PYTHONPATH"] = os.pathsep.join([PKG, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
# One random domain per session, so parallel suites on this machine never see each other's nodes.
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(20, 200))
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("PYTHONUNBUFFERED", "1")
if os.environ.get("VIRTUAL_ENV") and not os.environ.get("AMENT_PREFIX_PATH"):
    os.environ["AMENT_PREFIX_PATH"] = os.environ["VIRTUAL_ENV"]

CONFIG = os.path.join(SIM_PKG, "config", "sim.yaml")


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory):
    from make_test_bundle import write_bundle

    return str(write_bundle(tmp_path_factory.mktemp("bundle") / "scoop"))


@pytest.fixture
def ros():
    """An rclpy context with one probe node spinning in a background thread."""
    with spinning_probe() as node:
        yield node


@pytest.fixture
def procs():
    """Start processes in their own process group; whatever is left at the end is killed (group-wide)."""
    import signal
    import subprocess

    started = []

    def spawn(cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True, env=dict(os.environ), **kw)
        started.append(p)
        return p

    yield spawn
    for p in started:
        for sig in (signal.SIGINT, signal.SIGKILL):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, sig)
                    p.wait(timeout=8)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group too: nothing may outlive a test
        except (ProcessLookupError, PermissionError):
            pass


def node_cmd(module, *params, params_file=CONFIG):
    cmd = [sys.executable, "-m", module, "--ros-args"]
    if params_file:
        cmd += ["--params-file", params_file]
    for p in params:
        cmd += ["-p", p]
    return cmd


