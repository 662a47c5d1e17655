"""Robust soil-surface estimate from the tray's points.

The rock, heaps and dug holes are a minority of the soil area, so an iteratively trimmed least-squares
plane (start: the median height, then refit on points within a few robust sigmas) finds the soil
surface without the rock pulling it up. A plane rather than one height absorbs a small calibration
tilt; a slope beyond what a tray can plausibly have falls back to the constant model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroundPlane:
    """Soil surface z = a * x + b * y + c in the tray frame."""

    a: float
    b: float
    c: float
    num_inliers: int
    residual_std: float

    def height_at(self, x, y):
        return self.a * np.asarray(x) + self.b * np.asarray(y) + self.c

    @property
    def height(self) -> float:
        """Soil height at the tray centre (m): the scalar the node publishes."""
        return float(self.c)


def quantile(a: np.ndarray, q: float) -> float:
    """Nearest-rank ``q`` quantile (0..1) by one partial sort: numpy's median and percentile cost ten
    times as much on the few thousand values of a frame, and a robust fit needs no interpolation."""
    a = np.asarray(a).ravel()
    k = min(len(a) - 1, max(0, int(round(q * (len(a) - 1)))))
    return float(np.partition(a, k)[k])


def median(a: np.ndarray) -> float:
    return quantile(a, 0.5)


def robust_sigma(r: np.ndarray) -> float:
    """Standard deviation from the median absolute deviation (robust to a minority of outliers)."""
    return 1.4826 * median(np.abs(r - median(r)))


def fit_ground(
    points: np.ndarray,
    model: str = "plane",
    max_points: int = 4000,
    iterations: int = 4,
    inlier_sigma: float = 3.0,
    inlier_min: float = 0.004,
    max_slope: float = 0.25,
) -> GroundPlane:
    """Fit the soil surface to tray-frame points (N,3), N >= 3 (the caller checks for enough points)."""
    if len(points) < 3:
        raise ValueError(f"fit_ground needs at least 3 points, got {len(points)}")
    # A regular subsample keeps the cost fixed while spanning the whole tray.
    step = max(1, len(points) // max_points)
    p = np.asarray(points[::step], dtype=np.float64)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    a = b = 0.0
    c = median(z)
    inl = np.ones(len(p), bool)
    for _ in range(iterations):
        r = z - (a * x + b * y + c)
        tol = max(inlier_sigma * robust_sigma(r[inl] if inl.sum() > 10 else r), inlier_min)
        inl = np.abs(r) < tol
        if inl.sum() < 3:
            break
        if model == "plane":
            xi, yi, zi = x[inl], y[inl], z[inl]
            # Normal equations of z = a x + b y + c: a 3x3 solve, far cheaper than lstsq's SVD.
            M = np.array([[xi @ xi, xi @ yi, xi.sum()], [xi @ yi, yi @ yi, yi.sum()], [xi.sum(), yi.sum(), len(xi)]])
            try:
                a, b, c = np.linalg.solve(M, [xi @ zi, yi @ zi, zi.sum()])
            except np.linalg.LinAlgError:  # all inliers on a line: no slope is observable
                a, b, c = 0.0, 0.0, median(zi)
            if abs(a) > max_slope or abs(b) > max_slope:
                a = b = 0.0
                c = median(z[inl])
                model = "constant"
        else:
            c = median(z[inl])
    r = z - (a * x + b * y + c)
    return GroundPlane(float(a), float(b), float(c), int(inl.sum()) * step, robust_sigma(r[inl]) if inl.sum() > 1 else 0.0)
