"""Height map of the tray seen from above, and the soil's upper envelope.

The points above the tray are binned into square cells of the tray plane (each cell keeps the mean
height of its points). On that small image (about 30 x 30 cells for a 16 cm tray at
5 mm) the rest is cheap OpenCV/numpy image morphology:

* :func:`fill_small_holes` gives cells without a point (dropouts, the odd empty cell) the mean of their
  known neighbours when most neighbours are known; larger holes (the bucket's shadow) stay unknown.
* :func:`peak_heights` finds the *peaks* of the map: regional maxima that stand at least ``dynamic``
  above every path to higher ground (h-maxima by morphological reconstruction). On grainy soil every
  grain on top of the bed is a peak; a rock (or a flat-topped heap) is one peak, however large.
* :func:`envelope_offset` turns the peaks into the height of the soil's upper envelope: a low quantile
  of the peak heights, so that a rock -- one peak among the soil's many -- cannot lift it. Soil made of
  grains as big as the rock (a coarse simulation) has its surface at the grains' tops, not at the
  median of everything the camera sees between them; on fine or real soil the envelope is a few mm
  above the median surface and this changes nothing.
* :func:`local_plane_rms` measures how far each window of the map departs from a plane: flat faces
  (a rock's, at any tilt) against the curved tops of grains.
"""

from __future__ import annotations

import cv2
import numpy as np

UNKNOWN = np.float32(-1.0e3)
"""Height given to cells without data (far below anything real): they never join a blob and never
raise the reconstruction."""

_K3 = np.ones((3, 3), np.uint8)


def cell_mean(iy: np.ndarray, ix: np.ndarray, h: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mean ``h`` per cell (float32 image of ``shape``), UNKNOWN where a cell has no point.

    The mean of the several depth samples in a cell averages the sensor noise down, so that noise
    cannot make peaks; grains and rocks span several cells and keep their relief.
    """
    n = shape[0] * shape[1]
    out = np.full(n, UNKNOWN, np.float32)
    if len(h):
        flat = iy.astype(np.int64) * shape[1] + ix
        cnt = np.bincount(flat, minlength=n)
        s = np.bincount(flat, weights=h, minlength=n)
        ok = cnt > 0
        out[ok] = (s[ok] / cnt[ok]).astype(np.float32)
    return out.reshape(shape)


def fill_small_holes(hm: np.ndarray, min_known_neighbours: int = 5) -> np.ndarray:
    """Unknown cells with at least this many known 8-neighbours get their known neighbours' mean."""
    known = (hm > UNKNOWN / 2).astype(np.float32)
    vals = np.where(known > 0, hm, 0.0).astype(np.float32)
    k = np.ones((3, 3), np.float32)
    k[1, 1] = 0.0
    n = cv2.filter2D(known, -1, k, borderType=cv2.BORDER_CONSTANT)
    s = cv2.filter2D(vals, -1, k, borderType=cv2.BORDER_CONSTANT)
    fill = (known == 0) & (n >= min_known_neighbours - 0.5)
    out = hm.copy()
    out[fill] = s[fill] / n[fill]
    return out


def reconstruct_by_dilation(marker: np.ndarray, mask: np.ndarray, max_iter: int = 500) -> np.ndarray:
    """Grey-scale morphological reconstruction of ``marker`` (<= mask) under ``mask``, 8-connected."""
    r = np.minimum(marker, mask)
    for _ in range(max_iter):
        nxt = np.minimum(cv2.dilate(r, _K3, borderType=cv2.BORDER_CONSTANT, borderValue=float(UNKNOWN)), mask)
        if np.array_equal(nxt, r):
            break
        r = nxt
    return r


def peak_heights(hm: np.ndarray, dynamic: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of the map standing at least ``dynamic`` (m) above their surroundings.

    Returns (heights, row, col) of each peak's highest cell. With the h-dome transform
    ``d = hm - reconstruct(hm - dynamic, hm)``, every dome of the map (the part of a hill above its
    highest saddle to higher ground, at most ``dynamic`` deep) is a connected set where d > 0; it is
    a peak when d reaches ``dynamic`` in it: a regional maximum whose every path to higher ground
    first goes down by at least ``dynamic``. The highest hill of the map counts as well. A flat top
    whose highest value occurs at several places is still one peak.
    """
    known = hm > UNKNOWN / 2
    empty = np.zeros(0, np.float32), np.zeros(0, int), np.zeros(0, int)
    if not known.any():
        return empty
    dyn = np.float32(dynamic)
    d = hm - reconstruct_by_dilation(np.where(known, hm - dyn, UNKNOWN).astype(np.float32), hm)
    dome = known & (d > dyn * np.float32(1e-3))
    n, lab = cv2.connectedComponents(dome.astype(np.uint8), connectivity=8)
    if n <= 1:
        return empty
    flat_lab, flat_h, flat_d = lab.ravel(), hm.ravel(), d.ravel()
    sel = np.flatnonzero(flat_lab > 0)
    depth = np.zeros(n, np.float32)
    np.maximum.at(depth, flat_lab[sel], flat_d[sel])
    order = sel[np.argsort(flat_h[sel], kind="stable")]
    best = np.zeros(n, np.int64)
    best[flat_lab[order]] = order  # last (= highest) cell of each dome wins
    keep = np.flatnonzero(depth >= dyn * np.float32(0.999))
    keep = keep[keep > 0]
    best = best[keep]
    return flat_h[best], best // hm.shape[1], best % hm.shape[1]


def suppress_near_peaks(heights: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_cells: float):
    """Keep a peak only if no higher kept peak lies within ``radius_cells``: one peak per rock-sized
    neighbourhood, so that a rock whose top shows two maxima (noise, a dropout across it) still
    counts once among the soil's peaks."""
    order = np.argsort(-heights, kind="stable")
    rr, cc = rows[order].astype(float), cols[order].astype(float)
    near = (rr[:, None] - rr[None, :]) ** 2 + (cc[:, None] - cc[None, :]) ** 2 < radius_cells**2
    keep = np.ones(len(order), bool)
    for i in range(len(order)):  # greedy, highest first; a few dozen peaks at most
        if keep[i]:
            keep[i + 1 :] &= ~near[i, i + 1 :]
    sel = np.sort(order[keep])
    return heights[sel], rows[sel], cols[sel]


def envelope_offset(heights: np.ndarray, min_peaks: int, quantile: float, few_peaks: int = 2,
                    rough: bool = True) -> float:
    """Height of the soil's upper envelope above the reference the heights are measured from.

    Only on ``rough`` (grainy) soil; on smooth soil peaks are rocks, clods or the odd mixed pixel, not
    grains, and the reference stays the ground (0). On rough soil: with at least ``min_peaks`` peaks
    the ``quantile`` (0..1) of all but the highest (the highest may be the rock, and with a handful of
    grains it would carry a high quantile up to itself); with ``few_peaks`` up to ``min_peaks - 1``
    (the bucket hides most grains) their lower median (with two, the lower one); with fewer, 0 (the
    only peak may be the rock). Never below 0: the reference, a robust fit through all soil points,
    is a floor for it.
    """
    n = len(heights)
    if not rough:
        return 0.0
    if n >= max(min_peaks, 2):
        return max(0.0, float(np.quantile(np.sort(heights)[:-1], quantile)))
    if n >= max(few_peaks, 1):
        return max(0.0, float(np.sort(heights)[(n - 1) // 2]))
    return 0.0


def local_plane_rms(hm: np.ndarray, known: np.ndarray, win: int) -> np.ndarray:
    """RMS distance of the cells of each cell's ``win`` x ``win`` window from their least-squares plane
    (known cells only; inf where fewer than 80 % of the window is known).

    A flat face (any tilt) gives the depth noise left in the cell means; a grain's cap gives about
    0.2 (win * cell)^2 / (grain diameter) more: curvature shows, however the face is tilted. Box
    filters of the moments and a batched 3x3 solve: well under a millisecond on the tray's map.
    """
    shape = hm.shape
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    k = known.astype(np.float64)
    z = np.where(known, hm, 0.0).astype(np.float64)

    def box(a):
        return cv2.boxFilter(a, -1, (win, win), normalize=False, borderType=cv2.BORDER_CONSTANT)

    n, sx, sy = box(k), box(cc * k), box(rr * k)
    sxx, syy, sxy = box(cc * cc * k), box(rr * rr * k), box(cc * rr * k)
    sz, sxz, syz, szz = box(z), box(cc * z), box(rr * z), box(z * z)
    out = np.full(shape, np.inf, np.float32)
    ok = n >= max(4.0, 0.8 * win * win) - 1e-9
    if not ok.any():
        return out
    M = np.stack([np.stack([sxx[ok], sxy[ok], sx[ok]], -1), np.stack([sxy[ok], syy[ok], sy[ok]], -1),
                  np.stack([sx[ok], sy[ok], n[ok]], -1)], -2)
    b = np.stack([sxz[ok], syz[ok], sz[ok]], -1)
    # >= 80 % of a window >= 3 x 3 known: never all on a line, the normal equations are regular.
    beta = np.linalg.solve(M, b[..., None])[..., 0]
    ss = szz[ok] - np.sum(beta * b, axis=-1)
    out[ok] = np.sqrt(np.maximum(ss, 0.0) / n[ok]).astype(np.float32)
    return out
