"""Sim-only topics and services between sim_world, sim_camera, sim_robot and episode_runner.

The real cell has none of them; perception and policy never use them (they use
``excavation_contract.interfaces``, as on the robot)."""

SIM_BUCKET_STATE = "sim/bucket_state"  # PoseStamped (tray): bucket pose the physics realised
SIM_BUCKET_COMMAND = "sim/bucket_command"  # PoseStamped (tray): sim_robot's set point for the next step
SIM_ROCK_POSE = "sim/rock_pose"  # PoseStamped (tray): ground-truth rock pose
SIM_ROCK_IN_BUCKET = "sim/rock_in_bucket_truth"  # std_msgs/Bool
SIM_SUCCESS = "sim/success"  # std_msgs/Bool: the success condition holds this step
SIM_EPISODE = "sim/episode_status"  # std_msgs/String, JSON (see sim_world.py)
SIM_RESET = "sim/reset"  # std_srvs/Trigger: new episode
# For the view only (``publish_scene_every`` > 0): nothing of the control loop reads them.
SIM_SOIL_POINTS = "sim/soil_points"  # sensor_msgs/PointCloud2 (tray), float32 x y z of the active soil particles
SIM_SCENE_SHAPES = "sim/scene_shapes"  # std_msgs/String, JSON: rock and bucket boxes, tray size (latched)
SIM_RAW_IMAGE = "sim/camera/depth/image_rect_raw"
SIM_RAW_INFO = "sim/camera/depth/camera_info"

# What a recording of the simulated stack adds to the robot's topics (``recorder --topic``).
RECORDED = {
    "/" + SIM_ROCK_POSE: "geometry_msgs/msg/PoseStamped",
    "/" + SIM_SUCCESS: "std_msgs/msg/Bool",
    "/" + SIM_EPISODE: "std_msgs/msg/String",
}
