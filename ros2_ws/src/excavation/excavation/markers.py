"""visualization_msgs markers for RViz / Foxglove: rock, ground, bucket, target (all in `tray`)."""

from __future__ import annotations


from excavation_contract import interfaces as I

ROCK, GROUND, BUCKET, TARGET = 0, 1, 2, 3


def _marker(stamp, ns: str, mid: int, mtype: int, rgba, frame: str = I.TRAY_FRAME):
    from visualization_msgs.msg import Marker

    m = Marker()
    m.header.stamp, m.header.frame_id = stamp, frame
    m.ns, m.id, m.type, m.action = ns, mid, mtype, Marker.ADD
    m.color.r, m.color.g, m.color.b, m.color.a = (float(c) for c in rgba)
    m.pose.orientation.w = 1.0
    m.lifetime.sec = 1  # a marker that stops being refreshed disappears: stale data is not shown as live
    return m


def rock_marker(stamp, xyz, size: float = 0.05, detected: bool = True):
    from visualization_msgs.msg import Marker

    m = _marker(stamp, "rock", ROCK, Marker.SPHERE, (0.6, 0.4, 0.2, 1.0) if detected else (0.6, 0.6, 0.6, 0.6))
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in xyz)
    m.scale.x = m.scale.y = m.scale.z = float(size)
    return m


CANDIDATE_IDS = 100
"""Candidate markers take ids from here on (namespace "rock_candidates")."""


def candidate_markers(stamp, positions, chosen: int | None, size: float = 0.04):
    """One small sphere per rock candidate (the chosen one is drawn by rock_marker)."""
    from visualization_msgs.msg import Marker

    out = []
    for k, xyz in enumerate(positions):
        rgba = (0.9, 0.6, 0.1, 0.9) if k == chosen else (0.9, 0.9, 0.2, 0.6)
        m = _marker(stamp, "rock_candidates", CANDIDATE_IDS + k, Marker.SPHERE, rgba)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in xyz)
        m.scale.x = m.scale.y = m.scale.z = float(size)
        out.append(m)
    return out


def ground_marker(stamp, height: float, tray_size=(0.16, 0.16)):
    from visualization_msgs.msg import Marker

    m = _marker(stamp, "ground", GROUND, Marker.CUBE, (0.45, 0.35, 0.25, 0.5))
    m.pose.position.z = float(height) - 0.001
    m.scale.x, m.scale.y, m.scale.z = float(tray_size[0]), float(tray_size[1]), 0.002
    return m


def _pose_arrow(stamp, ns: str, mid: int, xyz, pitch: float, rgba, length: float):
    from visualization_msgs.msg import Marker

    m = _marker(stamp, ns, mid, Marker.ARROW, rgba)
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in xyz)
    # The arrow points along the tines (bucket x), i.e. from the back plate to the tip: draw it
    # ending at the tip by rotating it pi about z relative to the pitch pose.
    qx, qy, qz, qw = I.pitch_to_quaternion(pitch)
    m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = qx, qy, qz, qw
    m.scale.x, m.scale.y, m.scale.z = float(length), 0.01, 0.01
    return m


def bucket_marker(stamp, tip, pitch: float):
    return _pose_arrow(stamp, "bucket", BUCKET, tip, pitch, (0.2, 0.4, 0.9, 1.0), 0.12)


def target_marker(stamp, tip, pitch: float):
    return _pose_arrow(stamp, "target", TARGET, tip, pitch, (0.1, 0.9, 0.2, 0.8), 0.06)


def marker_array(markers):
    from visualization_msgs.msg import MarkerArray

    return MarkerArray(markers=[m for m in markers if m is not None])


__all__ = ["bucket_marker", "candidate_markers", "ground_marker", "marker_array", "rock_marker", "target_marker"]
