"""Everything a perception node calls per frame: decode, detect, track.

No ROS here: the node converts messages to arrays (see depth.image_from_buffer,
CameraIntrinsics.from_camera_info) and publishes the returned RockEstimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry
from .bucket_volume import BucketPose
from .calibration import TrayCalibration
from .camera import CameraIntrinsics
from .config import PerceptionConfig, TrackerConfig
from .depth import decode_depth
from .rock_detector import RockDetector, RockEstimate, with_tray_size
from .tracker import RockTracker


class RockPerception:
    """Detector + tracker with the calibration's camera pose and tray size."""

    def __init__(
        self,
        config: PerceptionConfig | None = None,
        tracker_config: TrackerConfig | None = None,
        calibration: TrayCalibration | None = None,
        bucket_geometry: BucketGeometry = DEFAULT_BUCKET,
    ) -> None:
        config = config or PerceptionConfig()
        if calibration is not None:
            config = with_tray_size(config, calibration.tray_size)
        self.calibration = calibration
        self.detector = RockDetector(config, bucket_geometry)
        self.tracker = RockTracker(tracker_config)
        self.last_detection: RockEstimate | None = None

    @property
    def config(self) -> PerceptionConfig:
        return self.detector.config

    def process(
        self,
        image: Any,
        encoding: str,
        intrinsics: CameraIntrinsics,
        stamp_s: float,
        bucket: BucketPose | None = None,
        T_tray_camera: np.ndarray | None = None,
    ) -> RockEstimate:
        """One frame -> tracked estimate. ``T_tray_camera`` overrides the calibration's (e.g. from tf)."""
        T = T_tray_camera if T_tray_camera is not None else (
            self.calibration.T_tray_camera if self.calibration is not None else None
        )
        depth = decode_depth(image, encoding, intrinsics)
        det = self.detector.detect(depth, intrinsics, T, bucket, self.tracker.position, stamp_s)
        self.last_detection = det
        return self.tracker.update(det, stamp_s)

    def reset(self) -> None:
        self.tracker.reset()
