"""ROS 2 nodes of the excavation package (one executable each; see setup.py)."""
