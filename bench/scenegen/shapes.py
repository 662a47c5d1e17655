"""Rock bodies: superquadrics (round / flat / elongated) and convex polyhedra (angular).

Each body lives in its own local frame (R, centre) and offers: ray intersection (analytic for the
polyhedron, bracket + bisection for the superquadric), a dense surface sample (extents, top point,
collision checks) and an inside test. These are deliberately not boxes or meshes.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.spatial import ConvexHull

from .geometry import fibonacci_sphere, slab

_DIRS = fibonacci_sphere(4000)


class Rock:
    shape: str
    R: np.ndarray
    centre: np.ndarray
    local_points: np.ndarray

    def world_points(self) -> np.ndarray:
        return self.centre + self.local_points @ self.R.T

    def to_local(self, C, D):
        return (np.asarray(C) - self.centre) @ self.R, D @ self.R

    def bounding_radius(self) -> float:
        return float(np.linalg.norm(self.local_points, axis=1).max())


class Superquadric(Rock):
    """|x/a|^p + |y/b|^p + |z/c|^p <= 1 with p in [2, 3]: contains its ellipsoid, inside its box."""

    def __init__(self, shape, semi_axes, p, R=None, centre=None):
        self.shape = shape
        self.abc = np.asarray(semi_axes, dtype=float)
        self.p = float(p)
        self.R = np.eye(3) if R is None else R
        self.centre = np.zeros(3) if centre is None else np.asarray(centre, float)
        s = _DIRS / (np.abs(_DIRS) ** self.p).sum(axis=1, keepdims=True) ** (1.0 / self.p)
        self.local_points = s * self.abc

    def F(self, q):
        return (np.abs(q) ** self.p).sum(axis=-1)

    def inside(self, pts_world) -> np.ndarray:
        q = (pts_world - self.centre) @ self.R / self.abc
        return self.F(q) <= 1.0

    def intersect(self, C, D) -> np.ndarray:
        o, d = self.to_local(C, D)
        o = o / self.abc
        d = d / self.abc
        n = len(d)
        out = np.full(n, np.inf)
        tb0, tb1 = slab(o, d, -np.ones(3), np.ones(3))
        box = (tb1 >= tb0) & (tb1 > 0)
        idx = np.nonzero(box)[0]
        if len(idx) == 0:
            return out
        o = np.broadcast_to(o, d.shape)
        oi, di, t0, t1 = o[idx], d[idx], np.maximum(tb0[idx], 0.0), tb1[idx]
        # interior point: the ellipsoid hit if any, else the best of a few samples along the ray
        A = (di * di).sum(1)
        B = 2 * (oi * di).sum(1)
        Cc = (oi * oi).sum(1) - 1.0
        disc = B * B - 4 * A * Cc
        te = (-B - np.sqrt(np.maximum(disc, 0))) / (2 * A)
        inner = np.where(disc >= 0, np.clip(te, t0, t1), np.nan)
        miss = np.isnan(inner)
        if miss.any():
            ts = t0[miss, None] + (t1 - t0)[miss, None] * np.linspace(0.03, 0.97, 24)[None]
            q = oi[miss, None, :] + ts[..., None] * di[miss, None, :]
            Fv = self.F(q)
            k = Fv.argmin(1)
            best = ts[np.arange(len(k)), k]
            inner[miss] = np.where(Fv[np.arange(len(k)), k] <= 1.0, best, np.nan)
        ok = ~np.isnan(inner)
        a, b = t0[ok], inner[ok]
        oo, dd = oi[ok], di[ok]
        for _ in range(34):
            m = 0.5 * (a + b)
            ins = self.F(oo + m[:, None] * dd) <= 1.0
            b = np.where(ins, m, b)
            a = np.where(ins, a, m)
        out[idx[ok]] = 0.5 * (a + b)
        return out


class Polyhedron(Rock):
    """Convex polyhedron {q : N q <= d} from random half-spaces (angular rocks)."""

    def __init__(self, shape, normals, offsets, R=None, centre=None):
        self.shape = shape
        self.N = np.asarray(normals, float)
        self.d = np.asarray(offsets, float)
        self.R = np.eye(3) if R is None else R
        self.centre = np.zeros(3) if centre is None else np.asarray(centre, float)
        self.vertices = self._vertices()
        # surface sample: exit points of rays from the (interior) origin, plus the vertices
        proj = _DIRS @ self.N.T
        with np.errstate(divide="ignore"):
            tt = np.where(proj > 0, self.d[None] / np.where(proj > 0, proj, 1.0), np.inf).min(1)
        self.local_points = np.vstack([_DIRS * tt[:, None], self.vertices])

    def _vertices(self):
        tri = np.array(list(combinations(range(len(self.d)), 3)))
        M = self.N[tri]
        det = np.linalg.det(M)
        good = np.abs(det) > 1e-9
        v = np.linalg.solve(M[good], self.d[tri[good]][..., None])[..., 0]
        feas = (v @ self.N.T <= self.d + 1e-9).all(1)
        return v[feas]

    @classmethod
    def random(cls, rng, semi_axes, n_planes):
        """Random bounded polyhedron of n_planes faces, scaled to the given semi-axes."""
        S = np.asarray(semi_axes, float)
        while True:
            n = rng.normal(size=(n_planes, 3))
            n /= np.linalg.norm(n, axis=1, keepdims=True)
            try:
                hull = ConvexHull(n)
            except Exception:
                continue
            if (hull.equations[:, -1] < -0.15).all():  # origin well inside the normals' hull: bounded
                break
        d = rng.uniform(0.8, 1.0, n_planes)
        poly = cls("angular", n / S[None], d)  # x' = S x  ->  (N S^-1) x' <= d
        v = poly.vertices
        mid = v.mean(0)  # strictly interior, so the shifted offsets stay > 0
        ext = (v.max(0) - v.min(0)) / 2
        scale = S.max() / ext.max()
        d2 = scale * (poly.d - poly.N @ mid)
        return cls("angular", poly.N, d2)

    def inside(self, pts_world) -> np.ndarray:
        q = (pts_world - self.centre) @ self.R
        return (q @ self.N.T <= self.d).all(axis=-1)

    def intersect(self, C, D) -> np.ndarray:
        o, d = self.to_local(C, D)
        den = d @ self.N.T  # (n, K)
        num = self.d - (o @ self.N.T)  # (K,)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / np.where(den == 0, 1e-300, den)
        t_in = np.where(den < 0, t, -np.inf).max(1)
        t_out = np.where(den > 0, t, np.inf).min(1)
        par_out = ((den == 0) & (num < 0)).any(1)
        hit = (t_in <= t_out) & (t_in > 0) & ~par_out
        return np.where(hit, t_in, np.inf)


def make_rock(rng, shape: str, largest: float) -> Rock:
    """A rock of the given shape class whose largest local extent is ``largest`` (m)."""
    a = largest / 2
    if shape == "round":
        abc = np.array([a, a / rng.uniform(1.0, 1.2), a / rng.uniform(1.0, 1.2)])
        rng.shuffle(abc)
        return Superquadric(shape, abc, rng.uniform(2.0, 2.3))
    if shape == "flat":
        b = a * rng.uniform(0.7, 1.0)
        c = 0.5 * (a + b) * rng.uniform(0.3, 0.5)
        return Superquadric(shape, [a, b, c], rng.uniform(2.0, 3.0))
    if shape == "elongated":
        b = a / rng.uniform(1.5, 2.2)
        c = b * rng.uniform(0.7, 1.0)
        return Superquadric(shape, [a, b, c], rng.uniform(2.0, 2.6))
    if shape == "angular":
        S = np.array([a, a * rng.uniform(0.6, 1.0), a * rng.uniform(0.5, 0.9)])
        return Polyhedron.random(rng, S, int(rng.integers(8, 15)))
    raise ValueError(f"unknown rock shape {shape!r}")


SHAPES = ("round", "flat", "angular", "elongated")
# tilt limits (rad) per shape: flat and elongated rocks lie on their broad side
MAX_TILT = {"round": np.pi, "flat": np.radians(15), "elongated": np.radians(20), "angular": np.radians(60)}
