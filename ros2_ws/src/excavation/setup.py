"""ament_python package `excavation`.

Installs with colcon in a ROS 2 Jazzy workspace, and with pip into a plain venv that has the ROS 2
Jazzy PyPI wheels (CI). `launch/real.launch.py` is installed into `share/excavation/launch`;
setup.cfg puts the executables into `lib/excavation`, where `ros2 run` and launch_ros look.
"""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "excavation"
HERE = os.path.dirname(os.path.abspath(__file__))
# The shipped default policy bundle, so launch files find it in share/excavation/policies/default.
POLICY_DIR = os.path.relpath(os.path.join(HERE, "..", "..", "..", "policies", "default"), HERE)

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml") + glob("config/*.xml"))),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/policies/default", sorted(glob(os.path.join(POLICY_DIR, "policy.*")))),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="excavation maintainers",
    description="Rock excavation with a UR5e and a bucket, the robot side: perception, policy, UR5e RTDE driver with safety and its emulator.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # Nodes (one executable each, as `ros2 run excavation <name>`).
            "ur5e_driver = excavation.nodes.ur5e_driver:main",
            "perception = excavation.nodes.perception_node:main",
            "policy = excavation.nodes.policy_node:main",
            # Tools.
            "rtde_emulator = excavation.drivers.rtde_emulator.cli:main",
            "calibrate_tray = excavation.perception.calibrate_cli:main",
            "recorder = excavation.recorder:main",
        ],
    },
)
