"""The space the bucket (and the wrist above it) occupies, so their points are not taken for the rock.

Geometry comes from the MDP contract's BucketGeometry: bucket frame at the tine tips' centre, x along
the tines toward the tips, z up at pitch 0; tines span x in [-tine_length, 0], the back plate stands
behind them, the flange (tool0) sits above the back plate and the wrist goes on up from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry, pitch_rotation
from .errors import PerceptionInputError


MAX_TIP_DISTANCE = 100.0
"""A bucket pose farther than this (m) from the tray in any axis is a broken message, not a pose."""


@dataclass(frozen=True)
class BucketPose:
    """Bucket pose in the tray frame: the tine tips' centre (m) and the bucket frame's orientation.

    The orientation is a full rotation (``R``, 3x3, bucket frame -> tray frame) when the driver or the
    simulator gives one -- a yawed or rolled bucket is masked where it really is; with ``R`` None it
    is the pure pitch of the observation (rotation about tray y).
    """

    tip_xyz: tuple[float, float, float]
    pitch: float
    R: tuple | None = None

    def __post_init__(self) -> None:
        tip = np.asarray(self.tip_xyz, dtype=float)
        if tip.shape != (3,) or not np.all(np.abs(tip) < MAX_TIP_DISTANCE) or not np.isfinite(self.pitch):
            raise PerceptionInputError(
                f"bucket pose: expected a tip xyz (3 numbers, within {MAX_TIP_DISTANCE:g} m of the tray) and a "
                f"finite pitch, got tip={self.tip_xyz}, pitch={self.pitch}"
            )
        object.__setattr__(self, "tip_xyz", tuple(float(v) for v in tip))
        object.__setattr__(self, "pitch", float(self.pitch))
        if self.R is not None:
            R = np.asarray(self.R, dtype=float)
            if R.shape != (3, 3) or not np.all(np.isfinite(R)) or not np.allclose(R @ R.T, np.eye(3), atol=1e-4) \
                    or np.linalg.det(R) < 0:
                raise PerceptionInputError(f"bucket pose: R must be a finite 3x3 rotation matrix, got {self.R!r}")
            object.__setattr__(self, "R", tuple(tuple(float(v) for v in row) for row in R))

    @classmethod
    def from_quaternion(cls, tip_xyz, q_xyzw) -> "BucketPose":
        """From a position and a unit quaternion (x, y, z, w), e.g. a geometry_msgs/Pose."""
        q = np.asarray(q_xyzw, dtype=float)
        n = float(np.linalg.norm(q)) if q.shape == (4,) else 0.0
        if not np.isfinite(n) or n < 1e-9:
            raise PerceptionInputError(f"bucket pose: orientation must be a non-zero finite quaternion (x, y, z, w), got {q_xyzw!r}")
        x, y, z, w = q / n
        R = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])
        return cls.from_matrix(np.block([[R, np.asarray(tip_xyz, float).reshape(3, 1)], [np.zeros((1, 3)), np.ones((1, 1))]]))

    @classmethod
    def from_matrix(cls, T_tray_bucket) -> "BucketPose":
        """From a 4x4 transform of the bucket frame in the tray frame."""
        T = np.asarray(T_tray_bucket, dtype=float)
        if T.shape != (4, 4):
            raise PerceptionInputError(f"bucket pose: expected a 4x4 transform, got shape {T.shape}")
        R = T[:3, :3]
        # Pitch of the observation: the tines' elevation (positive = tips down).
        pitch = float(np.arctan2(-R[2, 0], np.hypot(R[0, 0], R[1, 0]))) if np.all(np.isfinite(R)) else float("nan")
        return cls(tuple(T[:3, 3]), pitch, R)

    @property
    def rotation(self) -> np.ndarray:
        return pitch_rotation(self.pitch) if self.R is None else np.asarray(self.R, dtype=float)


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


def points_in_load(points: np.ndarray, pose: BucketPose, geom: BucketGeometry = DEFAULT_BUCKET,
                   margin: float = 0.008) -> np.ndarray:
    """Boolean mask of tray-frame points (N,3) inside the bucket's load space, ``margin`` in from its
    sides: between the back plate and the tine tips, across the tines' width, above the tines and below
    the back plate's top. What lies there and is not the bucket is what the bucket carries."""
    R = pose.rotation
    pb = (points - np.asarray(pose.tip_xyz, dtype=points.dtype)) @ R.astype(points.dtype)
    x0 = -geom.tine_length + max(geom.base_thickness, 0.0) + margin
    return ((pb[:, 0] >= x0) & (pb[:, 0] <= -margin) & (np.abs(pb[:, 1]) <= geom.width / 2 - margin)
            & (pb[:, 2] >= geom.tine_thickness / 2 + margin) & (pb[:, 2] <= geom.back_height))


def points_ahead_of_tips(points: np.ndarray, pose: BucketPose, geom: BucketGeometry = DEFAULT_BUCKET,
                         reach: float = 0.06, margin: float = 0.008) -> np.ndarray:
    """Boolean mask of tray-frame points (N,3) just ahead of the tine tips (up to ``reach``), across the
    bucket's width and at the load space's heights: where a rock lies that the tines are sliding under,
    its centre still ahead of them."""
    R = pose.rotation
    pb = (points - np.asarray(pose.tip_xyz, dtype=points.dtype)) @ R.astype(points.dtype)
    return ((pb[:, 0] > margin) & (pb[:, 0] <= reach) & (np.abs(pb[:, 1]) <= geom.width / 2 - margin)
            & (pb[:, 2] >= geom.tine_thickness / 2 + margin) & (pb[:, 2] <= geom.back_height))


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
