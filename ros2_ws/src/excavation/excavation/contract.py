"""The MDP contract shared by the simulator, the trainer, the exported bundle and the ROS nodes.

This module is the single source of truth for the observation and action layouts, the control
period, the frames and the bucket geometry. It imports nothing but numpy so the training package,
the policy exporter and the robot-side nodes can all use it (training depends on this package; the
robot does not need the training stack).

Frames (see DESIGN.md): ``tray`` has its origin at the tray centre on the nominal soil surface,
z up, x pointing away from the robot. All quantities are SI (m, rad, s, N, kg).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One scalar entry of an observation or action vector."""

    name: str
    unit: str
    frame: str
    description: str


# Observation, in the tray frame. Everything here is observable on the real robot: bucket posture
# from the arm's encoders, rock position from the depth camera, rock-in-bucket from the wrist force.
OBSERVATION: tuple[Field, ...] = (
    Field("bucket_tip_x", "m", "tray", "bucket tip position x (encoders + kinematics)"),
    Field("bucket_tip_y", "m", "tray", "bucket tip position y"),
    Field("bucket_tip_z", "m", "tray", "bucket tip position z"),
    Field("bucket_pitch", "rad", "tray", "bucket pitch about tray y; 0 = tines horizontal, + = tip down"),
    Field("rock_x", "m", "tray", "observed rock centre x (camera)"),
    Field("rock_y", "m", "tray", "observed rock centre y"),
    Field("rock_z", "m", "tray", "observed rock centre z"),
    Field("rock_in_bucket", "1", "-", "rock-in-bucket flag (wrist force), 0 or 1"),
)
OBS_DIM = len(OBSERVATION)
OBS_INDEX = {f.name: i for i, f in enumerate(OBSERVATION)}

# Action: bucket displacement per control step, in the tray frame.
ACTION: tuple[Field, ...] = (
    Field("dx", "m", "tray", "bucket tip displacement x per control step"),
    Field("dy", "m", "tray", "bucket tip displacement y per control step"),
    Field("dz", "m", "tray", "bucket tip displacement z per control step"),
    Field("dpitch", "rad", "tray", "bucket pitch change per control step"),
)
ACT_DIM = len(ACTION)

# Per-step bounds on |action|; the policy's output is clipped to these (baked into the bundle).
ACTION_LIMIT = np.array([0.025, 0.025, 0.025, 0.15], dtype=np.float32)

CONTROL_PERIOD_S = 0.1  # one policy step; 128 steps per episode = 12.8 s

# Bucket posture limits the commanded target is clamped to (tray frame); the real driver's safety
# box is configured separately and may be tighter.
PITCH_LIMIT_RAD = (-0.8, 0.9)
WORKSPACE_MIN = np.array([-0.30, -0.30, -0.08], dtype=np.float32)
WORKSPACE_MAX = np.array([0.30, 0.30, 0.40], dtype=np.float32)


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


def layout_dict() -> dict:
    """The layout as written into policy.json and checked by the bundle loader."""
    return {
        "contract_version": CONTRACT_VERSION,
        "observation": [asdict(f) for f in OBSERVATION],
        "action": [asdict(f) for f in ACTION],
        "action_limit": ACTION_LIMIT.tolist(),
        "control_period_s": CONTROL_PERIOD_S,
        "bucket": DEFAULT_BUCKET.to_dict(),
    }


def build_observation(
    bucket_tip_xyz, bucket_pitch: float, rock_xyz, rock_in_bucket: bool
) -> np.ndarray:
    """Assemble one observation vector in contract order (used by the ROS policy node)."""
    values = {
        "bucket_tip_x": bucket_tip_xyz[0],
        "bucket_tip_y": bucket_tip_xyz[1],
        "bucket_tip_z": bucket_tip_xyz[2],
        "bucket_pitch": bucket_pitch,
        "rock_x": rock_xyz[0],
        "rock_y": rock_xyz[1],
        "rock_z": rock_xyz[2],
        "rock_in_bucket": 1.0 if rock_in_bucket else 0.0,
    }
    missing = [f.name for f in OBSERVATION if f.name not in values]
    if missing:  # guards against the layout growing without this builder
        raise KeyError(f"build_observation has no value for observation fields {missing}")
    return np.array([values[f.name] for f in OBSERVATION], dtype=np.float32)


__all__ = [
    "ACTION",
    "ACTION_LIMIT",
    "ACT_DIM",
    "BucketGeometry",
    "CONTRACT_VERSION",
    "CONTROL_PERIOD_S",
    "DEFAULT_BUCKET",
    "Field",
    "OBSERVATION",
    "OBS_DIM",
    "OBS_INDEX",
    "PITCH_LIMIT_RAD",
    "WORKSPACE_MAX",
    "WORKSPACE_MIN",
    "build_observation",
    "layout_dict",
    "pitch_rotation",
    "tool0_from_tip",
]
