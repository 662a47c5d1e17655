"""Small rigid-transform and ray-primitive helpers (float64 throughout).

Kept separate so every other module (soil, rocks, bucket, camera) shares one slab test and one
rotation convention; the intersections are analytic so the renderer needs no mesh library.
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-300


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_axis(axis, angle: float) -> np.ndarray:
    """Rodrigues rotation about a (not necessarily unit) axis."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * K + (1.0 - np.cos(angle)) * (K @ K)


def make_T(R: np.ndarray, p) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(p, dtype=float)
    return T


def safe_inv(D: np.ndarray) -> np.ndarray:
    """1/D with exact zeros replaced by a huge same-signed value (slab tests stay well defined)."""
    with np.errstate(divide="ignore", over="ignore"):
        return 1.0 / np.where(D == 0.0, _TINY, D)


def slab(o: np.ndarray, D: np.ndarray, lo, hi, inv=None):
    """Entry/exit parameters of rays o + t*D (o: (3,) or (N,3), D: (N,3)) against one axis-aligned
    box [lo, hi]. Per-axis 1-D arithmetic: reductions over a length-3 axis are slow in numpy."""
    inv = safe_inv(D) if inv is None else inv
    tmin = None
    for a in range(3):
        oa = o[..., a]
        t1 = (lo[a] - oa) * inv[:, a]
        t2 = (hi[a] - oa) * inv[:, a]
        if tmin is None:
            tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        else:
            np.maximum(tmin, np.minimum(t1, t2), out=tmin)
            np.minimum(tmax, np.maximum(t1, t2), out=tmax)
    return tmin, tmax


def boxes_hit(o: np.ndarray, D: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Nearest front-face hit over B boxes (lo/hi (B,3)); returns (t (N,), box index, -1 = miss)."""
    inv = safe_inv(D)
    best = np.full(len(D), np.inf)
    k = np.full(len(D), -1)
    for b in range(len(lo)):
        tmin, tmax = slab(o, D, lo[b], hi[b], inv)
        ok = (tmax >= tmin) & (tmin > 0.0) & (tmin < best)
        best[ok] = tmin[ok]
        k[ok] = b
    return best, k


def cylinder_z_hit(o: np.ndarray, D: np.ndarray, cx: float, cy: float, r: float, z0: float, z1: float):
    """Nearest hit of rays with a closed cylinder whose axis is parallel to local z (caps included)."""
    ox = o[..., 0] - cx
    oy = o[..., 1] - cy
    oz = o[..., 2]
    dx, dy, dz = D[:, 0], D[:, 1], D[:, 2]
    a = dx * dx + dy * dy
    b = 2.0 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - r * r
    disc = b * b - 4.0 * a * c
    t = np.full(len(D), np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(disc)) / (2.0 * np.where(a == 0.0, _TINY, a))
        zs = oz + ts * dz
        side = (disc >= 0.0) & (ts > 0.0) & (zs >= z0) & (zs <= z1)
        t = np.where(side, ts, t)
        for zc in (z0, z1):
            tc = (zc - oz) / np.where(dz == 0.0, _TINY, dz)
            px = ox + tc * dx
            py = oy + tc * dy
            cap = (tc > 0.0) & (px * px + py * py <= r * r)
            t = np.where(cap & (tc < t), tc, t)
    return t


def fibonacci_sphere(n: int) -> np.ndarray:
    """Near-uniform unit directions, used to sample closed convex surfaces."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1.0 - 2.0 * i / n)
    theta = np.pi * (1.0 + 5.0**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def random_rotation_tilt(rng: np.random.Generator, max_tilt: float) -> np.ndarray:
    """Random yaw about z followed by a tilt of up to max_tilt (rad) about a random horizontal axis."""
    yaw = rng.uniform(-np.pi, np.pi)
    tilt = rng.uniform(0.0, max_tilt)
    az = rng.uniform(-np.pi, np.pi)
    return rot_axis([np.cos(az), np.sin(az), 0.0], tilt) @ rot_z(yaw)
