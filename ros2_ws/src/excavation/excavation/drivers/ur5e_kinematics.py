"""UR5e forward/inverse kinematics and the bucket <-> tool0 <-> base mapping (pure numpy).

Both the real driver and the simulated robot use this module, so it depends on nothing but numpy
and ``excavation_contract``.

Conventions
-----------
* Joint order: shoulder_pan, shoulder_lift, elbow, wrist_1, wrist_2, wrist_3 (UR order).
* DH: the standard (distal) Denavit-Hartenberg parameters Universal Robots publishes for the UR5e;
  ``T_i = Rz(theta_i) Tz(d_i) Tx(a_i) Rx(alpha_i)``. ``fk(q)`` gives ``T_base_tool0`` with the same
  ``base`` and ``tool0`` frames the controller reports (``actual_TCP_pose`` with a zero TCP offset).
* Poses exchanged with the controller are UR "pose vectors" ``[x, y, z, rx, ry, rz]`` (rotation
  vector, axis * angle); see ``pose_to_matrix``/``matrix_to_pose``.
* Bucket: the tray-frame bucket posture is the tip position plus a pitch about tray y (see
  ``contract.pitch_rotation``). tool0 sits at ``contract.tool0_from_tip``; its axes in the bucket
  frame are x_tool = x_bucket (along the tines), y_tool = -y_bucket, z_tool = -z_bucket (the flange
  looks down at the bucket), i.e. ``R_BUCKET_TOOL0 = diag(1, -1, -1)``.
"""

from __future__ import annotations

import math

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry, pitch_rotation, tool0_from_tip

# Published UR5e DH parameters (Universal Robots, "DH parameters for calculations of kinematics").
UR5E_D = np.array([0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996])
UR5E_A = np.array([0.0, -0.425, -0.3922, 0.0, 0.0, 0.0])
UR5E_ALPHA = np.array([math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0])

JOINT_NAMES = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)
# Joint position limits of the UR5e (every joint +-2 pi) and the controller's max joint speeds.
JOINT_LIMIT = 2.0 * math.pi
JOINT_SPEED_MAX = np.array([math.pi, math.pi, math.pi, 2 * math.pi, 2 * math.pi, 2 * math.pi])

R_BUCKET_TOOL0 = np.diag([1.0, -1.0, -1.0])


def dh_transform(theta: float, d: float, a: float, alpha: float) -> np.ndarray:
    ct, st = math.cos(theta), math.sin(theta)
    ca, sa = math.cos(alpha), math.sin(alpha)
    return np.array(
        [
            [ct, -st * ca, st * sa, a * ct],
            [st, ct * ca, -ct * sa, a * st],
            [0.0, sa, ca, d],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def fk_all(q) -> list[np.ndarray]:
    """Transforms base->frame_i for i = 1..6 (the last one is tool0)."""
    q = np.asarray(q, dtype=float)
    T = np.eye(4)
    out = []
    for i in range(6):
        T = T @ dh_transform(q[i], UR5E_D[i], UR5E_A[i], UR5E_ALPHA[i])
        out.append(T)
    return out


def fk(q) -> np.ndarray:
    """``T_base_tool0`` (4x4) for joint angles ``q`` (6,)."""
    return fk_all(q)[-1]


def jacobian(q) -> np.ndarray:
    """Geometric Jacobian (6x6: linear rows first) of tool0 in the base frame."""
    frames = fk_all(q)
    p_end = frames[-1][:3, 3]
    J = np.zeros((6, 6))
    z_prev, p_prev = np.array([0.0, 0.0, 1.0]), np.zeros(3)
    for i in range(6):
        J[:3, i] = np.cross(z_prev, p_end - p_prev)
        J[3:, i] = z_prev
        z_prev, p_prev = frames[i][:3, 2], frames[i][:3, 3]
    return J


def _wrap(angle):
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def ik_analytic(T) -> list[np.ndarray]:
    """All closed-form solutions (up to 8) of ``fk(q) = T``, each joint in (-pi, pi].

    Standard derivation for the UR geometry (three parallel middle axes, spherical-ish wrist);
    solutions that hit a singularity (wrist_2 ~ 0, target out of reach) are left out.
    """
    T = np.asarray(T, dtype=float)
    d1, d4, d5, d6 = UR5E_D[0], UR5E_D[3], UR5E_D[4], UR5E_D[5]
    a2, a3 = UR5E_A[1], UR5E_A[2]
    sols: list[np.ndarray] = []
    p05 = T @ np.array([0.0, 0.0, -d6, 1.0])
    r = math.hypot(p05[0], p05[1])
    if r < abs(d4):
        return sols
    psi = math.atan2(p05[1], p05[0])
    phi = math.acos(max(-1.0, min(1.0, d4 / r)))
    T_inv = np.linalg.inv(T)
    for t1 in (psi + phi + math.pi / 2, psi - phi + math.pi / 2):
        s1, c1 = math.sin(t1), math.cos(t1)
        c5 = (T[0, 3] * s1 - T[1, 3] * c1 - d4) / d6
        if abs(c5) > 1.0 + 1e-9:
            continue
        c5 = max(-1.0, min(1.0, c5))
        for t5 in (math.acos(c5), -math.acos(c5)):
            s5 = math.sin(t5)
            if abs(s5) < 1e-9:
                continue  # wrist singularity: theta6 is free; the numerical solver handles it
            # theta6 from the x/y axes of T60 (inverse of the target).
            t6 = math.atan2((-T_inv[1, 0] * s1 + T_inv[1, 1] * c1) / s5, (T_inv[0, 0] * s1 - T_inv[0, 1] * c1) / s5)
            T01 = dh_transform(t1, d1, 0.0, UR5E_ALPHA[0])
            T45 = dh_transform(t5, d5, 0.0, UR5E_ALPHA[4])
            T56 = dh_transform(t6, d6, 0.0, UR5E_ALPHA[5])
            T14 = np.linalg.inv(T01) @ T @ np.linalg.inv(T45 @ T56)
            p13 = T14 @ np.array([0.0, -d4, 0.0, 1.0]) - np.array([0.0, 0.0, 0.0, 1.0])
            n13 = float(np.linalg.norm(p13[:3]))
            c3 = (n13**2 - a2**2 - a3**2) / (2 * a2 * a3)
            if abs(c3) > 1.0:
                continue
            for t3 in (math.acos(c3), -math.acos(c3)):
                t2 = -math.atan2(p13[1], -p13[0]) + math.asin(max(-1.0, min(1.0, a3 * math.sin(t3) / n13)))
                T12 = dh_transform(t2, 0.0, a2, 0.0)
                T23 = dh_transform(t3, 0.0, a3, 0.0)
                T34 = np.linalg.inv(T12 @ T23) @ T14
                t4 = math.atan2(T34[1, 0], T34[0, 0])
                sols.append(_wrap(np.array([t1, t2, t3, t4, t5, t6])))
    return sols


def pose_error(T_a, T_b) -> tuple[float, float]:
    """(position error m, rotation error rad) between two transforms."""
    dp = float(np.linalg.norm(np.asarray(T_a)[:3, 3] - np.asarray(T_b)[:3, 3]))
    dR = np.asarray(T_a)[:3, :3].T @ np.asarray(T_b)[:3, :3]
    ang = math.acos(max(-1.0, min(1.0, (np.trace(dR) - 1.0) / 2.0)))
    return dp, ang


def ik_numeric(T, q_seed, iterations: int = 50, tol: float = 1e-9, damping: float = 1e-3) -> tuple[np.ndarray, bool]:
    """Damped least-squares IK from ``q_seed``. Returns (q, converged)."""
    T = np.asarray(T, dtype=float)
    q = np.array(q_seed, dtype=float)
    for _ in range(iterations):
        Tq = fk(q)
        e = np.zeros(6)
        e[:3] = T[:3, 3] - Tq[:3, 3]
        e[3:] = matrix_to_rotvec(T[:3, :3] @ Tq[:3, :3].T)
        if float(e @ e) < tol:
            return q, True
        J = jacobian(q)
        dq = J.T @ np.linalg.solve(J @ J.T + damping**2 * np.eye(6), e)
        q = q + dq
    Tq = fk(q)
    dp, da = pose_error(Tq, T)
    return q, bool(dp < 1e-5 and da < 1e-4)


def ik(T, q_seed) -> np.ndarray | None:
    """The IK solution nearest to ``q_seed`` (joint-space distance), or None if unreachable.

    Analytic solutions are unwrapped to the branch nearest the seed (joints span +-2 pi), then the
    best is polished numerically; near singularities the numerical solver alone is used.
    """
    q_seed = np.asarray(q_seed, dtype=float)
    best = None
    for sol in ik_analytic(T):
        cand = q_seed + _wrap(sol - q_seed)
        if np.any(np.abs(cand) > JOINT_LIMIT):
            cand = sol
        if best is None or np.linalg.norm(cand - q_seed) < np.linalg.norm(best - q_seed):
            best = cand
    q, ok = ik_numeric(T, best if best is not None else q_seed)
    if not ok:
        return None
    return q


# --- rotation helpers -------------------------------------------------------------------------


def rotvec_to_matrix(rv) -> np.ndarray:
    rv = np.asarray(rv, dtype=float)
    th = float(np.linalg.norm(rv))
    if th < 1e-12:
        return np.eye(3)
    k = rv / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(th) * K + (1 - math.cos(th)) * (K @ K)


def matrix_to_rotvec(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    c = max(-1.0, min(1.0, (np.trace(R) - 1.0) / 2.0))
    th = math.acos(c)
    if th < 1e-9:
        return np.zeros(3)
    if math.pi - th < 1e-6:
        # Near pi the antisymmetric part vanishes; take the axis from the symmetric part.
        M = (R + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(M)))
        axis = M[:, i] / math.sqrt(max(M[i, i], 1e-12))
        return axis / np.linalg.norm(axis) * th
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2 * math.sin(th))
    return w * th


def pose_to_matrix(pose) -> np.ndarray:
    """UR pose vector [x, y, z, rx, ry, rz] -> 4x4."""
    pose = np.asarray(pose, dtype=float)
    T = np.eye(4)
    T[:3, :3] = rotvec_to_matrix(pose[3:6])
    T[:3, 3] = pose[:3]
    return T


def matrix_to_pose(T) -> np.ndarray:
    T = np.asarray(T, dtype=float)
    return np.concatenate([T[:3, 3], matrix_to_rotvec(T[:3, :3])])


# --- bucket <-> tool0 <-> base ----------------------------------------------------------------


def tray_tool0_from_bucket(tip_xyz, pitch: float, geom: BucketGeometry = DEFAULT_BUCKET) -> np.ndarray:
    """``T_tray_tool0`` for a bucket posture (tip position in tray, pitch about tray y)."""
    T = np.eye(4)
    T[:3, :3] = pitch_rotation(pitch) @ R_BUCKET_TOOL0
    T[:3, 3] = tool0_from_tip(tip_xyz, pitch, geom)
    return T


def bucket_from_tray_tool0(T_tray_tool0, geom: BucketGeometry = DEFAULT_BUCKET) -> tuple[np.ndarray, float]:
    """Inverse of ``tray_tool0_from_bucket``: (tip position in tray, pitch).

    The pitch is read from the bucket x axis projected on the tray x-z plane, so a tool0 that is
    also rolled/yawed (which the driver never commands) still gives the nearest pitch.
    """
    T = np.asarray(T_tray_tool0, dtype=float)
    R_bucket = T[:3, :3] @ R_BUCKET_TOOL0.T
    pitch = math.atan2(-R_bucket[2, 0], R_bucket[0, 0])
    tip = T[:3, 3] - R_bucket @ np.asarray(geom.tool0_offset, dtype=float)
    return tip, pitch


def base_tool0_from_bucket(T_base_tray, tip_xyz, pitch: float, geom: BucketGeometry = DEFAULT_BUCKET) -> np.ndarray:
    """``T_base_tool0`` that puts the bucket tip at ``tip_xyz`` (tray frame) with ``pitch``."""
    return np.asarray(T_base_tray, dtype=float) @ tray_tool0_from_bucket(tip_xyz, pitch, geom)


def bucket_from_base_tool0(T_base_tray, T_base_tool0, geom: BucketGeometry = DEFAULT_BUCKET) -> tuple[np.ndarray, float]:
    """(tip position in tray, pitch) from the measured ``T_base_tool0``."""
    return bucket_from_tray_tool0(invert_transform(T_base_tray) @ np.asarray(T_base_tool0, dtype=float), geom)


def invert_transform(T) -> np.ndarray:
    T = np.asarray(T, dtype=float)
    Ti = np.eye(4)
    Ti[:3, :3] = T[:3, :3].T
    Ti[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return Ti


__all__ = [
    "JOINT_LIMIT",
    "JOINT_NAMES",
    "JOINT_SPEED_MAX",
    "R_BUCKET_TOOL0",
    "UR5E_A",
    "UR5E_ALPHA",
    "UR5E_D",
    "base_tool0_from_bucket",
    "bucket_from_base_tool0",
    "bucket_from_tray_tool0",
    "dh_transform",
    "fk",
    "fk_all",
    "ik",
    "ik_analytic",
    "ik_numeric",
    "invert_transform",
    "jacobian",
    "matrix_to_pose",
    "matrix_to_rotvec",
    "pose_error",
    "pose_to_matrix",
    "rotvec_to_matrix",
    "tray_tool0_from_bucket",
]
