"""Rock perception from depth and rock-in-bucket from the wrist force: a plain library (no ROS).

Per frame a perception node calls :meth:`RockPerception.process` (decode -> detect -> track) and
publishes the returned :class:`RockEstimate` (tray frame). The driver feeds
:class:`RockInBucketEstimator` with RTDE ``actual_TCP_force`` samples.
"""

from .bucket_volume import BucketPose, points_in_bucket
from .calibration import TrayCalibration, calibrate_from_depth, load_calibration, save_calibration
from .camera import CameraIntrinsics, look_at, validate_pose
from .config import PerceptionConfig, TrackerConfig
from .depth import ENCODINGS, decode_depth, image_from_buffer
from .errors import CalibrationError, PerceptionInputError
from .ground import GroundPlane, fit_ground
from .pipeline import RockPerception
from .rock_detector import Reason, RockDetector, RockEstimate
from .rock_in_bucket import RockInBucketConfig, RockInBucketEstimator, SimulatedRockInBucket, simulated_tcp_force
from .tracker import RockTracker

__all__ = [
    "BucketPose",
    "CalibrationError",
    "CameraIntrinsics",
    "ENCODINGS",
    "GroundPlane",
    "PerceptionConfig",
    "PerceptionInputError",
    "Reason",
    "RockDetector",
    "RockEstimate",
    "RockInBucketConfig",
    "RockInBucketEstimator",
    "RockPerception",
    "RockTracker",
    "SimulatedRockInBucket",
    "TrackerConfig",
    "TrayCalibration",
    "calibrate_from_depth",
    "decode_depth",
    "fit_ground",
    "image_from_buffer",
    "load_calibration",
    "look_at",
    "points_in_bucket",
    "save_calibration",
    "simulated_tcp_force",
    "validate_pose",
]
