"""Clustering of above-ground points on a tray-plane occupancy grid.

Connected components of a 2-D occupancy map (OpenCV, C speed) instead of DBSCAN on 3-D points: the
rock is a compact blob seen from above, a few hundred points become a few hundred cells, and the
whole step costs well under a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Cluster:
    """One connected blob of above-ground points."""

    label: int
    indices: np.ndarray  # into the points given to grid_clusters
    num_cells: int  # occupied cells (after closing)
    area: float  # m^2
    extent: tuple[float, float]  # bounding box along tray x, y (m)
    touches: bool = False  # touches the cells of an excluded region (the bucket)


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


def grid_clusters(
    xy: np.ndarray,
    grid: OccupancyGrid,
    close_iterations: int = 1,
    exclude_xy: np.ndarray | None = None,
) -> list[Cluster]:
    """Connected blobs (8-connected) of the points' cells; ``exclude_xy`` marks cells to report contact with."""
    if len(xy) == 0:
        return []
    occ = grid.occupancy(xy)
    if close_iterations > 0:
        occ = cv2.morphologyEx(occ, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8), iterations=close_iterations)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(occ, connectivity=8)
    iy, ix = grid.cells(xy)
    point_label = labels[iy, ix]
    order = np.argsort(point_label, kind="stable")
    bounds = np.searchsorted(point_label[order], np.arange(n + 1))
    touching = np.zeros(n, bool)
    if exclude_xy is not None and len(exclude_xy):
        ex = cv2.dilate(grid.occupancy(exclude_xy), np.ones((3, 3), np.uint8))
        touching[np.unique(labels[ex > 0])] = True
    out = []
    c2 = grid.cell**2
    for lab in range(1, n):
        idx = order[bounds[lab] : bounds[lab + 1]]
        if len(idx) == 0:
            continue
        w, h = stats[lab, cv2.CC_STAT_WIDTH], stats[lab, cv2.CC_STAT_HEIGHT]
        out.append(
            Cluster(lab, idx, int(stats[lab, cv2.CC_STAT_AREA]), float(stats[lab, cv2.CC_STAT_AREA] * c2),
                    (float(w * grid.cell), float(h * grid.cell)), bool(touching[lab]))
        )
    return out
