"""Soil surface: an analytic heightfield and its ray intersection.

The surface is defined analytically (slope + Gaussian relief + heap rings + grain caps + fine
ripples) so tests can ask for the true height anywhere. Rays are intersected by fixed-step
marching on a ~1 mm bilinear grid of that function, bisection inside the bracket, then secant
refinement on the analytic function itself, so the rendered depth matches ``height`` to ~0.01 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import slab


@dataclass
class GrainField:
    """Packed spherical grains: the surface is the max of their exposed caps (jittered-cell layout).

    Each cell of size ``cell`` holds one sphere (centre jittered, radius r, centre depth c below the
    base plane); its cap sqrt(r^2 - d^2) - c is > 0 over a disc. Only 3x3 neighbouring cells can
    reach a point because the jitter + radius stay below one cell.
    """

    cell: float
    x0: float
    y0: float
    jx: np.ndarray  # (nx, ny) centre offsets in cells
    jy: np.ndarray
    r: np.ndarray  # (nx, ny) radius m
    c: np.ndarray  # (nx, ny) centre depth below base m

    @classmethod
    def random(cls, rng, hx, hy, diameter):
        cell = 0.85 * diameter
        nx = int(np.ceil(2 * hx / cell)) + 4
        ny = int(np.ceil(2 * hy / cell)) + 4
        r = 0.5 * diameter * rng.uniform(0.85, 1.12, (nx, ny))
        exposure = r * rng.uniform(0.35, 0.75, (nx, ny))
        return cls(cell, -hx - 2 * cell, -hy - 2 * cell, rng.uniform(-0.2, 0.2, (nx, ny)),
                   rng.uniform(-0.2, 0.2, (nx, ny)), r, r - exposure)

    def height(self, x, y):
        gx = (x - self.x0) / self.cell
        gy = (y - self.y0) / self.cell
        ix = np.floor(gx).astype(np.int64)
        iy = np.floor(gy).astype(np.int64)
        nx, ny = self.r.shape
        out = np.zeros(np.broadcast(x, y).shape)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                i = np.clip(ix + di, 0, nx - 1)
                j = np.clip(iy + dj, 0, ny - 1)
                px = (i + 0.5 + self.jx[i, j]) * self.cell + self.x0
                py = (j + 0.5 + self.jy[i, j]) * self.cell + self.y0
                r = self.r[i, j]
                d2 = (x - px) ** 2 + (y - py) ** 2
                cap = np.sqrt(np.maximum(r * r - d2, 0.0)) - self.c[i, j]
                np.maximum(out, cap, out=out)
        return out


@dataclass
class SoilModel:
    """Analytic soil height over the tray's inner area (tray frame, z up, metres)."""

    hx: float
    hy: float
    slope: tuple = (0.0, 0.0)  # dz/dx, dz/dy
    gauss: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # A, x0, y0, sx, sy
    rings: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # A, x0, y0, r0, w
    waves: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # A, kx, ky, phase
    grains: GrainField | None = None
    offset: float = 0.0
    _grid: tuple | None = None

    def height(self, x, y):
        """True soil height at (x, y) (vectorised, broadcasting), rocks excluded."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        h = self.slope[0] * x + self.slope[1] * y + self.offset
        for A, x0, y0, sx, sy in self.gauss:
            h = h + A * np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))
        for A, x0, y0, r0, w in self.rings:
            r = np.sqrt((x - x0) ** 2 + (y - y0) ** 2)
            h = h + A * np.exp(-0.5 * ((r - r0) / w) ** 2)
        for A, kx, ky, ph in self.waves:
            h = h + A * np.sin(kx * x + ky * y + ph)
        if self.grains is not None:
            h = h + self.grains.height(x, y)
        return h

    # ---- grid used for marching -------------------------------------------------------------
    def build_grid(self, max_points: int = 220_000):
        area = 4 * self.hx * self.hy
        step = max(0.001, float(np.sqrt(area / max_points)))
        nx = int(np.ceil(2 * self.hx / step)) + 1
        ny = int(np.ceil(2 * self.hy / step)) + 1
        xs = np.linspace(-self.hx, self.hx, nx)
        ys = np.linspace(-self.hy, self.hy, ny)
        H = self.height(xs[:, None], ys[None, :])
        self._grid = (xs[0], ys[0], xs[1] - xs[0], ys[1] - ys[0], nx, ny, H.ravel(), H)
        return H

    @property
    def grid(self):
        if self._grid is None:
            self.build_grid()
        return self._grid

    def zrange(self):
        H = self.grid[7]
        amp = float(np.abs(self.waves[:, 0]).sum()) if len(self.waves) else 0.0
        return float(H.min()) - amp - 0.002, float(H.max()) + amp + 0.002

    def grid_height(self, x, y):
        x0, y0, gx, gy, nx, ny, flat, _ = self.grid
        u = np.clip((x - x0) / gx, 0.0, nx - 1.000001)
        v = np.clip((y - y0) / gy, 0.0, ny - 1.000001)
        i = u.astype(np.int64)
        j = v.astype(np.int64)
        fu = u - i
        fv = v - j
        k = i * ny + j
        h00 = flat[k]
        h01 = flat[k + 1]
        h10 = flat[k + ny]
        h11 = flat[k + ny + 1]
        return (h00 * (1 - fv) + h01 * fv) * (1 - fu) + (h10 * (1 - fv) + h11 * fv) * fu

    # ---- ray intersection ---------------------------------------------------------------------
    def intersect(self, C: np.ndarray, D: np.ndarray, step: float = 0.002) -> np.ndarray:
        """Ray parameter of the first soil hit (rays C + t*D), inf where the ray leaves the inner
        area without hitting (it then meets a wall, which the wall test reports)."""
        n = len(D)
        out = np.full(n, np.inf)
        zlo, zhi = self.zrange()
        t0, t1 = slab(C, D, np.array([-self.hx, -self.hy, zlo]), np.array([self.hx, self.hy, zhi]))
        idx = np.nonzero((t1 >= t0) & (t1 > 0))[0]
        if len(idx) == 0:
            return out
        Dx, Dy, Dz = D[idx, 0], D[idx, 1], D[idx, 2]
        ta = np.maximum(t0[idx], 0.0)
        te = t1[idx]
        dt = step / np.sqrt(Dx * Dx + Dy * Dy + Dz * Dz)
        cx, cy, cz = C

        def f(t, sel):
            return cz + t * Dz[sel] - self.grid_height(cx + t * Dx[sel], cy + t * Dy[sel])

        lo = np.full(len(idx), np.nan)
        hi = np.full(len(idx), np.nan)
        flo = np.zeros(len(idx))
        fhi = np.zeros(len(idx))
        sel = np.arange(len(idx))
        fa = f(ta, sel)
        now = fa <= 0  # entered the prism below the surface: through a wall, hidden by it
        lo[now] = hi[now] = ta[now]
        sel, tcur, fcur = sel[~now], ta[~now], fa[~now]
        while len(sel):
            tn = np.minimum(tcur + dt[sel], te[sel])
            fn = f(tn, sel)
            hit = fn <= 0
            h = sel[hit]
            lo[h], hi[h], flo[h], fhi[h] = tcur[hit], tn[hit], fcur[hit], fn[hit]
            keep = ~hit & (tn < te[sel])
            sel, tcur, fcur = sel[keep], tn[keep], fn[keep]
        good = np.nonzero(~np.isnan(lo))[0]
        a, b, fa_lo, fa_hi = lo[good], hi[good], flo[good], fhi[good]
        chord = fa_lo - fa_hi
        ok = chord > 1e-12
        slope = np.where(ok, -chord / np.where(ok, b - a, 1.0), -1.0)  # df/dt < 0 across the bracket
        t = np.where(ok, a + fa_lo / np.where(ok, chord, 1.0) * (b - a), a)  # regula falsi on the grid

        # Newton steps on the analytic surface with the chord slope
        def fa_(tt, s):
            return cz + tt * Dz[good][s] - self.height(cx + tt * Dx[good][s], cy + tt * Dy[good][s])

        r = np.nonzero(ok)[0]
        tr = t[r]
        f0 = fa_(tr, r)
        t1 = tr - f0 / slope[r]
        f1 = fa_(t1, r)
        better = (np.abs(f1) < np.abs(f0)) & (np.abs(t1 - tr) < 0.003)
        t2 = t1 - f1 / slope[r]
        t[r] = np.where(better, t2, tr)
        out[idx[good]] = t
        return out
