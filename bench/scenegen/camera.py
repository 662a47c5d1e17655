"""Pinhole camera (optical frame: x right, y down, z forward) and its placement over the tray.

Rays are generated with camera-z component 1, so the ray parameter of a hit *is* the published
forward-z depth. Pixel centres sit at integer (u, v) (OpenCV / ROS convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import make_T


@dataclass
class Camera:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    T: np.ndarray  # T_tray_camera

    @property
    def C(self):
        return self.T[:3, 3]

    def rays(self) -> np.ndarray:
        """(H*W, 3) tray-frame directions, row-major, camera-z component 1."""
        u = (np.arange(self.width) - self.cx) / self.fx
        v = (np.arange(self.height) - self.cy) / self.fy
        R = self.T[:3, :3]
        d = np.empty((self.height, self.width, 3))
        for k in range(3):
            d[..., k] = R[k, 0] * u[None, :] + R[k, 1] * v[:, None] + R[k, 2]
        return d.reshape(-1, 3)

    def project(self, P):
        """Tray-frame points -> (u, v, z_cam)."""
        q = (np.asarray(P, float) - self.C) @ self.T[:3, :3]
        z = q[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.fx * q[..., 0] / z + self.cx, self.fy * q[..., 1] / z + self.cy, z

    def in_view(self, P, margin=2.0) -> bool:
        u, v, z = self.project(P)
        return bool((z > 0.1).all() and (u >= margin).all() and (u <= self.width - 1 - margin).all()
                    and (v >= margin).all() and (v <= self.height - 1 - margin).all())

    def pixel_subset(self, P, margin=3):
        """Flat pixel indices of the image box covering the projections of P (all pixels if any
        point is behind or very near the camera)."""
        u, v, z = self.project(P)
        if not (z > 0.02).all():
            return np.arange(self.width * self.height)
        u0 = int(np.clip(np.floor(u.min()) - margin, 0, self.width - 1))
        u1 = int(np.clip(np.ceil(u.max()) + margin, 0, self.width - 1))
        v0 = int(np.clip(np.floor(v.min()) - margin, 0, self.height - 1))
        v1 = int(np.clip(np.ceil(v.max()) + margin, 0, self.height - 1))
        if u1 < u0 or v1 < v0 or u.max() < 0 or v.max() < 0 or u.min() > self.width or v.min() > self.height:
            return np.zeros(0, dtype=np.int64)
        vv, uu = np.meshgrid(np.arange(v0, v1 + 1), np.arange(u0, u1 + 1), indexing="ij")
        return (vv * self.width + uu).ravel()


def looking_down(target, height, tilt, yaw) -> np.ndarray:
    """T_tray_camera for a camera ``height`` above ``target`` (vertical), its optical axis tilted
    ``tilt`` from straight down, image x axis horizontal at angle ``yaw`` about tray z."""
    xc = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    zc = np.array([-np.sin(tilt) * np.sin(yaw), np.sin(tilt) * np.cos(yaw), -np.cos(tilt)])
    yc = np.cross(zc, xc)
    R = np.stack([xc, yc, zc], axis=1)
    C = np.asarray(target, float) - (height / np.cos(tilt)) * zc
    return make_T(R, C)


def random_intrinsics(rng):
    """D435-like depth intrinsics: mostly 640x480 (fx 600-640), sometimes 848x480 (fx ~425)."""
    if rng.random() < 0.2:
        w, h = 848, 480
        fx = rng.uniform(415.0, 435.0)
    else:
        w, h = 640, 480
        fx = rng.uniform(600.0, 640.0)
    fy = fx * rng.uniform(0.995, 1.005)
    cx = (w - 1) / 2 + rng.uniform(-8, 8)
    cy = (h - 1) / 2 + rng.uniform(-6, 6)
    return w, h, float(fx), float(fy), float(cx), float(cy)


def fit_camera(rng, intr, height_ranges, tilt_deg, keep_in_view, target_jitter=0.03, tries=300):
    """Sample camera poses until every point of ``keep_in_view`` (tray corners, rocks, bucket)
    projects inside the image; widens the height range if the family's range cannot fit."""
    w, h, fx, fy, cx, cy = intr
    ranges = [tuple(r) for r in height_ranges]
    for attempt in range(6):
        for _ in range(tries):
            lo, hi = ranges[rng.integers(len(ranges))]
            H = rng.uniform(lo, hi)
            tilt = np.radians(rng.uniform(*tilt_deg))
            yaw = rng.uniform(-np.pi, np.pi)
            tgt = np.array([*rng.uniform(-target_jitter, target_jitter, 2), 0.0])
            cam = Camera(w, h, fx, fy, cx, cy, looking_down(tgt, H, tilt, yaw))
            if cam.in_view(keep_in_view, margin=3.0):
                return cam
        ranges = [(lo * 1.08, hi * 1.08) for lo, hi in ranges]
    return cam
