"""Posture limits of the bucket, in the tray frame: the one home of these numbers.

Two boxes, on purpose:
* ``WORKSPACE_MIN/MAX`` and ``PITCH_LIMIT_RAD``: where the policy was trained to act. The simulator,
  the toy envs and the policy node clamp a commanded target to them; ``sim_robot`` defaults to them.
* ``SAFETY_BOX_MIN/MAX``: the real driver's default safety box, tighter than the trained workspace so
  a target at the workspace's edge never reaches the tray's walls. A cell's config file may narrow it.
"""

from __future__ import annotations

import numpy as np

PITCH_LIMIT_RAD = (-0.8, 0.9)  # + = tip down
WORKSPACE_MIN = np.array([-0.30, -0.30, -0.08], dtype=np.float32)
WORKSPACE_MAX = np.array([0.30, 0.30, 0.40], dtype=np.float32)

SAFETY_BOX_MIN = (-0.25, -0.25, -0.06)
SAFETY_BOX_MAX = (0.25, 0.25, 0.35)

__all__ = ["PITCH_LIMIT_RAD", "SAFETY_BOX_MAX", "SAFETY_BOX_MIN", "WORKSPACE_MAX", "WORKSPACE_MIN"]
