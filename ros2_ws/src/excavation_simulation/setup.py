"""ament_python package `excavation_simulation`: the simulated cell (as the UR driver keeps its simulation apart).

Nodes sim_world (Newton physics + depth rendering), sim_camera, sim_robot (the driver interface on the
simulated arm), episode_runner, and the optional Rerun view (``view``, needs rerun-sdk); the ROS graph (`graph.py`) that `launch/sim.launch.py` and the pip
launcher `launch_stack` both start. Depends on the robot package `excavation` and the simulator
distribution `excavation-sim` (pip). setup.cfg puts the executables into `lib/excavation_simulation`.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "excavation_simulation"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml"))),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="excavation maintainers",
    description="The simulated excavation cell: Newton world, simulated depth camera and UR5e, episode runner, sim launch.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_world = excavation_simulation.sim_world:main",
            "sim_camera = excavation_simulation.sim_camera:main",
            "sim_robot = excavation_simulation.sim_robot:main",
            "episode_runner = excavation_simulation.episode_runner:main",
            "launch_stack = excavation_simulation.launcher:main",
            "view = excavation_simulation.view_node:main",
        ],
    },
)
