"""Shape of a blob's top in the tray's height map: is it a spherical cap (a soil grain), or flat?

Soil made of grains as big as the rock (a coarse particle simulation, gravel) shows every grain on
top of the bed as a round cap, and a grain can stand as high above its neighbours as a rock does.
Height and size then no longer tell them apart; the top's shape does:

* a grain's top is a **spherical cap**: a sphere fits it to within the depth noise, however large
  the grain (the fit finds the radius; nothing here knows the particle size);
* a rock is a rigid body with faces (the simulator's rock is built of boxes; broken rock is angular):
  a sphere fits its top poorly -- a flat face, a ridge, a corner, or voxel steps;
* a rock lying level with the grains' tops, which height alone cannot find on granular soil, shows
  a **flat top** as large as a rock face, where the grains around it show domes.

Both tests look at the blob's *upper part*: its cells at least 60 % of the way up from the ground to its top,
connected to its highest cell (grains touching a rock's foot, or a neighbouring grain joined at a
low saddle, stay out of it). The fits are small least-squares problems on a few dozen cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TopShape:
    """Fit of a blob's upper part (heights in m, above the ground the blob stands on)."""

    top: float  # height of the blob's top (high percentile of its cells)
    num_cells: int  # cells in the upper part
    area: float  # their area (m^2)
    plane_rms: float  # RMS distance of the upper part's cells from their best plane (m)
    sphere_rms: float  # RMS distance from their best sphere (m); inf when no sphere fits
    sphere_radius: float  # that sphere's radius (m); inf when none
    convex: bool  # the sphere's centre lies below the top (a cap, not a bowl)

    def is_spherical_cap(self, max_rms: float, max_ratio: float) -> bool:
        """A cap of a sphere: within ``max_rms`` (m) of one, and explaining the top's relief (its
        departure from a plane) to within ``max_ratio`` of it."""
        return bool(self.convex and self.num_cells >= 12 and self.sphere_rms <= max_rms
                    and self.sphere_rms <= max_ratio * self.plane_rms)


def _fit_plane_rms(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """RMS distance in z of the least-squares plane z = a x + b y + c."""
    A = np.stack([x, y, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(A, z, rcond=None)
    return float(np.sqrt(np.mean((z - A @ coef) ** 2)))


def _fit_sphere(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, float, float]:
    """Algebraic sphere fit (x^2+y^2+z^2 = 2a x + 2b y + 2c z + d), then the geometric RMS of
    |distance to the centre - radius|. Returns (rms, radius, centre z); inf for a degenerate fit."""
    A = np.stack([x, y, z, np.ones_like(x)], axis=1)
    b = x * x + y * y + z * z
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    c = 0.5 * sol[:3]
    r2 = sol[3] + float(c @ c)
    if not np.isfinite(r2) or r2 <= 0:
        return float("inf"), float("inf"), float("nan")
    r = float(np.sqrt(r2))
    d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - r
    return float(np.sqrt(np.mean(d * d))), r, float(c[2])


def top_shape(rel: np.ndarray, blob: np.ndarray, cell: float, top_percentile: float = 90.0,
              upper: float = 0.6) -> TopShape | None:
    """Shape of the top of ``blob`` (boolean image) in the height map ``rel`` (m above the ground,
    unknown cells very negative): its cells at least ``upper`` of the way up to its top, connected to
    its highest cell. None for a blob without known cells.

    ``upper`` 0.6 rather than 0.5: two equal grains side by side meet halfway up (their saddle),
    and would join into one top that is no sphere."""
    h = rel[blob]
    if h.size == 0:
        return None
    top = float(np.percentile(h, top_percentile))
    upper_cells = (blob & (rel >= upper * top)).astype(np.uint8)
    n, lab = cv2.connectedComponents(upper_cells, connectivity=8)
    if n <= 1:
        return None
    flat_idx = int(np.argmax(np.where(blob, rel, -np.inf)))
    k = lab.ravel()[flat_idx]
    if k == 0:  # highest cell below `upper * top` (only when the top is not above the ground)
        k = int(np.bincount(lab[lab > 0]).argmax())
    rows, cols = np.nonzero(lab == k)
    z = rel[rows, cols].astype(np.float64)
    # Centred coordinates (m): better conditioned fits.
    x = (cols - cols.mean()) * cell
    y = (rows - rows.mean()) * cell
    m = len(z)
    if m < 4:
        return TopShape(top, m, m * cell * cell, 0.0, float("inf"), float("inf"), False)
    zc = z - z.mean()
    plane = _fit_plane_rms(x, y, zc)
    sph, radius, cz = _fit_sphere(x, y, zc) if m >= 6 else (float("inf"), float("inf"), float("nan"))
    convex = bool(np.isfinite(cz) and cz < float(zc.max()))
    return TopShape(top, m, m * cell * cell, plane, sph, radius, convex)
