"""ROS 2 package `excavation`: perception, policy inference and UR5e drivers (real and simulated)."""

__version__ = "0.1.0"
