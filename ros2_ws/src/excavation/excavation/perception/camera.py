"""Pinhole intrinsics and camera poses, validated once so later stages can trust them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import PerceptionInputError


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole model of the depth image (no distortion: RealSense depth is already rectified)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in vals):
            raise PerceptionInputError(f"camera intrinsics: K entries must be finite, got fx,fy,cx,cy={vals}")
        if self.fx <= 0 or self.fy <= 0:
            raise PerceptionInputError(
                f"camera intrinsics: focal lengths must be > 0 (an all-zero K means the CameraInfo "
                f"is uncalibrated), got fx={self.fx}, fy={self.fy}"
            )
        if int(self.width) != self.width or int(self.height) != self.height or self.width <= 0 or self.height <= 0:
            raise PerceptionInputError(
                f"camera intrinsics: width and height must be positive integers, got {self.width}x{self.height}"
            )

    @classmethod
    def from_K(cls, K: Any, width: int, height: int) -> "CameraIntrinsics":
        """From a 3x3 matrix or the 9-element row-major list CameraInfo.k carries."""
        try:
            k = np.asarray(K, dtype=float).reshape(3, 3)
        except (ValueError, TypeError) as exc:
            raise PerceptionInputError(
                f"camera intrinsics: K must be a 3x3 matrix or 9 numbers, got {np.shape(K)}"
            ) from exc
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    @classmethod
    def from_camera_info(cls, msg: Any) -> "CameraIntrinsics":
        """From a sensor_msgs/CameraInfo (ROS 2 field names ``k``, ``width``, ``height``) or look-alike."""
        k = getattr(msg, "k", None)
        if k is None:
            k = getattr(msg, "K", None)
        if k is None:
            raise PerceptionInputError("CameraInfo: has no 'k' field (3x3 intrinsic matrix)")
        return cls.from_K(k, int(msg.width), int(msg.height))

    @classmethod
    def from_dict(cls, data: dict) -> "CameraIntrinsics":
        """From YAML: ``{K|k: [9], width, height}`` or camera_info_manager's
        ``{camera_matrix: {data: [9]}, image_width, image_height}``."""
        if not isinstance(data, dict):
            raise PerceptionInputError(f"intrinsics: expected a mapping, got {type(data).__name__}")
        if "camera_matrix" in data:
            cm = data["camera_matrix"]
            k = cm.get("data") if isinstance(cm, dict) else cm
        else:
            k = data.get("K", data.get("k"))
        w = data.get("width", data.get("image_width"))
        h = data.get("height", data.get("image_height"))
        if k is None or w is None or h is None:
            raise PerceptionInputError(
                "intrinsics: need K (or k, or camera_matrix.data) with 9 numbers, and width/height "
                f"(or image_width/image_height); got keys {sorted(data)}"
            )
        return cls.from_K(k, int(w), int(h))

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        return {"width": int(self.width), "height": int(self.height), "K": [float(v) for v in self.K.ravel()]}

    def key(self) -> tuple:
        return (self.fx, self.fy, self.cx, self.cy, self.width, self.height)


def validate_pose(T: Any, name: str = "T_tray_camera") -> np.ndarray:
    """A 4x4 rigid transform, or a PerceptionInputError naming ``name`` and what is wrong."""
    if T is None:
        raise PerceptionInputError(
            f"{name}: camera pose is missing (None); expected a 4x4 transform of the camera optical "
            "frame in the tray frame (from the calibration file or tf)"
        )
    try:
        M = np.asarray(T, dtype=float)
    except (ValueError, TypeError) as exc:
        raise PerceptionInputError(f"{name}: expected a 4x4 numeric matrix, got {type(T).__name__}") from exc
    if M.shape != (4, 4):
        raise PerceptionInputError(f"{name}: expected a 4x4 matrix, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise PerceptionInputError(f"{name}: contains NaN or inf")
    if not np.allclose(M[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise PerceptionInputError(f"{name}: last row must be [0, 0, 0, 1], got {M[3].tolist()}")
    R = M[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0:
        raise PerceptionInputError(f"{name}: upper-left 3x3 block is not a rotation matrix")
    return M


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_tray_camera of an optical frame at ``eye`` looking at ``target`` (image y down = away from ``up``).

    Used by the benchmark's synthetic scenes and handy to write a first calibration by hand.
    """
    eye = np.asarray(eye, dtype=float)
    z = np.asarray(target, dtype=float) - eye
    z /= np.linalg.norm(z)
    up = np.asarray(up, dtype=float)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking along `up`: any perpendicular does
        x = np.cross(z, [1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T
