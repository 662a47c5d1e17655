"""excavation_simulation: the simulated cell (Newton world, simulated camera and arm, episode runner) and its ROS graph."""
