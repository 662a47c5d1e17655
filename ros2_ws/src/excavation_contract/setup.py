"""ament_python package `excavation_contract`: the contract at the bottom of the house.

Pure Python (numpy; torch to load a bundle): colcon builds it in a ROS 2 workspace, and pip installs it
into a plain venv, where the simulator and the trainer use it without ROS.
"""

from setuptools import find_packages, setup

PACKAGE = "excavation_contract"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools", "numpy"],
    zip_safe=False,
    maintainer="excavation maintainers",
    description="The excavation contract: observation/action layout, frames, limits, ROS names, policy bundle format.",
    license="Apache-2.0",
)
