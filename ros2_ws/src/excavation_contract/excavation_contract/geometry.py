"""Bucket geometry and the pitch convention shared by the simulator, perception and both drivers.

The bucket frame has its origin at the tine tips' centre (``bucket_tip``); pitch is a rotation about
tray y, + = tip down. All quantities are SI.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BucketGeometry:
    """Fork ("skeleton") bucket, in the bucket frame: origin at the tine tips' centre (``bucket_tip``),
    x along the tines pointing from the back plate to the tips, z up when pitch = 0.

    The back plate stands at x = -tine_length; tool0 (the UR flange) is above the back plate.
    """

    width: float = 0.12  # across the tines (y)
    tine_length: float = 0.12  # from back plate to tip (x)
    num_tines: int = 6
    tine_thickness: float = 0.008  # square-ish tine cross-section
    base_thickness: float = 0.008  # cross bar joining the tines at the back
    back_height: float = 0.09  # back plate height (z)
    back_thickness: float = 0.008
    # tool0 origin expressed in the bucket frame (flange above the back plate); tool0 z axis points
    # along bucket -z (flange looks down at the bucket) -- see tool0_from_tip().
    tool0_offset: tuple[float, float, float] = (-0.12, 0.0, 0.16)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_BUCKET = BucketGeometry()


def pitch_rotation(pitch: float) -> np.ndarray:
    """Rotation of the bucket frame in the tray frame for a given pitch (rotation about tray y).

    Positive pitch points the tine tips down (rotation about +y maps +x toward -z).
    """
    c, s = np.cos(pitch), np.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def tool0_from_tip(tip_xyz: np.ndarray, pitch: float, geom: BucketGeometry = DEFAULT_BUCKET) -> np.ndarray:
    """Position of tool0 in the tray frame for a bucket-tip posture (used by both drivers)."""
    return np.asarray(tip_xyz, dtype=float) + pitch_rotation(pitch) @ np.asarray(geom.tool0_offset, dtype=float)


def pitch_to_quaternion(pitch: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``pitch`` about +y (+ = tip down)."""
    return (0.0, math.sin(pitch / 2.0), 0.0, math.cos(pitch / 2.0))


def quaternion_to_pitch(x: float, y: float, z: float, w: float) -> tuple[float, float]:
    """(pitch about y, magnitude of the non-pitch part) of a unit quaternion.

    The second value lets a consumer refuse orientations that are not a pure pitch.
    """
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9:
        return float("nan"), float("inf")
    x, y, z, w = x / n, y / n, z / n, w / n
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    return 2.0 * math.atan2(y, w), math.hypot(x, z)


__all__ = ["BucketGeometry", "DEFAULT_BUCKET", "pitch_rotation", "pitch_to_quaternion", "quaternion_to_pitch",
           "tool0_from_tip"]
