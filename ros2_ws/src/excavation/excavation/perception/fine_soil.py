"""Rock candidates on soil whose grains are much smaller than a rock (real soil, fine simulation).

There the soil's own relief is smooth at the scale of a rock, and a rock is told from the soil by what
a height map cell knows -- not by the shape of its top (round, flat, faceted and elongated rocks are all
rocks):

* height above the *local* ground (``local_ground``): a plane plus a smooth correction, refitted with
  the rock candidates left out, so slopes and +-15 mm of relief are ground and a rock does not lift the
  ground under itself;
* its edge: a rock stands out of the soil with a steep side (it lies on or in the soil), a soil heap
  rises gently. A candidate taller than the soil's relief (``max_soil_relief``) is a rock whatever its
  edge; a lower one must have a steep edge;
* its footprint: at least ``min_visible_area`` and rock-like proportions (the caller's checks).

Thresholds grow with the soil's measured roughness (``noise_seed_factor``), so a noisy or grainy
surface does not make rocks of its own texture.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import PerceptionConfig
from .ground import GroundPlane, robust_sigma
from .heightmap import UNKNOWN
from .local_ground import LocalGround, correction_map, smooth_known

_K3 = np.ones((3, 3), np.uint8)

FOOTPRINT_NOISE_FACTOR = 3.0
"""A blob's footprint reaches down to this many times the soil's roughness above the ground (and at
least ``footprint_height``): below, soil cells' noise would join it."""


def slope_map(hm: np.ndarray, known: np.ndarray, cell: float) -> np.ndarray:
    """Gradient magnitude (dz/dxy) of the height map, 3x3 Sobel: its built-in averaging keeps the
    cells' depth noise from reading as slope. Unknown cells are filled with a smooth average of their
    known neighbours first, so holes (dropouts, the bucket's shadow) make no steps."""
    fill, _ = smooth_known(hm, known, 1.5)
    h = np.where(known, hm, fill).astype(np.float32)
    gx = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / (8.0 * cell)
    gy = cv2.Sobel(h, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / (8.0 * cell)
    return np.hypot(gx, gy)


def per_label_percentile(values: np.ndarray, labels: np.ndarray, n: int, q: float) -> np.ndarray:
    """The ``q`` percentile (nearest rank) of ``values`` for each label 1..n (index 0 unused; nan when a
    label has no value): one sort for all blobs instead of one percentile per blob."""
    out = np.full(n + 1, np.nan, np.float32)
    sel = labels > 0
    if not sel.any():
        return out
    lab, val = labels[sel], values[sel]
    order = np.lexsort((val, lab))
    lab, val = lab[order], val[order]
    start = np.searchsorted(lab, np.arange(1, n + 1))
    stop = np.searchsorted(lab, np.arange(1, n + 1), side="right")
    has = stop > start
    idx = start + np.floor((stop - start - 1) * (q / 100.0) + 0.5).astype(int)
    out[1:][has] = val[idx[has]]
    return out


def blob_features(rel: np.ndarray, slope: np.ndarray, lab: np.ndarray, n: int, known: np.ndarray):
    """(top, edge slope) of each blob 1..n of a label image: top = 90th percentile of its known heights;
    edge slope = how steeply it rises from the soil, the 80th percentile of the slope in the ring of
    known cells just inside and just outside its outline (a cell outside takes the label of the blob
    next to it)."""
    inside = lab > 0
    border = inside & (cv2.erode(inside.astype(np.uint8), _K3, borderType=cv2.BORDER_CONSTANT, borderValue=0) == 0)
    outer = cv2.dilate(lab.astype(np.float32), _K3).astype(np.int32) * (~inside)
    ring = np.where(border, lab, outer) * known
    top = per_label_percentile(rel, lab * known, n, 90.0)
    edge = per_label_percentile(slope, ring, n, 80.0)
    return np.nan_to_num(top, nan=0.0), np.nan_to_num(edge, nan=0.0)


def hysteresis(rel: np.ndarray, seed: float, low: float, allowed: np.ndarray) -> tuple[int, np.ndarray]:
    """(count, label image) of the connected regions of cells >= ``low`` that hold a cell >= ``seed``."""
    mask = ((rel >= low) & allowed).astype(np.uint8)
    n, lab = cv2.connectedComponents(mask, connectivity=8)
    has_seed = np.zeros(n, bool)
    has_seed[lab[(rel >= seed) & (mask > 0)]] = True
    has_seed[0] = False
    keep = np.cumsum(has_seed) * has_seed  # relabel the kept regions 1..k
    return int(has_seed.sum()), keep[lab].astype(np.int32)


def fit_local_ground(hm: np.ndarray, known: np.ndarray, soil: np.ndarray, plane: GroundPlane,
                     grid_lo: tuple[float, float], cfg: PerceptionConfig):
    """Local ground, rock candidates excluded: fit, find what stands out, leave it out, refit.

    ``hm`` holds heights above ``plane``; ``soil`` marks the cells the ground may be fitted on (known,
    clear of the walls and the bucket). Returns (LocalGround, rel = height above it with UNKNOWN where
    no data, seed threshold, slope map, excluded cells).
    """
    sigma = cfg.ground_smoothing / cfg.cell_size
    slope = slope_map(hm, known, cfg.cell_size)
    grow = max(1, int(round(cfg.ground_exclusion_margin / cfg.cell_size)))
    excl = np.zeros(hm.shape, bool)
    for it in range(cfg.ground_refits + 1):
        fit_on = soil & ~excl
        # First pass: heights above the plane, before any smoothing could follow a rock up; only
        # steep-edged blobs are left out then (relief wider than a rock can stand higher than
        # max_soil_relief above a plane). Later passes: above the local ground.
        corr = correction_map(hm, fit_on, sigma) if it else np.zeros(hm.shape, np.float32)
        rel = np.where(known, hm - corr, UNKNOWN).astype(np.float32)
        if it <= 1:  # the plane's residuals, then the local ground's (the later fits change it little)
            vals = rel[fit_on][::2]  # every other cell: the spread, not each cell, is wanted
            rough = robust_sigma(vals) if len(vals) >= 20 else 0.0
        seed = max(cfg.min_height_above_ground, cfg.noise_seed_factor * rough)
        n, lab = hysteresis(rel, seed, max(cfg.footprint_height, FOOTPRINT_NOISE_FACTOR * rough), known)
        top, edge = blob_features(rel, slope, lab, n, known)
        out = (edge >= cfg.min_edge_slope) | ((top >= cfg.max_soil_relief) if it else False)
        out[0] = False
        new = out[lab]
        if new.any():
            new = cv2.dilate(new.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
        new |= excl
        if it and np.array_equal(new, excl):
            break
        excl = new
    ground = LocalGround(plane, corr, (float(grid_lo[0]), float(grid_lo[1])), cfg.cell_size, rough)
    return ground, rel, seed, slope, excl


def occlusion_aware_centre(blob: np.ndarray, known: np.ndarray, lo: tuple[float, float], cell: float,
                           radius_range: tuple[float, float], min_occluded: float = 0.2):
    """Centre (x, y) of a blob part of which is hidden (by the bucket, or by the rock itself from an
    oblique camera), or None when little of its outline is hidden or no fit is believable.

    The centroid of what is visible is off toward the camera or away from the bucket by up to half a
    rock. The outline cells next to unknown cells are where the view ends, not where the rock does;
    a circle through the other outline cells -- the rock's real edge against the soil -- puts the
    centre where the whole outline would. Believed when its radius fits the rock sizes and it moves
    the centre by less than that radius."""
    b = blob.astype(np.uint8)
    border = blob & (cv2.erode(b, _K3, borderType=cv2.BORDER_CONSTANT, borderValue=0) == 0)
    hidden_next = cv2.dilate((~known).astype(np.uint8), _K3) > 0
    occluded = border & hidden_next
    nb = int(border.sum())
    if nb < 8 or occluded.sum() < min_occluded * nb:
        return None
    edge = border & ~hidden_next
    rows, cols = np.nonzero(edge)
    if len(rows) < 6:
        return None
    x = lo[0] + (cols + 0.5) * cell
    y = lo[1] + (rows + 0.5) * cell
    A = np.stack([x, y, np.ones_like(x)], axis=1)
    try:
        (D, E, F), *_ = np.linalg.lstsq(A, -(x * x + y * y), rcond=None)
    except np.linalg.LinAlgError:
        return None
    cx, cy = -D / 2, -E / 2
    r2 = cx * cx + cy * cy - F
    if not np.isfinite(r2) or r2 <= 0:
        return None
    r = float(np.sqrt(r2))
    br, bc = np.nonzero(blob)
    mx, my = lo[0] + (bc.mean() + 0.5) * cell, lo[1] + (br.mean() + 0.5) * cell
    if not radius_range[0] <= r <= radius_range[1] or np.hypot(cx - mx, cy - my) > r:
        return None
    return np.array([cx, cy])
