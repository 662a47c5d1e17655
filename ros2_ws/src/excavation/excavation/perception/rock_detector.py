"""Per-frame rock detection: depth -> tray points -> ground -> height map -> blobs -> rock centre.

Ground: a robust plane through the soil points (the median surface; it absorbs a calibration tilt),
lifted to the soil's upper envelope when the soil shows grains (see heightmap.py): on soil whose
grains are as big as a coarse simulation's, the surface is the top of the grains, and grains standing
at it are not rocks. Blobs: connected cells of the height map standing at least
``min_height_above_ground`` above that ground, grown down to ``footprint_height`` (hysteresis), kept
when their size and shape fit the rock prior (area, length, width, not running along a wall).

The reported position is the rock's CENTRE in the tray frame (what the policy was trained on):
xy = mean of the occupied grid cells of the blob's upper half (each cell once, so the denser
near-camera side faces do not pull it, and grains touching the rock's foot do not either),
z = top - max(rock_half_height, protrusion / 2) where top is a high percentile of the blob's heights
and protrusion = top - ground. See PerceptionConfig.rock_half_height.

Never a made-up position: no blob that fits the prior means no position, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..contract import DEFAULT_BUCKET, BucketGeometry
from .bucket_volume import BucketPose, points_in_bucket
from .camera import CameraIntrinsics, validate_pose
from .clustering import Cluster, OccupancyGrid, mask_clusters
from .config import PerceptionConfig
from .depth import RayCache, box_roi, project_points
from .errors import PerceptionInputError
from .ground import GroundPlane, fit_ground
from .heightmap import UNKNOWN, cell_mean, envelope_offset, fill_small_holes, peak_heights, suppress_near_peaks


class Reason:
    """Why an estimate has (or lacks) a fresh rock position. Plain strings, published as they are."""

    DETECTED = "detected"
    NONE_ABOVE_GROUND = "none above ground"
    OCCLUDED_BY_BUCKET = "occluded by bucket"
    NO_VALID_DEPTH = "no valid depth in the tray"
    OUTSIDE_GATE = "detection outside the tracking gate"
    TRACK_EXPIRED = "held estimate expired"


@dataclass
class RockEstimate:
    """Rock estimate in the tray frame.

    ``position`` is the rock centre (m) or None when there is none to give (never made up).
    ``detected`` says whether this frame saw it; otherwise a tracker may hold the last position,
    ``age_s`` old. ``reason`` is a :class:`Reason` value. ``ground_height`` is the soil height at the
    tray centre (m), None without valid depth.
    """

    position: np.ndarray | None
    confidence: float
    reason: str
    ground_height: float | None
    age_s: float = 0.0
    num_points: int = 0
    detected: bool = False
    num_candidates: int = 0
    top_height: float | None = None
    ground: GroundPlane | None = None
    stamp_s: float = 0.0
    debug: dict = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {
            "position": None if self.position is None else [float(v) for v in self.position],
            "confidence": float(self.confidence),
            "reason": self.reason,
            "ground_height": self.ground_height,
            "age_s": float(self.age_s),
            "num_points": int(self.num_points),
            "detected": bool(self.detected),
            "num_candidates": int(self.num_candidates),
            "top_height": self.top_height,
            "stamp_s": float(self.stamp_s),
        }


class RockDetector:
    """Stateless apart from caches; one instance per camera."""

    def __init__(self, config: PerceptionConfig | None = None, bucket_geometry: BucketGeometry = DEFAULT_BUCKET) -> None:
        self.config = (config or PerceptionConfig()).validate()
        self.geom = bucket_geometry
        self.debug_maps = False
        """Set to keep the height map, its peaks and the blob mask in each estimate's ``debug`` (tools)."""
        self._rays = RayCache()
        cfg = self.config
        hx, hy = cfg.tray_size[0] / 2 - cfg.edge_margin, cfg.tray_size[1] / 2 - cfg.edge_margin
        self._search_lo = np.array([-hx, -hy], np.float32)
        self._search_hi = np.array([hx, hy], np.float32)
        gx, gy = cfg.tray_size[0] / 2 - cfg.ground_edge_margin, cfg.tray_size[1] / 2 - cfg.ground_edge_margin
        self._ground_half = np.array([max(gx, 0.01), max(gy, 0.01)], np.float32)
        self._grid = OccupancyGrid((-hx, -hy), (hx, hy), cfg.cell_size)
        cy, cx = np.meshgrid(np.arange(self._grid.shape[0]), np.arange(self._grid.shape[1]), indexing="ij")
        centre_x = self._grid.lo[0] + (cx + 0.5) * cfg.cell_size
        centre_y = self._grid.lo[1] + (cy + 0.5) * cfg.cell_size
        self._ground_cells = (np.abs(centre_x) <= self._ground_half[0]) & (np.abs(centre_y) <= self._ground_half[1])
        wx, wy = cfg.tray_size[0] / 2 - cfg.wall_band, cfg.tray_size[1] / 2 - cfg.wall_band
        self._wall_band = (np.abs(centre_x) > wx) | (np.abs(centre_y) > wy)

    def roi(self, intr: CameraIntrinsics, T_tray_camera: np.ndarray):
        """Image rectangle that can see the searched part of the tray (u0, v0, u1, v1) or None."""
        cfg = self.config
        lo = np.array([*self._search_lo, cfg.z_range[0]])
        hi = np.array([*self._search_hi, min(cfg.z_range[1], cfg.roi_max_height)])
        return box_roi(intr, T_tray_camera, lo, hi)

    def detect(
        self,
        depth_m: np.ndarray,
        intrinsics: CameraIntrinsics,
        T_tray_camera: np.ndarray | None,
        bucket: BucketPose | None = None,
        prior_xy: np.ndarray | None = None,
        stamp_s: float = 0.0,
    ) -> RockEstimate:
        """Detect the rock in one decoded depth image (float32 metres, 0 = no data; see depth.decode_depth).

        ``prior_xy``: last tracked rock xy; with several candidates the one nearest to it wins.
        """
        cfg = self.config
        T = validate_pose(T_tray_camera, "T_tray_camera")
        depth_m = np.asarray(depth_m)
        if depth_m.shape != (intrinsics.height, intrinsics.width):
            raise PerceptionInputError(
                f"depth image is {depth_m.shape[1] if depth_m.ndim > 1 else '?'}x{depth_m.shape[0]} but the "
                f"intrinsics say {intrinsics.width}x{intrinsics.height}"
            )
        if depth_m.dtype != np.float32:
            raise PerceptionInputError(f"depth image: detect() takes decoded float32 metres, got {depth_m.dtype}")

        def none(reason: str, ground: GroundPlane | None = None, **dbg) -> RockEstimate:
            return RockEstimate(None, 0.0, reason, None if ground is None else ground.height, ground=ground,
                                stamp_s=stamp_s, debug=dbg)

        roi = self.roi(intrinsics, T)
        if roi is None:
            return none(Reason.NO_VALID_DEPTH, roi=None)
        u0, v0, u1, v1 = roi
        sub = depth_m[v0:v1, u0:u1]
        step = cfg.decimation
        if cfg.median_ksize > 1:
            filt = cv2.medianBlur(np.ascontiguousarray(sub), cfg.median_ksize)
            # The median may fill a hole from its neighbours: keep holes holes, never invent depth.
            z = np.where(sub[::step, ::step] > 0, filt[::step, ::step], 0.0).ravel()
        else:
            z = sub[::step, ::step].ravel()
        origin, rays = self._rays.get(intrinsics, T, roi, step)
        ok = (z > cfg.min_depth) & (z < cfg.max_depth)
        idx = np.flatnonzero(ok)
        pts = origin + z[idx, None] * rays[idx]
        # Crop to the tray's search area; the bucket is looked for at any height (its wrist can hang
        # far above the band the rock lives in and still hide the tray).
        pts = pts[
            (pts[:, 0] >= self._search_lo[0]) & (pts[:, 0] <= self._search_hi[0])
            & (pts[:, 1] >= self._search_lo[1]) & (pts[:, 1] <= self._search_hi[1])
            & (pts[:, 2] >= cfg.z_range[0])
        ]
        if bucket is not None and len(pts):
            in_bucket = points_in_bucket(pts, bucket, self.geom, cfg.bucket_margin, cfg.arm_radius)
        else:
            in_bucket = np.zeros(len(pts), bool)
        n_bucket = int(in_bucket.sum())
        band = pts[:, 2] <= cfg.z_range[1]
        pts, in_bucket = pts[band], in_bucket[band]
        soil = pts[~in_bucket]
        gmask = (np.abs(soil[:, 0]) <= self._ground_half[0]) & (np.abs(soil[:, 1]) <= self._ground_half[1])
        if int(gmask.sum()) < cfg.min_ground_points:
            reason = Reason.OCCLUDED_BY_BUCKET if n_bucket >= cfg.min_ground_points else Reason.NO_VALID_DEPTH
            return none(reason, roi=roi, num_points=len(pts), num_bucket_points=n_bucket)
        ground = fit_ground(soil[gmask], cfg.ground_model, cfg.ground_fit_max_points, cfg.ground_fit_iterations,
                            cfg.ground_inlier_sigma, cfg.ground_inlier_min, cfg.ground_max_slope)

        # Height map (mean height per cell, above the fitted plane) and the soil's upper envelope.
        h = soil[:, 2] - ground.height_at(soil[:, 0], soil[:, 1])
        below_arm = h < cfg.max_height_above_ground
        soil, h = soil[below_arm], h[below_arm]
        iy, ix = self._grid.cells(soil[:, :2])
        hm = fill_small_holes(cell_mean(iy, ix, h, self._grid.shape))
        # Peaks of the soil only: clear of the walls (wall tops, mixed pixels at the walls) and of the
        # bucket (mixed pixels at its edges).
        soil_cells = self._ground_cells
        if n_bucket:
            near_bucket = cv2.dilate(self._grid.occupancy(pts[in_bucket, :2]), np.ones((3, 3), np.uint8))
            soil_cells = soil_cells & (near_bucket == 0)
        peaks, prow, pcol = suppress_near_peaks(*peak_heights(np.where(soil_cells, hm, UNKNOWN), cfg.peak_min_dynamic),
                                                0.5 * cfg.rock_nominal_size / cfg.cell_size)
        env = envelope_offset(peaks, cfg.envelope_min_peaks, cfg.envelope_quantile,
                              rough=ground.residual_std >= cfg.envelope_rough_sigma)
        ground = replace(ground, c=ground.c + env)
        rel = hm - np.float32(env)
        # Hysteresis: a blob is the connected part of the map above the footprint height that holds
        # cells above the detection height; its full footprint (not only its top) gives the size
        # checks and the centre.
        seed = rel >= cfg.min_height_above_ground
        mask = (rel >= cfg.footprint_height).astype(np.uint8)
        if cfg.footprint_height < cfg.min_height_above_ground:
            n_lab, lab = cv2.connectedComponents(mask, connectivity=8)
            has_seed = np.zeros(n_lab, bool)
            has_seed[lab[seed]] = True
            has_seed[0] = False
            mask = has_seed[lab].astype(np.uint8)
        rel_pts = h - env
        pick = (rel_pts >= cfg.footprint_height) & (mask[iy, ix] > 0)
        above = soil[pick]
        above_high = rel_pts[pick] >= cfg.min_height_above_ground
        above_cells = (iy[pick], ix[pick])
        excl = None
        if n_bucket:
            bp = pts[in_bucket]
            hb = bp[:, 2] - ground.height_at(bp[:, 0], bp[:, 1])
            bxy = bp[hb > cfg.min_height_above_ground, :2]
            if len(bxy):
                excl = self._grid.occupancy(bxy)
        clusters = mask_clusters(mask, self._grid.cell, above_cells, cfg.close_iterations, excl, self._wall_band)
        cands = [c for c in clusters if self._rock_like(c)]
        dbg = {"roi": roi, "num_points": len(pts), "num_bucket_points": n_bucket, "num_clusters": len(clusters),
               "envelope_offset": env, "num_peaks": len(peaks)}
        if self.debug_maps:
            dbg.update(height_map=hm, peaks=(peaks, prow, pcol), mask=mask, plane=ground)
        if not cands:
            occluded = n_bucket >= cfg.min_cluster_points
            if occluded and prior_xy is not None:
                # With a last known position, blame the bucket only if it is what the camera sees there
                # (or the rock sits inside its volume); else the rock has really gone from the soil.
                pxy = np.asarray(prior_xy, dtype=float)[:2]
                prior = np.array([pxy[0], pxy[1], float(ground.height_at(pxy[0], pxy[1]))])
                occluded = bool(points_in_bucket(prior[None], bucket, self.geom, cfg.bucket_margin, cfg.arm_radius)[0]) \
                    or self._hidden_at(depth_m, intrinsics, T, prior)
            return none(Reason.OCCLUDED_BY_BUCKET if occluded else Reason.NONE_ABOVE_GROUND, ground, **dbg)

        # Centre from the blob's upper half (above halfway between the ground and its top): the whole
        # rock there, whatever grains touch its lower part.
        above_rel = rel_pts[pick]
        centres = []
        for k in cands:
            r = above_rel[k.indices]
            level = max(cfg.footprint_height, 0.5 * float(np.percentile(r, cfg.top_percentile)))
            sel = k.indices[r >= level]
            centres.append(self._cell_centroid(above, sel if len(sel) >= 3 else k.indices))
        best = max(range(len(cands)), key=lambda i: cands[i].area)
        if prior_xy is not None and len(cands) > 1:
            d = [float(np.hypot(*(cxy - np.asarray(prior_xy)[:2]))) for cxy in centres]
            near = int(np.argmin(d))
            if d[near] <= cfg.prior_gate:
                best = near
        c = cands[best]
        xy = centres[best]
        hi = c.indices[above_high[c.indices]]
        cz = above[hi if len(hi) else c.indices, 2]
        top = float(np.percentile(cz, cfg.top_percentile))
        g = float(ground.height_at(xy[0], xy[1]))
        protrusion = top - g
        zc = top - max(cfg.rock_half_height, protrusion / 2)

        # Confidence: enough of a rock-sized blob, standing clearly out of the soil, unambiguous,
        # not clipped by the bucket. Each factor in [0, 1]; the tracker weighs detections by it.
        size_score = min(1.0, c.area / (0.5 * cfg.rock_nominal_size**2))
        height_score = min(1.0, protrusion / (2 * cfg.min_height_above_ground))
        ambiguity = c.area / sum(k.area for k in cands)
        # A blob against the bucket may be only the visible sliver of a rock under it, its centroid
        # off by up to half a rock: trust it in proportion to how much of a whole rock it shows.
        touch = 0.8 * min(1.0, c.area / cfg.rock_nominal_size**2) if c.touches else 1.0
        conf = float(np.clip(size_score * height_score * ambiguity * touch, 0.0, 1.0))
        return RockEstimate(
            np.array([xy[0], xy[1], zc]), conf, Reason.DETECTED, ground.height, 0.0, len(c.indices), True,
            len(cands), top, ground, stamp_s, dbg,
        )

    def _hidden_at(self, depth_m: np.ndarray, intr: CameraIntrinsics, T: np.ndarray, p: np.ndarray) -> bool:
        """Whether something stands well in front of tray point ``p`` in the image (most pixels around it)."""
        uv, zc = project_points(p[None], intr, T)
        u, v = uv[0]
        if not (zc[0] > 0 and 0 <= u < intr.width and 0 <= v < intr.height):
            return False
        r = max(2, int(0.25 * self.config.rock_nominal_size * intr.fx / zc[0]))  # half the rock's width
        win = depth_m[max(int(v) - r, 0) : int(v) + r + 1, max(int(u) - r, 0) : int(u) + r + 1]
        win = win[win > 0]
        margin = self.config.rock_nominal_size  # the rock's own top is nearer than its centre by less
        return len(win) > 0 and float(np.mean(win < zc[0] - margin)) >= 0.5

    def _rock_like(self, c: Cluster) -> bool:
        cfg = self.config
        return (
            len(c.indices) >= cfg.min_cluster_points
            and c.area >= cfg.min_cluster_area
            and c.length <= cfg.max_cluster_extent
            and c.width >= cfg.min_cluster_width
            and c.band_fraction <= cfg.max_wall_fraction
        )

    def _cell_centroid(self, pts: np.ndarray, indices: np.ndarray) -> np.ndarray:
        p = pts[indices, :2]
        iy, ix = self._grid.cells(p)
        flat = iy.astype(np.int64) * self._grid.shape[1] + ix
        uniq, inv = np.unique(flat, return_inverse=True)
        cnt = np.bincount(inv).astype(np.float64)
        mx = np.bincount(inv, weights=p[:, 0]) / cnt
        my = np.bincount(inv, weights=p[:, 1]) / cnt
        return np.array([mx.mean(), my.mean()])


def with_tray_size(config: PerceptionConfig, tray_size) -> PerceptionConfig:
    """The config with the calibrated tray size."""
    return replace(config, tray_size=(float(tray_size[0]), float(tray_size[1]))).validate()
