"""The MDP layout shared by the simulator, the trainer, the exported bundle and the ROS nodes.

The observation and action vectors are described once, as ordered fields, and built or taken apart
only by ``pack_*`` / ``unpack_*`` here: the simulator (torch, batched), the toy envs, the test bundles
and the ROS policy node (numpy, one vector) all call the same functions, so they cannot disagree on
the order. Frames: ``tray`` has its origin at the tray centre on the nominal soil surface, z up, x
pointing away from the robot (see ``frames.py``). All quantities are SI (m, rad, s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .geometry import DEFAULT_BUCKET

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One scalar entry of an observation or action vector.

    ``group`` and ``component`` say where the value comes from in ``pack_*``: component ``i`` of the
    group's array (a group of one has component ``None``: the array itself)."""

    name: str
    unit: str
    frame: str
    description: str
    group: str
    component: int | None = None


# Observation, in the tray frame. Everything here is observable on the real robot: bucket posture
# from the arm's encoders, rock position from the depth camera, rock-in-bucket from the wrist force.
OBSERVATION: tuple[Field, ...] = (
    Field("bucket_tip_x", "m", "tray", "bucket tip position x (encoders + kinematics)", "bucket_tip", 0),
    Field("bucket_tip_y", "m", "tray", "bucket tip position y", "bucket_tip", 1),
    Field("bucket_tip_z", "m", "tray", "bucket tip position z", "bucket_tip", 2),
    Field("bucket_pitch", "rad", "tray", "bucket pitch about tray y; 0 = tines horizontal, + = tip down",
          "bucket_pitch"),
    Field("rock_x", "m", "tray", "observed rock centre x (camera)", "rock", 0),
    Field("rock_y", "m", "tray", "observed rock centre y", "rock", 1),
    Field("rock_z", "m", "tray", "observed rock centre z", "rock", 2),
    Field("rock_in_bucket", "1", "-", "rock-in-bucket flag (wrist force), 0 or 1", "rock_in_bucket"),
)
OBS_DIM = len(OBSERVATION)
OBS_INDEX = {f.name: i for i, f in enumerate(OBSERVATION)}

# Action: bucket displacement per control step, in the tray frame.
ACTION: tuple[Field, ...] = (
    Field("dx", "m", "tray", "bucket tip displacement x per control step", "displacement", 0),
    Field("dy", "m", "tray", "bucket tip displacement y per control step", "displacement", 1),
    Field("dz", "m", "tray", "bucket tip displacement z per control step", "displacement", 2),
    Field("dpitch", "rad", "tray", "bucket pitch change per control step", "dpitch"),
)
ACT_DIM = len(ACTION)

# Per-step bounds on |action|; the policy's output is clipped to these (baked into the bundle).
ACTION_LIMIT = np.array([0.025, 0.025, 0.025, 0.15], dtype=np.float32)

CONTROL_PERIOD_S = 0.1  # one policy step; 128 steps per episode = 12.8 s


def _groups(fields: tuple[Field, ...]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, f in enumerate(fields):
        out.setdefault(f.group, []).append(i)
    return out


OBS_GROUPS = _groups(OBSERVATION)
ACT_GROUPS = _groups(ACTION)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _pack(fields: tuple[Field, ...], values: dict[str, Any]) -> Any:
    unknown = sorted(set(values) - {f.group for f in fields})
    missing = sorted({f.group for f in fields} - set(values))
    if unknown or missing:
        raise KeyError(f"pack needs exactly the groups {sorted({f.group for f in fields})}: "
                       f"missing {missing}, unknown {unknown}")
    if any(_is_torch(v) for v in values.values()):
        import torch  # only a torch caller gets here; the contract itself needs numpy only

        ref = next(v for v in values.values() if _is_torch(v))
        cols = []
        for f in fields:
            v = torch.as_tensor(values[f.group], dtype=torch.float32, device=ref.device)
            cols.append(v[..., f.component] if f.component is not None else v)
        return torch.stack(torch.broadcast_tensors(*cols), dim=-1)
    cols = []
    for f in fields:
        v = np.asarray(values[f.group], dtype=np.float32)
        cols.append(v[..., f.component] if f.component is not None else v)
    return np.stack(np.broadcast_arrays(*cols), axis=-1).astype(np.float32)


def _unpack(fields: tuple[Field, ...], groups: dict[str, list[int]], vec: Any, what: str) -> dict[str, Any]:
    if vec.shape[-1] != len(fields):
        raise ValueError(f"{what} must have {len(fields)} entries in its last dimension "
                         f"({[f.name for f in fields]}), got shape {tuple(vec.shape)}")
    out = {}
    for group, idx in groups.items():
        out[group] = vec[..., idx[0]] if fields[idx[0]].component is None else vec[..., idx[0]: idx[-1] + 1]
    return out


def pack_observation(*, bucket_tip, bucket_pitch, rock, rock_in_bucket):
    """The observation vector(s) in contract order, from numpy arrays / floats or torch tensors.

    Leading dimensions broadcast (``bucket_tip`` ``(..., 3)``, ``bucket_pitch`` ``(...)``, ...); the
    result is float32 ``(..., OBS_DIM)``, a torch tensor if any input is one."""
    return _pack(OBSERVATION, {"bucket_tip": bucket_tip, "bucket_pitch": bucket_pitch, "rock": rock,
                               "rock_in_bucket": rock_in_bucket})


def unpack_observation(obs) -> dict[str, Any]:
    """Views of an observation array by group: bucket_tip ``(..., 3)``, bucket_pitch, rock ``(..., 3)``,
    rock_in_bucket. Works on numpy arrays and torch tensors (also inside a traced policy)."""
    return _unpack(OBSERVATION, OBS_GROUPS, obs, "an observation")


def pack_action(*, displacement, dpitch):
    """The action vector(s) in contract order: tip ``displacement`` ``(..., 3)`` and ``dpitch``."""
    return _pack(ACTION, {"displacement": displacement, "dpitch": dpitch})


def unpack_action(action) -> dict[str, Any]:
    """Views of an action array by group: displacement ``(..., 3)``, dpitch ``(...)``."""
    return _unpack(ACTION, ACT_GROUPS, action, "an action")


def build_observation(bucket_tip_xyz, bucket_pitch: float, rock_xyz, rock_in_bucket: bool) -> np.ndarray:
    """One observation vector for the ROS policy node (``pack_observation`` of one state)."""
    return pack_observation(bucket_tip=bucket_tip_xyz, bucket_pitch=bucket_pitch, rock=rock_xyz,
                            rock_in_bucket=1.0 if rock_in_bucket else 0.0)


def _field_dict(f: Field) -> dict:
    # The bundle records what a field means; group/component are how this code packs it.
    return {k: v for k, v in asdict(f).items() if k not in ("group", "component")}


def layout_dict() -> dict:
    """The layout as written into policy.json and checked by the bundle loader."""
    return {
        "contract_version": CONTRACT_VERSION,
        "observation": [_field_dict(f) for f in OBSERVATION],
        "action": [_field_dict(f) for f in ACTION],
        "action_limit": ACTION_LIMIT.tolist(),
        "control_period_s": CONTROL_PERIOD_S,
        "bucket": DEFAULT_BUCKET.to_dict(),
    }


__all__ = [
    "ACTION", "ACTION_LIMIT", "ACT_DIM", "ACT_GROUPS", "CONTRACT_VERSION", "CONTROL_PERIOD_S", "Field",
    "OBSERVATION", "OBS_DIM", "OBS_GROUPS", "OBS_INDEX", "build_observation", "layout_dict", "pack_action",
    "pack_observation", "unpack_action", "unpack_observation",
]
