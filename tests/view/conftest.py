"""View test setup: loopback-only ROS on this session's domain; helpers live in view_helpers.py (a
module of its own name: two test folders' conftest modules would shadow each other)."""

import os
import random
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
# A given ROS_DOMAIN_ID is kept (parallel suites pick their own); else a random one.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(20, 200)))
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("PYTHONUNBUFFERED", "1")
if os.environ.get("VIRTUAL_ENV") and not os.environ.get("AMENT_PREFIX_PATH"):
    os.environ["AMENT_PREFIX_PATH"] = os.environ["VIRTUAL_ENV"]



def pytest_collection_modifyitems(config, items):
    import importlib.util

    if importlib.util.find_spec("rerun") is not None:
        return
    skip = pytest.mark.skip(reason="the view's tests need the optional rerun-sdk (requirements.txt pins it)")
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(skip)
