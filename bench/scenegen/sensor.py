"""D435-like depth sensor effects applied to an ideal forward-z depth image.

Order matters and follows the physics: stereo shadow and edge loss depend on the true geometry,
then axial noise (sigma = 0.002 z^2 white + a smaller spatially correlated part), dropout blobs
and speckle, then 1 mm quantisation and the 0.1 m minimum range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, zoom


@dataclass
class SensorParams:
    baseline: float = 0.05  # second imager along camera +x
    edge_drop: float = 0.5  # probability of dropping a pixel at a strong discontinuity
    corr_scale: float = 0.35  # correlated noise sigma relative to the white part
    dropout: float = 0.0  # fraction of pixels lost in blobs
    speckle: float = 0.0  # fraction of salt outliers
    min_range: float = 0.1
    max_range: float = 6.0


def stereo_shadow(z: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Pixels whose surface point is hidden from a viewpoint ``baseline`` along camera +x.

    With a pure x baseline the epipolar lines are the image rows: a point at column u lands at
    u' = u - fx*b/z in the second view; it is hidden iff some pixel to its right lands at or left
    of u' (a nearer surface crossing over it), i.e. u' >= min over columns > u of u'.
    """
    H, W = z.shape
    cols = np.arange(W, dtype=float)[None, :]
    with np.errstate(divide="ignore"):
        up = np.where(z > 0, cols - fx * baseline / np.where(z > 0, z, 1.0), np.inf)
    rmin = np.minimum.accumulate(up[:, ::-1], axis=1)[:, ::-1]
    right = np.full_like(up, np.inf)
    right[:, :-1] = rmin[:, 1:]
    return (up >= right - 1e-6) & (z > 0)


def smooth_field(rng, shape, cell):
    """Unit-variance-ish smooth random field (low-res Gaussian noise upsampled bilinearly)."""
    H, W = shape
    lo = rng.normal(size=(H // cell + 2, W // cell + 2))
    f = zoom(lo, (H / (lo.shape[0] - 1), W / (lo.shape[1] - 1)), order=1)
    return f[:H, :W]


def apply_sensor(depth: np.ndarray, fx: float, rng, p: SensorParams) -> np.ndarray:
    z = depth.astype(np.float64).copy()
    valid = z > 0
    bad = stereo_shadow(z, fx, p.baseline)
    # edge loss at strong depth discontinuities
    jump = np.zeros_like(z)
    dzx = np.abs(np.diff(z, axis=1))
    dzy = np.abs(np.diff(z, axis=0))
    jump[:, 1:] = np.maximum(jump[:, 1:], dzx)
    jump[:, :-1] = np.maximum(jump[:, :-1], dzx)
    jump[1:, :] = np.maximum(jump[1:, :], dzy)
    jump[:-1, :] = np.maximum(jump[:-1, :], dzy)
    edge = jump > np.maximum(0.008, 0.02 * z)
    ring = binary_dilation(edge) & ~edge
    bad |= edge & (rng.random(z.shape) < p.edge_drop)
    bad |= ring & (rng.random(z.shape) < 0.3 * p.edge_drop)
    # axial noise: white + correlated
    sigma = 0.002 * z * z
    noise = rng.normal(size=z.shape) + p.corr_scale * smooth_field(rng, z.shape, 24)
    z = z + sigma * noise
    if p.dropout > 0:
        f = smooth_field(rng, z.shape, 20) + 0.35 * smooth_field(rng, z.shape, 6)
        bad |= f > np.quantile(f, 1.0 - p.dropout)
    if p.speckle > 0:
        salt = rng.random(z.shape) < p.speckle
        factor = np.where(rng.random(z.shape) < 0.5, rng.uniform(0.4, 0.9, z.shape), rng.uniform(1.15, 2.5, z.shape))
        z = np.where(salt & valid, z * factor, z)
    z = np.round(z * 1000.0) / 1000.0
    bad |= ~valid | (z < p.min_range) | (z > p.max_range)
    z[bad] = 0.0
    return z.astype(np.float32)
