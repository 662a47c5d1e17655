"""A soil surface that follows slopes and relief: a robust plane plus a smooth correction map.

Real soil in a tray is neither flat nor level: a tilted calibration, a slope the last dig left, heaps
and hollows of +-15 mm. One plane lifts (or sinks) the ground by that much and turns a soil heap into a
"rock" or hides a barely-buried rock in a hollow. Here the ground is the plane (``fit_ground``) plus a
correction: a normalized Gaussian convolution of the height map's residuals over the soil cells -- a
weighted average that ignores unknown cells and the cells of rock candidates, so under a rock (or the
bucket's shadow) the ground is interpolated from the soil around it. The caller excludes candidates and
refits (see ``rock_detector``): a rock does not lift the ground under itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .ground import GroundPlane

MIN_SUPPORT = 0.05
"""Below this share of the Gaussian's weight on known soil cells the correction is not believed at the
fine scale; the coarse scale (``COARSE_FACTOR`` x sigma) fills in, and where even that has no soil, 0
(the plane)."""
COARSE_FACTOR = 3.0


def smooth_known(values: np.ndarray, weight: np.ndarray, sigma_cells: float) -> tuple[np.ndarray, np.ndarray]:
    """(normalized Gaussian average of ``values`` over cells of ``weight`` > 0, support in [0, 1])."""
    w = weight.astype(np.float32)
    v = np.where(w > 0, values, 0.0).astype(np.float32) * w
    k = int(2 * np.ceil(3 * sigma_cells) + 1)
    num = cv2.GaussianBlur(v, (k, k), sigma_cells, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(w, (k, k), sigma_cells, borderType=cv2.BORDER_CONSTANT)
    avg = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    return avg, den


@dataclass(frozen=True)
class LocalGround:
    """Soil surface z = plane(x, y) + correction(x, y) in the tray frame.

    ``correction`` is a height map (rows along tray y, columns along tray x) of cells ``cell`` wide whose
    first cell's corner is at ``lo``; outside it the correction is 0. ``residual_std`` is the robust
    spread (m) of the soil cells about the surface: the soil's roughness as the camera sees it.
    """

    plane: GroundPlane
    correction: np.ndarray
    lo: tuple[float, float]
    cell: float
    residual_std: float

    def correction_at(self, x, y) -> np.ndarray:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ix = np.floor((x - self.lo[0]) / self.cell).astype(int)
        iy = np.floor((y - self.lo[1]) / self.cell).astype(int)
        inside = (ix >= 0) & (iy >= 0) & (ix < self.correction.shape[1]) & (iy < self.correction.shape[0])
        out = np.zeros(np.broadcast(x, y).shape, dtype=float)
        out[inside] = self.correction[iy[inside], ix[inside]]
        return out

    def height_at(self, x, y):
        return self.plane.height_at(x, y) + self.correction_at(x, y)

    @property
    def height(self) -> float:
        """Soil height at the tray centre (m): the scalar the node publishes."""
        return float(self.height_at(0.0, 0.0))


def correction_map(residual: np.ndarray, soil: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Smooth correction (same shape) from the residual heights of the cells marked ``soil``."""
    fine, support = smooth_known(residual, soil, sigma_cells)
    thin = support < MIN_SUPPORT
    if not thin.any():  # the usual case: soil all around (the coarse pass costs more than the rest)
        return fine
    coarse, csupport = smooth_known(residual, soil, COARSE_FACTOR * sigma_cells)
    out = np.where(~thin, fine, np.where(csupport > 1e-6, coarse, 0.0))
    return out.astype(np.float32)
