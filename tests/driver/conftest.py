"""Shared setup for the driver tests: loopback-only ROS, the package on sys.path."""

import os
import random
import sys

PKG = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "ros2_ws", "src", "excavation"))
if PKG not in sys.path:
    sys.path.insert(0, PKG)
os.environ["PYTHONPATH"] = PKG + os.pathsep + os.environ.get("PYTHONPATH", "")
# One random domain per session, nothing leaves the machine.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if os.environ.get("VIRTUAL_ENV") and not os.environ.get("AMENT_PREFIX_PATH"):
    os.environ["AMENT_PREFIX_PATH"] = os.environ["VIRTUAL_ENV"]

T_BASE_TRAY = [[-1.0, 0.0, 0.0, -0.50], [0.0, -1.0, 0.0, -0.13], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
