"""Synthetic depth frames of a tray scene with known geometry (boxes + a floor plane), by ray casting.

For tests and the benchmark (not part of the deployable package); it stands in for the simulator's
camera. scenegen/ is the other, independent source of scenes. Depth is the forward (z)
distance, as a RealSense publishes it. Every pixel ray is scaled so that its camera-z component is 1:
the ray parameter at a hit is then directly the depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry
from excavation.perception.bucket_volume import BucketPose, bucket_boxes
from excavation.perception.camera import CameraIntrinsics
from excavation.perception.depth import box_roi

# Object ids in the id image.
ID_NONE, ID_FLOOR, ID_TRAY, ID_SOIL, ID_ROCK, ID_BUCKET = 0, 1, 2, 3, 4, 5


@dataclass
class Box:
    center: np.ndarray
    half: np.ndarray
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    obj_id: int = ID_TRAY


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_xy(rx: float, ry: float) -> np.ndarray:
    cx, sx, cy, sy = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return Ry @ Rx


@dataclass
class TrayScene:
    """A tray of soil, optionally rocks and the bucket. The soil surface is a (tilted) box top."""

    tray_size: tuple[float, float] = (0.20, 0.20)
    soil_depth: float = 0.08
    wall_height: float = 0.04  # above the soil surface
    wall_thickness: float = 0.03
    ground_offset: float = 0.0  # soil surface height at the tray centre
    ground_tilt: tuple[float, float] = (0.0, 0.0)  # rotation about x, y (rad)
    floor_z: float = -0.20  # the table the tray stands on
    rocks: list[tuple[np.ndarray, float, float]] = field(default_factory=list)  # (centre, side, yaw)
    bucket: BucketPose | None = None
    bumps: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # low soil heaps (centre, half)
    grains: list[tuple[np.ndarray, float]] = field(default_factory=list)  # soil spheres (centre, radius)
    geom: BucketGeometry = DEFAULT_BUCKET

    def boxes(self) -> list[Box]:
        hx, hy = self.tray_size[0] / 2, self.tray_size[1] / 2
        g, t, wh, d = self.ground_offset, self.wall_thickness, self.wall_height, self.soil_depth
        Rg = rot_xy(*self.ground_tilt)
        out = [Box(np.array([0.0, 0.0, g]) + Rg @ np.array([0.0, 0.0, -d / 2]), np.array([hx, hy, d / 2]), Rg, ID_SOIL)]
        zc, zh = g + (wh - d) / 2, (wh + d) / 2
        out += [
            Box(np.array([hx + t / 2, 0.0, zc]), np.array([t / 2, hy + t, zh]), obj_id=ID_TRAY),
            Box(np.array([-hx - t / 2, 0.0, zc]), np.array([t / 2, hy + t, zh]), obj_id=ID_TRAY),
            Box(np.array([0.0, hy + t / 2, zc]), np.array([hx, t / 2, zh]), obj_id=ID_TRAY),
            Box(np.array([0.0, -hy - t / 2, zc]), np.array([hx, t / 2, zh]), obj_id=ID_TRAY),
        ]
        for c, h in self.bumps:
            out.append(Box(np.asarray(c, float), np.asarray(h, float), Rg, ID_SOIL))
        for c, side, yaw in self.rocks:
            out.append(Box(np.asarray(c, float), np.full(3, side / 2), rot_z(yaw), ID_ROCK))
        if self.bucket is not None:
            out += [Box(c, h, R, ID_BUCKET) for c, h, R in bucket_boxes(self.bucket, self.geom)]
        return out

    def ground_height_at(self, x: float, y: float) -> float:
        """True soil-surface height (tilted plane through (0, 0, ground_offset))."""
        n = rot_xy(*self.ground_tilt) @ np.array([0.0, 0.0, 1.0])
        return float(self.ground_offset - (n[0] * x + n[1] * y) / n[2])


def grain_bed(scene: TrayScene, diameter: float, layers: int = 2, jitter: float = 0.0,
              rng: np.random.Generator | None = None, keep: float = 1.0) -> float:
    """Fill the tray with spheres of ``diameter`` (m) as a particle simulator does: square layers,
    every other one shifted by half a pitch into the hollows below (face-centred packing), the top
    of the highest layer at the scene's ground height (the soil box is lowered under the bed).

    ``jitter``: random xy offsets (fraction of the diameter); ``keep``: fraction of the top layer's
    grains kept (a sparse, dug top layer). Returns the height of the bed's top (the grains' upper
    envelope). Only for a level soil (no ground_tilt).
    """
    rng = rng or np.random.default_rng(0)
    hx, hy = scene.tray_size[0] / 2, scene.tray_size[1] / 2
    n = max(1, int(np.floor(2 * min(hx, hy) / diameter + 1e-9)))
    pitch = 2 * min(hx, hy) / n
    layer_h = diameter if pitch >= np.sqrt(2) * diameter else float(np.sqrt(diameter**2 - pitch**2 / 2))
    top = scene.ground_offset
    c = (np.arange(n) - (n - 1) / 2) * pitch
    for k in range(layers):
        z = top - diameter / 2 - (layers - 1 - k) * layer_h
        cc = c[:-1] + pitch / 2 if (k % 2 == 1 and n > 1) else c
        for x in cc:
            for y in cc:
                if k == layers - 1 and rng.random() > keep:
                    continue
                j = jitter * diameter * rng.uniform(-1, 1, 2)
                scene.grains.append((np.array([x + j[0], y + j[1], z]), diameter / 2))
    # The soil box's top sits at the bottom layer's centres: it shows only through the gaps.
    scene.ground_offset = top - diameter / 2 - (layers - 1) * layer_h
    return top


def rock_on_ground(scene: TrayScene, xy, side: float = 0.05, burial: float = 0.5, yaw: float = 0.0):
    """(centre, side, yaw) of a cube whose ``burial`` fraction of height is below the soil surface."""
    g = scene.ground_height_at(xy[0], xy[1])
    return (np.array([xy[0], xy[1], g + side / 2 - burial * side]), side, yaw)


def render(
    boxes: list[Box], intr: CameraIntrinsics, T_tray_camera: np.ndarray, floor_z: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(depth float32 metres with 0 = no hit, object ids uint8) of the boxes and a floor plane."""
    T = np.asarray(T_tray_camera, float)
    H, W = intr.height, intr.width
    depth = np.full((H, W), np.inf)
    ids = np.zeros((H, W), np.uint8)
    o = T[:3, 3]
    R = T[:3, :3]
    if floor_z is not None:
        v, u = np.mgrid[0:H, 0:W]
        d = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1) @ R.T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (floor_z - o[2]) / d[..., 2]
        hit = np.isfinite(t) & (t > 0)
        depth[hit] = t[hit]
        ids[hit] = ID_FLOOR
    for b in boxes:
        roi = box_roi(intr, T, b.center - np.abs(b.R) @ b.half, b.center + np.abs(b.R) @ b.half, pad=1)
        if roi is None:
            continue
        u0, v0, u1, v1 = roi
        v, u = np.mgrid[v0:v1, u0:u1]
        d = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1) @ R.T
        ob = b.R.T @ (o - b.center)  # ray origin and directions in the box frame
        db = d @ b.R
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-b.half - ob) / db
            t2 = (b.half - ob) / db
        tmin = np.nanmax(np.minimum(t1, t2), axis=-1)
        tmax = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (tmin <= tmax) & (tmin > 0)
        sub = depth[v0:v1, u0:u1]
        closer = hit & (tmin < sub)
        sub[closer] = tmin[closer]
        ids[v0:v1, u0:u1][closer] = b.obj_id
    depth[~np.isfinite(depth)] = 0.0
    return depth.astype(np.float32), ids


def render_spheres(
    spheres: list[tuple[np.ndarray, float]], intr: CameraIntrinsics, T_tray_camera: np.ndarray,
    depth: np.ndarray, ids: np.ndarray, obj_id: int = ID_SOIL,
) -> None:
    """Ray-cast spheres (centre, radius) into ``depth`` (0 or inf = no hit) and ``ids``, in place."""
    T = np.asarray(T_tray_camera, float)
    o = T[:3, 3]
    R = T[:3, :3]
    for centre, radius in spheres:
        centre = np.asarray(centre, float)
        roi = box_roi(intr, T, centre - radius, centre + radius, pad=1)
        if roi is None:
            continue
        u0, v0, u1, v1 = roi
        v, u = np.mgrid[v0:v1, u0:u1]
        d = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1) @ R.T
        oc = o - centre
        a = (d * d).sum(-1)
        b = d @ oc
        disc = b * b - a * (oc @ oc - radius * radius)
        hit = disc >= 0
        t = np.where(hit, (-b - np.sqrt(np.maximum(disc, 0.0))) / a, np.inf)
        hit &= t > 0
        sub = depth[v0:v1, u0:u1]
        closer = hit & ((t < sub) | (sub <= 0))
        sub[closer] = t[closer]
        ids[v0:v1, u0:u1][closer] = obj_id


def render_scene(scene: TrayScene, intr: CameraIntrinsics, T_tray_camera: np.ndarray):
    depth, ids = render(scene.boxes(), intr, T_tray_camera, scene.floor_z)
    if scene.grains:
        render_spheres(scene.grains, intr, T_tray_camera, depth, ids)
    return depth, ids


def add_noise(depth: np.ndarray, rng: np.random.Generator, rel_std: float = 0.01, dropout: float = 0.02) -> np.ndarray:
    """Per-pixel Gaussian noise proportional to depth, and random holes (0)."""
    out = depth * (1.0 + rel_std * rng.standard_normal(depth.shape)).astype(np.float32)
    out[rng.random(depth.shape) < dropout] = 0.0
    out[depth <= 0] = 0.0
    return out.astype(np.float32)


def to_16uc1(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (0 stays 0), as realsense-ros publishes."""
    return np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)


def d435_intrinsics(width: int = 640, height: int = 480) -> CameraIntrinsics:
    """A RealSense D435 depth stream's pinhole model (fx = fy = 615 at 640x480), scaled to the size."""
    s = width / 640.0
    return CameraIntrinsics(615.0 * s, 615.0 * s, width / 2.0, height / 2.0, width, height)
