"""make_scene: sample a family's randomisation, place soil / rocks / bucket / camera, render.

Geometry and sensor noise draw from separate RNG streams keyed on (family, seed), so
``noise=False`` gives exactly the same scene without sensor effects.
"""

from __future__ import annotations

import zlib

import numpy as np

from .bucket import BucketModel, random_bucket
from .camera import fit_camera, random_intrinsics
from .families import FAMILIES, SPECS, Spec
from .geometry import make_T, random_rotation_tilt, rot_y, rot_z
from .render import Tray, bucket_hits, composite, render_static
from .scene import RockTruth, Scene
from .sensor import SensorParams, apply_sensor
from .shapes import MAX_TILT, Polyhedron, make_rock
from .soil import GrainField, SoilModel


def _u(rng, r):
    return float(rng.uniform(r[0], r[1]))


def _make_soil(rng, spec: Spec, hx, hy, params):
    soil = SoilModel(hx, hy)
    if rng.random() < spec.slope_prob:
        ang = np.radians(_u(rng, spec.slope_deg))
        beta = rng.uniform(-np.pi, np.pi)
        soil.slope = (np.tan(ang) * np.cos(beta), np.tan(ang) * np.sin(beta))
        params["slope_deg"] = float(np.degrees(ang))
    amp = _u(rng, spec.relief_mm) / 1000.0
    k = int(rng.integers(3, 8))
    g = np.column_stack([rng.normal(size=k), rng.uniform(-1.1 * hx, 1.1 * hx, k), rng.uniform(-1.1 * hy, 1.1 * hy, k),
                         rng.uniform(0.03, 0.12, k), rng.uniform(0.03, 0.12, k)])
    xs, ys = np.meshgrid(np.linspace(-hx, hx, 61), np.linspace(-hy, hy, 47), indexing="ij")
    relief = SoilModel(hx, hy, gauss=g).height(xs, ys)
    g[:, 0] *= amp / max(np.abs(relief).max(), 1e-9)
    bump = np.zeros((0, 5))
    if spec.bump:
        A, wdt = rng.uniform(0.010, 0.014), rng.uniform(0.04, 0.08)  # + <= 1 mm ripple
        bump = np.array([[A, rng.uniform(-hx + 0.06, hx - 0.06), rng.uniform(-hy + 0.06, hy - 0.06), wdt / 3, wdt / 3]])
        tot = SoilModel(hx, hy, gauss=np.vstack([g, bump])).height(xs, ys)
        if np.abs(tot).max() > 0.015:  # keep the whole relief within +-15 mm
            rest = tot - SoilModel(hx, hy, gauss=bump).height(xs, ys)
            lim = 0.015 - A
            g[:, 0] *= min(1.0, lim / max(np.abs(rest).max(), 1e-9)) * 0.97
        params["bump"] = bump[0].tolist()
    soil.gauss = np.vstack([g, bump])
    nw = 4
    lam = rng.uniform(0.003, 0.012, nw)
    th = rng.uniform(0, np.pi, nw)
    soil.waves = np.column_stack([np.full(nw, _u(rng, spec.fine_mm) / 1000.0 / nw), 2 * np.pi / lam * np.cos(th),
                                  2 * np.pi / lam * np.sin(th), rng.uniform(0, 2 * np.pi, nw)])
    if spec.grain_mm is not None:
        dia = _u(rng, spec.grain_mm) / 1000.0
        soil.grains = GrainField.random(rng, hx, hy, dia)
        xs2, ys2 = np.meshgrid(np.linspace(-hx, hx, 200), np.linspace(-hy, hy, 150), indexing="ij")
        soil.offset = -float(soil.grains.height(xs2, ys2).mean())
        params["grain_diameter"] = dia
    return soil


def _horizontal_radius(rock) -> float:
    p = rock.local_points @ rock.R.T
    return float(np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2).max())


def _place_rocks(rng, spec: Spec, soil: SoilModel, hx, hy):
    rocks = []
    lmax = min(spec.rock_mm[1] / 1000.0, 0.45 * 2 * min(hx, hy))
    lmin = min(spec.rock_mm[0] / 1000.0, lmax)
    if spec.grain_mm is not None and spec.grain_mm[0] >= 30:  # coarse: rock clearly larger
        lmin = min(lmax, max(lmin, 1.5 * soil.grains.r.mean() * 2, 0.07))
    shrink = 1.0
    while len(rocks) < spec.n_rocks:
        shape = spec.shapes[rng.integers(len(spec.shapes))]
        rock = make_rock(rng, shape, shrink * rng.uniform(lmin, lmax))
        rock.R = random_rotation_tilt(rng, MAX_TILT[shape])
        rh = _horizontal_radius(rock)
        placed = False
        for _ in range(200):
            if hx - rh - 0.01 <= 0 or hy - rh - 0.01 <= 0:
                break
            xy = np.array([rng.uniform(-(hx - rh - 0.01), hx - rh - 0.01), rng.uniform(-(hy - rh - 0.01), hy - rh - 0.01)])
            if all(np.linalg.norm(xy - r.centre[:2]) >= rh + orh + 0.03 for r, orh in rocks):
                placed = True
                break
        if not placed:
            shrink *= 0.85
            continue
        rock.centre = np.array([xy[0], xy[1], 0.0])
        rocks.append((rock, rh))
    out = []
    for rock, rh in rocks:
        if rng.random() < spec.heap_prob:
            ring = [rng.uniform(0.001, 0.004), rock.centre[0], rock.centre[1], rh * rng.uniform(0.85, 1.05), rng.uniform(0.004, 0.012)]
            soil.rings = np.vstack([soil.rings, ring])
        out.append(rock)
    return out


def _finish_rock_z(rng, spec, soil, rock):
    p = rock.local_points @ rock.R.T
    zmin, zmax = p[:, 2].min(), p[:, 2].max()
    b = _u(rng, spec.burial)
    h0 = float(soil.height(rock.centre[0], rock.centre[1]))
    rock.centre[2] = h0 - b * (zmax - zmin) - zmin
    return b


def _truth(rock, soil, burial, in_bucket, vis=1.0) -> RockTruth:
    pw = rock.world_points()
    top = pw[np.argmax(pw[:, 2])]
    local = rock.vertices if isinstance(rock, Polyhedron) else rock.local_points
    return RockTruth(centre=rock.centre.copy(), size=pw.max(0) - pw.min(0), shape=rock.shape,
                     protrusion=float(top[2] - soil.height(rock.centre[0], rock.centre[1])),
                     visible_fraction=vis, in_bucket=in_bucket, burial=float(burial),
                     axes=local.max(0) - local.min(0), R=rock.R.copy(), top=top.copy())


def _lower_points(bm: BucketModel):
    q = bm.sample_points(4)
    return q[q[:, 2] < bm.geom.back_height + 0.005]


def _bucket_lifted(rng, bm, soil, hx, hy, lift, pitch_range):
    """Pose with the tines/plate footprint inside the inner area and the lowest point ``lift``
    above the soil below it (negative lift: tips dug in)."""
    q = _lower_points(bm)
    for _ in range(400):
        R = rot_z(rng.uniform(-np.pi, np.pi)) @ rot_y(rng.uniform(*pitch_range))
        tip = np.array([rng.uniform(-hx, hx), rng.uniform(-hy, hy), 0.0]) * 0.8
        p = q @ R.T + tip
        if (np.abs(p[:, 0]) <= hx - 0.01).all() and (np.abs(p[:, 1]) <= hy - 0.01).all():
            break
    tip[2] = lift - float((p[:, 2] - soil.height(p[:, 0], p[:, 1])).min())
    return make_T(R, tip)


def _rock_in_bucket(rng, spec, bm):
    """A rock resting on the tines, inside the carrying volume (bucket frame pose)."""
    g = bm.geom
    lo, hi = bm.volume()
    L = min(0.10, 0.9 * min(g.width, g.tine_length))
    for _ in range(100):
        shape = spec.shapes[rng.integers(len(spec.shapes))]
        rock = make_rock(rng, shape, rng.uniform(0.04, max(L, 0.041)))
        Rb = random_rotation_tilt(rng, min(MAX_TILT[shape], 0.35))
        p = rock.local_points @ Rb.T
        ext = p.max(0) - p.min(0)
        if ext[0] < hi[0] - lo[0] - 0.006 and ext[1] < hi[1] - lo[1] - 0.004 and ext[2] < hi[2] - lo[2] - 0.004:
            break
        L *= 0.93
    cx = rng.uniform(lo[0] - p[:, 0].min() + 0.003, hi[0] - p[:, 0].max())
    cy = rng.uniform(lo[1] - p[:, 1].min() + 0.002, hi[1] - p[:, 1].max() - 0.002)
    cz = lo[2] + 0.0005 - p[:, 2].min()
    return rock, Rb, np.array([cx, cy, cz])


def _bucket_clear(bm, T, rocks, soil, tray, cam) -> bool:
    q = bm.sample_points(4)
    p = q @ T[:3, :3].T + T[:3, 3]
    for r in rocks:
        rl = (r.world_points() - T[:3, 3]) @ T[:3, :3]
        if bm.inside_local(rl, pad=0.003).any():
            return False
    inner = (np.abs(p[:, 0]) < tray.hx) & (np.abs(p[:, 1]) < tray.hy)
    if (p[inner, 2] - soil.height(p[inner, 0], p[inner, 1]) < -0.001).any():
        return False
    walls = ~inner & (np.abs(p[:, 0]) < tray.hx + tray.wall_t) & (np.abs(p[:, 1]) < tray.hy + tray.wall_t)
    if (p[walls, 2] < tray.wall_top + 0.003).any():
        return False
    return bool((cam.project(p)[2] > 0.15).all())


def _occluding_pose(rng, bm, rock, st, cam, D, rocks, soil, tray):
    """Search bucket poses (any yaw, tips down 0-40 deg) that hide 20-80 % of the rock's pixels.

    A candidate aims a random bucket point (tines, back plate or arm) at a point on the line of
    sight from the camera to a point near the rock's top, a little above the rock.
    """
    pix = np.nonzero(st.rock == 0)[0]
    sub = pix[:: max(1, len(pix) // 1500)]
    g = bm.geom
    want = rng.uniform(0.2, 0.8)
    pw = rock.world_points()
    top = pw[:, 2].max()
    rh = float(np.sqrt(((pw[:, :2] - rock.centre[:2]) ** 2).sum(1)).max())
    best, best_err, fallback = None, np.inf, None
    tx, ty, tz = g.tool0_offset
    for _ in range(160):
        R = rot_z(rng.uniform(-np.pi, np.pi)) @ rot_y(rng.uniform(0.0, np.radians(40)))
        kind = rng.integers(3)
        if kind == 0:
            aim = np.array([rng.uniform(-g.tine_length, 0), rng.uniform(-g.width / 2, g.width / 2), 0.0])
        elif kind == 1:
            aim = np.array([-g.tine_length, rng.uniform(-0.4, 0.4) * g.width, rng.uniform(0, g.back_height)])
        else:
            aim = np.array([tx, ty, tz + rng.uniform(0.02, bm.arm_length)])
        ang = rng.uniform(0, 2 * np.pi)
        tgt = np.array([*(rock.centre[:2] + rng.uniform(0, 0.7 * rh) * np.array([np.cos(ang), np.sin(ang)])), top])
        u = cam.C - tgt
        u /= np.linalg.norm(u)
        Q = tgt + rng.uniform(0.015, 0.12) / u[2] * u
        T = make_T(R, Q - R @ aim)
        hidden = float((bm.intersect(T, cam.C, D[sub]) < st.t[sub]).mean()) if len(sub) else 0.0
        err = abs(hidden - want)
        in_range = 0.2 <= hidden <= 0.8
        if not in_range and best is not None:
            continue
        if not _bucket_clear(bm, T, rocks, soil, tray, cam):
            continue
        if in_range and err < 0.12:
            return T
        if in_range and fallback is None:
            fallback = T
        if abs(hidden - 0.5) < best_err:
            best, best_err = T, abs(hidden - 0.5)
    return fallback if fallback is not None else best


def make_scene(family: str, seed: int, noise: bool = True) -> Scene:
    """Build and render one scene of ``family``; deterministic for (family, seed)."""
    if family not in SPECS:
        raise ValueError(f"unknown scene family {family!r}; known families: {', '.join(FAMILIES)}")
    spec = SPECS[family]
    key = zlib.crc32(family.encode())
    s = int(seed) % (1 << 63)
    rng = np.random.default_rng([key, s, 0])
    params: dict = {}

    sx, sy = _u(rng, spec.tray_x), _u(rng, spec.tray_y)
    hx, hy = sx / 2, sy / 2
    soil = _make_soil(rng, spec, hx, hy, params)
    rocks = _place_rocks(rng, spec, soil, hx, hy)
    soil.build_grid()
    burials = [_finish_rock_z(rng, spec, soil, r) for r in rocks]
    tray = Tray(hx, hy, 0.03, max(rng.uniform(0.035, 0.045), soil.zrange()[1] + 0.008), -rng.uniform(0.06, 0.12))

    bm, in_bucket = None, False
    if spec.bucket is not None:
        bm = BucketModel(random_bucket(rng), arm_radius=rng.uniform(0.04, 0.05), arm_length=rng.uniform(0.18, 0.22))
    if spec.bucket == "in_bucket":
        rock, Rb, cb = _rock_in_bucket(rng, spec, bm)
        rocks, burials, in_bucket = [rock], [0.0], True
    # a rock carried in the bucket must stay in sight: re-pose the bucket (and camera) if the
    # arm/back plate happens to hide most of it from this viewpoint
    for attempt in range(6):
        T_b = None
        if spec.bucket == "in_bucket":
            T_b = _bucket_lifted(rng, bm, soil, hx, hy, rng.uniform(0.03, 0.15), (-0.3, 0.3))
            rock.R = T_b[:3, :3] @ Rb
            rock.centre = T_b[:3, :3] @ cb + T_b[:3, 3]
        elif spec.bucket == "free":
            r = rng.random()
            lift = 0.0 if r < 0.3 else (-rng.uniform(0.0, 0.008) if r < 0.5 else rng.uniform(0.005, 0.12))
            T_b = _bucket_lifted(rng, bm, soil, hx, hy, lift, (-0.3, 0.7))

        keep = [np.array([[a * hx, b * hy, z] for a in (-1, 1) for b in (-1, 1) for z in (0.0, tray.wall_top)])]
        keep += [r.world_points()[::20] for r in rocks]
        if T_b is not None:
            keep.append(_lower_points(bm)[::5] @ T_b[:3, :3].T + T_b[:3, 3])
        cam = fit_camera(rng, random_intrinsics(rng), spec.cam_heights, spec.tilt_deg, np.vstack(keep))
        D = cam.rays()
        st = render_static(cam, D, tray, soil, rocks)
        if spec.bucket == "occlude":
            T_b = _occluding_pose(rng, bm, rocks[0], st, cam, D, rocks, soil, tray)
        b_idx = b_t = None
        if T_b is not None:
            b_idx, b_t = bucket_hits(cam, D, bm, T_b)
        comp = composite(cam, st, len(rocks), b_idx, b_t)
        if not in_bucket or comp.visible_fraction[0] >= 0.3:
            break
    truths = [_truth(r, soil, b, in_bucket, v) for r, b, v in zip(rocks, burials, comp.visible_fraction)]

    sp = SensorParams(edge_drop=rng.uniform(0.3, 0.7))
    srng = np.random.default_rng([key, s, 1])
    if spec.dropout[1] > 0:
        sp.dropout = _u(srng, spec.dropout)
        sp.speckle = _u(srng, spec.speckle)
    depth = apply_sensor(comp.depth, cam.fx, srng, sp) if noise else comp.depth.astype(np.float32)
    params.update(dropout=sp.dropout, speckle=sp.speckle, edge_drop=sp.edge_drop, floor_z=tray.floor_z)
    return Scene(family=family, seed=seed, depth=depth, width=cam.width, height=cam.height, fx=cam.fx, fy=cam.fy,
                 cx=cam.cx, cy=cam.cy, T_tray_camera=cam.T.copy(), tray_size=(sx, sy), rocks=truths,
                 T_tray_bucket=None if T_b is None else T_b.copy(), bucket_geometry=None if bm is None else bm.geom,
                 labels=comp.labels, depth_clean=comp.depth.astype(np.float32), rock_ids=comp.rock_ids, soil=soil,
                 wall_top=tray.wall_top, params=params)
