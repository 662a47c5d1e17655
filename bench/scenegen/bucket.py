"""Fork bucket + wrist/forearm as oriented boxes and z-cylinders in the contract's bucket frame.

Bucket frame (excavation_contract): origin at the tine tips' centre, x from the back plate toward
the tips, z up when level. Tines span x in [-tine_length, 0] centred on z = 0; the back plate stands
at x = -tine_length rising in +z; an adapter joins it to the tool0 flange, and the arm (wrist
cylinder) rises along bucket +z from the flange. Intersections are slab tests in the bucket frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry

from .geometry import boxes_hit, cylinder_z_hit


def random_bucket(rng) -> BucketGeometry:
    """Half the time the contract's default bucket, otherwise a different user bucket."""
    if rng.random() < 0.5:
        return DEFAULT_BUCKET
    L = float(rng.uniform(0.10, 0.15))
    bh = float(rng.uniform(0.07, 0.11))
    return BucketGeometry(
        width=float(rng.uniform(0.10, 0.16)),
        tine_length=L,
        num_tines=int(rng.integers(4, 9)),
        tine_thickness=float(rng.uniform(0.006, 0.010)),
        base_thickness=float(rng.uniform(0.006, 0.010)),
        back_height=bh,
        back_thickness=float(rng.uniform(0.006, 0.010)),
        tool0_offset=(-L, 0.0, bh + float(rng.uniform(0.05, 0.08))),
    )


@dataclass
class BucketModel:
    geom: BucketGeometry
    arm_radius: float = 0.045
    arm_length: float = 0.2

    def __post_init__(self):
        g = self.geom
        tt, w, L = g.tine_thickness, g.width, g.tine_length
        lo, hi = [], []
        n = max(int(g.num_tines), 2)
        for k in range(n):
            y = -w / 2 + tt / 2 + k * (w - tt) / (n - 1)
            lo.append([-L, y - tt / 2, -tt / 2])
            hi.append([0.0, y + tt / 2, tt / 2])
        bar = max(g.base_thickness, tt)
        lo.append([-L, -w / 2, -bar / 2])  # cross bar joining the tines at the back
        hi.append([-L + 0.02, w / 2, bar / 2])
        lo.append([-L - g.back_thickness, -w / 2, -tt / 2])  # back plate
        hi.append([-L, w / 2, -tt / 2 + g.back_height])
        tx, ty, tz = g.tool0_offset
        ztop = -tt / 2 + g.back_height
        lo.append([min(tx, -L - g.back_thickness) - 0.012, ty - 0.03, ztop - 0.01])  # adapter
        hi.append([max(tx, -L) + 0.012, ty + 0.03, tz])
        self.box_lo = np.array(lo)
        self.box_hi = np.array(hi)
        self.n_tines = n
        self.cyl = [(tx, ty, 0.0315, tz, tz + 0.012), (tx, ty, self.arm_radius, tz + 0.012, tz + 0.012 + self.arm_length)]
        self.tine_top = tt / 2

    def volume(self):
        """The carrying volume (bucket frame box): above the tines, in front of the back plate."""
        g = self.geom
        return np.array([-g.tine_length, -g.width / 2, self.tine_top]), np.array([0.0, g.width / 2, -g.tine_thickness / 2 + g.back_height])

    def intersect_local(self, o, D):
        t, _ = boxes_hit(o, D, self.box_lo, self.box_hi)
        for cx, cy, r, z0, z1 in self.cyl:
            t = np.minimum(t, cylinder_z_hit(o, D, cx, cy, r, z0, z1))
        return t

    def intersect(self, T_tray_bucket, C, D):
        R, p = T_tray_bucket[:3, :3], T_tray_bucket[:3, 3]
        return self.intersect_local((np.asarray(C) - p) @ R, D @ R)

    def sample_points(self, n=4):
        """Surface samples (bucket frame): box face grids and cylinder rings (for clearance checks)."""
        pts = []
        g = np.linspace(0, 1, n)
        U, V = np.meshgrid(g, g)
        U, V = U.ravel(), V.ravel()
        for lo, hi in zip(self.box_lo, self.box_hi):
            for ax in range(3):
                a1, a2 = [i for i in range(3) if i != ax]
                for side in (lo[ax], hi[ax]):
                    q = np.empty((len(U), 3))
                    q[:, ax] = side
                    q[:, a1] = lo[a1] + U * (hi[a1] - lo[a1])
                    q[:, a2] = lo[a2] + V * (hi[a2] - lo[a2])
                    pts.append(q)
        ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        for cx, cy, r, z0, z1 in self.cyl:
            for z in np.linspace(z0, z1, 5):
                pts.append(np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang), np.full_like(ang, z)], 1))
        return np.vstack(pts)

    def inside_local(self, q, pad=0.0):
        """Whether bucket-frame points lie inside any part (expanded by pad)."""
        ins = ((q[:, None, :] >= self.box_lo[None] - pad) & (q[:, None, :] <= self.box_hi[None] + pad)).all(-1).any(1)
        for cx, cy, r, z0, z1 in self.cyl:
            ins |= ((q[:, 0] - cx) ** 2 + (q[:, 1] - cy) ** 2 <= (r + pad) ** 2) & (q[:, 2] >= z0 - pad) & (q[:, 2] <= z1 + pad)
        return ins
