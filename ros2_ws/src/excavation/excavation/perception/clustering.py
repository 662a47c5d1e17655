"""Clustering of above-ground cells of the tray's height map.

Connected components of a 2-D cell mask (OpenCV, C speed) instead of DBSCAN on 3-D points: the
rock is a compact blob seen from above, a few hundred points become a few hundred cells, and the
whole step costs well under a millisecond. Each blob comes with its size and shape (area, bounding
box, minimum-area rectangle, share of cells in a band such as the strip along the tray walls).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Cluster:
    """One connected blob of above-ground points."""

    label: int
    indices: np.ndarray  # into the points given to mask_clusters (point_cells)
    num_cells: int  # occupied cells (after closing)
    area: float  # m^2
    extent: tuple[float, float]  # bounding box along tray x, y (m)
    touches: bool = False  # touches the cells of an excluded region (the bucket)
    length: float = 0.0  # long side of the blob's minimum-area rectangle (m), any orientation
    width: float = 0.0  # short side of that rectangle (m)
    band_fraction: float = 0.0  # fraction of its cells in the ``band`` image given to mask_clusters


class OccupancyGrid:
    """Square cells over the rectangle [lo, hi] of the tray's xy plane."""

    def __init__(self, lo: tuple[float, float], hi: tuple[float, float], cell: float) -> None:
        self.lo = np.asarray(lo, dtype=np.float64)
        self.cell = float(cell)
        self.shape = (int(np.ceil((hi[1] - lo[1]) / cell)) + 1, int(np.ceil((hi[0] - lo[0]) / cell)) + 1)

    def cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ix = np.clip(((xy[:, 0] - self.lo[0]) / self.cell).astype(np.int32), 0, self.shape[1] - 1)
        iy = np.clip(((xy[:, 1] - self.lo[1]) / self.cell).astype(np.int32), 0, self.shape[0] - 1)
        return iy, ix

    def occupancy(self, xy: np.ndarray) -> np.ndarray:
        grid = np.zeros(self.shape, np.uint8)
        if len(xy):
            iy, ix = self.cells(xy)
            grid[iy, ix] = 1
        return grid


def mask_clusters(
    mask: np.ndarray,
    cell: float,
    point_cells: tuple[np.ndarray, np.ndarray],
    close_iterations: int = 1,
    exclude: np.ndarray | None = None,
    band: np.ndarray | None = None,
    labels_out: list | None = None,
) -> list[Cluster]:
    """Connected blobs (8-connected) of a cell mask (uint8), with the points lying in each.

    ``point_cells``: (row, col) of the points the clusters' ``indices`` refer to; ``exclude``: an
    occupancy image of cells (the bucket) whose contact a blob reports as ``touches``; ``band``: a
    boolean image (e.g. the strip along the tray walls) whose share of each blob's cells is reported;
    ``labels_out``: a list that receives the label image (the clusters' ``label`` values, 0 = none).
    """
    occ = mask
    if close_iterations > 0:
        occ = cv2.morphologyEx(occ, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8), iterations=close_iterations)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(occ, connectivity=8)
    if labels_out is not None:
        labels_out.append(labels)
    if n <= 1:
        return []
    iy, ix = point_cells
    point_label = labels[iy, ix]
    order = np.argsort(point_label, kind="stable")
    bounds = np.searchsorted(point_label[order], np.arange(n + 1))
    touching = np.zeros(n, bool)
    if exclude is not None and exclude.any():
        ex = cv2.dilate(exclude, np.ones((3, 3), np.uint8))
        touching[np.unique(labels[ex > 0])] = True
    out = []
    c2 = cell**2
    for lab in range(1, n):
        idx = order[bounds[lab] : bounds[lab + 1]]
        if len(idx) == 0:
            continue
        x0, y0 = stats[lab, cv2.CC_STAT_LEFT], stats[lab, cv2.CC_STAT_TOP]
        w, h = stats[lab, cv2.CC_STAT_WIDTH], stats[lab, cv2.CC_STAT_HEIGHT]
        cells = np.argwhere(labels[y0 : y0 + h, x0 : x0 + w] == lab).astype(np.float32)
        # Cell corners, so that a single cell measures one cell by one cell.
        corners = (cells[:, None, ::-1] + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)).reshape(-1, 2)
        (_, _), (rw, rh), _ = cv2.minAreaRect(corners)
        frac = 0.0
        if band is not None:
            frac = float(band[y0 : y0 + h, x0 : x0 + w][labels[y0 : y0 + h, x0 : x0 + w] == lab].mean())
        out.append(Cluster(lab, idx, int(stats[lab, cv2.CC_STAT_AREA]), float(stats[lab, cv2.CC_STAT_AREA] * c2),
                           (float(w * cell), float(h * cell)), bool(touching[lab]),
                           float(max(rw, rh) * cell), float(min(rw, rh) * cell), frac))
    return out
