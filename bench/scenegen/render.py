"""Nearest-hit compositor: table plane, tray walls (slab tests), soil heightfield, rocks, bucket.

Every part returns a per-ray hit parameter (= forward depth, since rays have camera-z = 1); the
image takes the nearest. Costly tests only run on the pixels whose image box covers the part.
The static part (no bucket) is rendered first so the bucket's occlusion of each rock can be
measured by comparing the two (truth ``visible_fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import safe_inv, slab

FLOOR, WALL, SOIL, ROCK, BUCKET = 0, 1, 2, 3, 4


@dataclass
class Tray:
    hx: float
    hy: float
    wall_t: float
    wall_top: float
    floor_z: float

    def boxes(self):
        hx, hy, t, z0, z1 = self.hx, self.hy, self.wall_t, self.floor_z, self.wall_top
        lo = np.array([[hx, -hy - t, z0], [-hx - t, -hy - t, z0], [-hx, hy, z0], [-hx, -hy - t, z0]])
        hi = np.array([[hx + t, hy + t, z1], [-hx, hy + t, z1], [hx, hy + t, z1], [hx, -hy, z1]])
        return lo, hi

    def intersect_walls(self, C, D):
        """Walls = outer box minus the inner hole: a ray entering the outer box through the rim or
        the outside faces hits the wall there; one entering the hole hits the inner face where it
        leaves the hole (unless the soil, tested separately, is nearer)."""
        hx, hy, t = self.hx, self.hy, self.wall_t
        inv = safe_inv(D)
        t0, t1 = slab(C, D, (-hx - t, -hy - t, self.floor_z), (hx + t, hy + t, self.wall_top), inv)
        hit = (t1 >= t0) & (t0 > 0)
        px = C[0] + t0 * D[:, 0]
        py = C[1] + t0 * D[:, 1]
        hole = (np.abs(px) < hx) & (np.abs(py) < hy)
        _, th1 = slab(C, D, (-hx, -hy, self.floor_z - 1.0), (hx, hy, self.wall_top + 1.0), inv)
        return np.where(hit, np.where(hole, th1, t0), np.inf)

    def corners(self, z):
        hx, hy, t = self.hx + self.wall_t, self.hy + self.wall_t, 0.0
        return np.array([[sx * hx, sy * hy, z] for sx in (-1, 1) for sy in (-1, 1)])


@dataclass
class Static:
    """Per-pixel nearest hit without the bucket (flat arrays of length H*W)."""

    t: np.ndarray
    label: np.ndarray
    rock: np.ndarray  # rock index or -1


def render_static(cam, D, tray: Tray, soil, rocks) -> Static:
    n = len(D)
    C = cam.C
    t = np.full(n, np.inf)
    down = D[:, 2] < 0
    t[down] = (tray.floor_z - C[2]) / D[down, 2]
    label = np.full(n, FLOOR, dtype=np.uint8)
    outer = np.vstack([tray.corners(tray.floor_z), tray.corners(tray.wall_top)])
    idx = cam.pixel_subset(outer)
    if len(idx):
        Ds = D[idx]
        tw = tray.intersect_walls(C, Ds)
        ts = soil.intersect(C, Ds)
        for tt, lab in ((tw, WALL), (ts, SOIL)):
            closer = tt < t[idx]
            t[idx[closer]] = tt[closer]
            label[idx[closer]] = lab
    rock_id = np.full(n, -1, dtype=np.int16)
    for i, r in enumerate(rocks):
        idx = cam.pixel_subset(r.world_points())
        if not len(idx):
            continue
        tr = r.intersect(C, D[idx])
        closer = tr < t[idx]
        t[idx[closer]] = tr[closer]
        label[idx[closer]] = ROCK
        rock_id[idx[closer]] = i
    return Static(t, label, rock_id)


def bucket_hits(cam, D, bucket, T_tray_bucket, idx=None):
    """Bucket/arm hit parameters on pixel subset idx (default: the bucket's image box)."""
    if idx is None:
        pts = bucket.sample_points(2) @ T_tray_bucket[:3, :3].T + T_tray_bucket[:3, 3]
        idx = cam.pixel_subset(pts)
    if len(idx) == 0:
        return idx, np.zeros(0)
    return idx, bucket.intersect(T_tray_bucket, cam.C, D[idx])


@dataclass
class Composite:
    depth: np.ndarray  # (H, W) float64, 0 = no hit
    labels: np.ndarray
    rock_ids: np.ndarray
    visible_fraction: list = field(default_factory=list)


def composite(cam, st: Static, n_rocks, b_idx=None, b_t=None) -> Composite:
    t = st.t.copy()
    label = st.label.copy()
    rock = st.rock.copy()
    if b_idx is not None and len(b_idx):
        closer = b_t < t[b_idx]
        t[b_idx[closer]] = b_t[closer]
        label[b_idx[closer]] = BUCKET
        rock[b_idx[closer]] = -1
    fr = []
    for i in range(n_rocks):
        full = int((st.rock == i).sum())
        fr.append(float((rock == i).sum()) / full if full else 0.0)
    depth = np.where(np.isfinite(t), t, 0.0).reshape(cam.height, cam.width)
    return Composite(depth, label.reshape(cam.height, cam.width), rock.reshape(cam.height, cam.width), fr)
