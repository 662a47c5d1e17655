"""The robot calibration: ``T_base_tray``, the tray frame in the UR base frame (format in
config/calibration_robot.yaml). Read by the real driver and by the simulated arm alike; the camera's
calibration (``T_tray_camera``) is perception's (``excavation.perception.calibration``)."""

from __future__ import annotations

import os

import numpy as np
import yaml

from excavation_contract import interfaces as I


def load_robot_calibration(path: str) -> np.ndarray:
    """``T_base_tray`` from a robot calibration file (format in config/calibration_robot.yaml)."""
    if not path:
        raise ValueError("calibration_file is empty: the driver needs T_base_tray")
    if not os.path.isfile(path):
        raise ValueError(f"calibration_file {path!r} does not exist")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if data.get("format_version") != 1:
        raise ValueError(f"{path}: format_version must be 1, got {data.get('format_version')!r}")
    if data.get("tray_frame", "tray") != I.TRAY_FRAME:
        raise ValueError(f"{path}: tray_frame must be {I.TRAY_FRAME!r}")
    T = np.asarray(data.get("T_base_tray"), dtype=float)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{path}: T_base_tray must be a finite 4x4 matrix")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or abs(np.linalg.det(R) - 1.0) > 1e-4:
        raise ValueError(f"{path}: T_base_tray rotation is not a proper rotation")
    if not np.allclose(T[3], [0, 0, 0, 1]):
        raise ValueError(f"{path}: T_base_tray last row must be [0, 0, 0, 1]")
    return T


def default_robot_calibration() -> str:
    """The robot package's calibration_robot.yaml (installed share/, else the source tree's)."""
    from excavation import ros_common as rc

    return rc.config_file("calibration_robot.yaml")
