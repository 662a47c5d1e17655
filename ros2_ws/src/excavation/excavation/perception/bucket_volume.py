"""The space the bucket (and the wrist above it) occupies, so their points are not taken for the rock.

Geometry comes from the MDP contract's BucketGeometry: bucket frame at the tine tips' centre, x along
the tines toward the tips, z up at pitch 0; tines span x in [-tine_length, 0], the back plate stands
behind them, the flange (tool0) sits above the back plate and the wrist goes on up from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract import DEFAULT_BUCKET, BucketGeometry, pitch_rotation
from .errors import PerceptionInputError


@dataclass(frozen=True)
class BucketPose:
    """Bucket tip position (m) and pitch (rad) in the tray frame, as in the observation."""

    tip_xyz: tuple[float, float, float]
    pitch: float

    def __post_init__(self) -> None:
        tip = np.asarray(self.tip_xyz, dtype=float)
        if tip.shape != (3,) or not np.all(np.isfinite(tip)) or not np.isfinite(self.pitch):
            raise PerceptionInputError(
                f"bucket pose: expected a finite tip xyz (3 numbers) and a finite pitch, got tip={self.tip_xyz}, pitch={self.pitch}"
            )
        object.__setattr__(self, "tip_xyz", tuple(float(v) for v in tip))
        object.__setattr__(self, "pitch", float(self.pitch))

    @property
    def rotation(self) -> np.ndarray:
        return pitch_rotation(self.pitch)


def bucket_hull(geom: BucketGeometry = DEFAULT_BUCKET, margin: float = 0.0,
                tip_margin: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box (lo, hi) in the bucket frame holding the tines, back plate and flange adapter,
    inflated by ``margin``; ``tip_margin`` (default: ``margin``) ahead of the tine tips."""
    lo = np.array([-geom.tine_length - geom.back_thickness, -geom.width / 2, -geom.tine_thickness / 2])
    hi = np.array([0.0, geom.width / 2, max(geom.back_height, geom.tool0_offset[2])])
    hi = hi + margin
    hi[0] += (margin if tip_margin is None else tip_margin) - margin
    return lo - margin, hi


def points_in_bucket(
    points: np.ndarray,
    pose: BucketPose,
    geom: BucketGeometry = DEFAULT_BUCKET,
    margin: float = 0.015,
    arm_radius: float = 0.06,
    tip_margin: float | None = None,
) -> np.ndarray:
    """Boolean mask of tray-frame points (N,3) inside the inflated bucket hull or the wrist column.

    The wrist column is a cylinder along bucket +z from the flange: what of the arm can hang over
    the tray. A rock inside the bucket is inside the hull too, so it is (rightly) not seen as lying
    in the soil. ``tip_margin`` (default ``margin``) inflates the hull ahead of the tine tips only.
    """
    R = pose.rotation
    pb = (points - np.asarray(pose.tip_xyz, dtype=points.dtype)) @ R.astype(points.dtype)  # = R^T (p - tip)
    lo, hi = bucket_hull(geom, margin, tip_margin)
    inside = np.all((pb >= lo.astype(pb.dtype)) & (pb <= hi.astype(pb.dtype)), axis=1)
    f = np.asarray(geom.tool0_offset, dtype=pb.dtype)
    d2 = (pb[:, 0] - f[0]) ** 2 + (pb[:, 1] - f[1]) ** 2
    wrist = (d2 <= arm_radius**2) & (pb[:, 2] >= f[2] - margin)
    return inside | wrist


def bucket_boxes(pose: BucketPose, geom: BucketGeometry = DEFAULT_BUCKET, wrist_length: float = 0.15):
    """The bucket as oriented boxes (centre, half extents, rotation) in the tray frame, for rendering.

    Tines, a cross bar, the back plate, an adapter up to the flange and a square wrist.
    """
    R = pose.rotation
    tip = np.asarray(pose.tip_xyz, dtype=float)
    L, W, t = geom.tine_length, geom.width, geom.tine_thickness
    local = []
    n = max(geom.num_tines, 1)
    pitch_y = W / n
    for i in range(n):
        y = -W / 2 + pitch_y * (i + 0.5)
        local.append(((-L / 2, y, 0.0), (L / 2, t / 2, t / 2)))
    local.append(((-L + geom.base_thickness / 2, 0.0, 0.0), (geom.base_thickness / 2, W / 2, t / 2)))
    bt = geom.back_thickness
    local.append(((-L - bt / 2, 0.0, (geom.back_height - t / 2) / 2), (bt / 2, W / 2, (geom.back_height + t / 2) / 2)))
    fz = geom.tool0_offset[2]
    local.append(((geom.tool0_offset[0], 0.0, (geom.back_height + fz) / 2), (0.02, 0.03, (fz - geom.back_height) / 2)))
    local.append(((geom.tool0_offset[0], 0.0, fz + wrist_length / 2), (0.04, 0.04, wrist_length / 2)))
    return [(tip + R @ np.asarray(c), np.asarray(h), R) for c, h in local]
