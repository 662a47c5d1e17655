"""Frame names, the one home of these strings (TF frame ids and ``header.frame_id`` of every message).

``tray``: origin at the tray centre on the nominal soil surface, z up, x pointing away from the robot;
every pose and target of the contract is in it. ``base``: the UR5e's base frame (RTDE reports in it).
"""

TRAY_FRAME = "tray"
BASE_FRAME = "base"
TOOL0_FRAME = "tool0"  # the UR flange

__all__ = ["BASE_FRAME", "TOOL0_FRAME", "TRAY_FRAME"]
