"""Per-frame rock detection: depth -> tray points -> ground -> height map -> candidates -> the rock.

Shared by both soil kinds: the tray's points (median-filtered, decimated, cropped to the tray), the
bucket's and the wrist's points removed (the bucket's full 6-DoF pose and the cell's bucket geometry),
a robust plane through the soil, a height map of 5 mm cells above it. Then, by the soil's grain size
(``PerceptionConfig.soil_grain_size``):

* fine soil (grains much smaller than a rock; real soil): the ground is local -- the plane plus a
  smooth correction refitted with the candidates left out -- and a rock is a blob standing above it by
  height, a steep edge and footprint, whatever its shape (fine_soil.py);
* coarse soil (grains as big as the rocks: a coarse simulation): the ground is the grains' upper
  envelope and a blob whose top is a spherical cap is a grain (heightmap.py, shape.py); flat faces level
  with the grains are rocks too (``flat_top_*``).

Rock in the bucket: points inside the bucket's load space standing above the ground make the estimate
``in_bucket`` (reason "rock in bucket", position = the load's), and blobs against the bucket are then
never reported as rocks on the soil.

Every candidate is reported (``RockEstimate.candidates``); the one to dig is chosen by the rule in
candidates.py. Its position is the rock's CENTRE in the tray frame (what the policy was trained on):
xy = mean of the occupied grid cells of the blob's upper half (each cell once, so the denser
near-camera side faces do not pull it, and grains touching the rock's foot do not either; a flat
face: its cells' mean moved half a rock behind the face, along its normal),
z = top - max(rock_half_height, protrusion / 2) where top is a high percentile of the blob's heights
and protrusion = top - ground. See PerceptionConfig.rock_half_height.

Never a made-up position: no blob that fits the prior means no position, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from excavation_contract import DEFAULT_BUCKET, BucketGeometry
from .bucket_volume import BucketPose, points_ahead_of_tips, points_in_bucket, points_in_load
from .candidates import RockCandidate, choose
from .camera import CameraIntrinsics, validate_pose
from .clustering import Cluster, OccupancyGrid, mask_clusters
from .config import PerceptionConfig
from .depth import RayCache, box_roi, project_points
from .errors import PerceptionInputError
from .fine_soil import FOOTPRINT_NOISE_FACTOR, blob_features, fit_local_ground, hysteresis, occlusion_aware_centre
from .ground import GroundPlane, fit_ground, quantile, robust_sigma
from .local_ground import LocalGround
from .heightmap import (
    UNKNOWN,
    cell_mean,
    envelope_offset,
    fill_small_holes,
    local_plane_rms,
    peak_heights,
    suppress_near_peaks,
)
from .shape import top_shape


MIN_SHAPE_CELLS = 12
"""A blob's top is judged (sphere or not) on at least this many cells: a 4-parameter sphere fits
any handful of cells."""


RAY_TOP = 0.3
"""Rays are followed up to this much (m) above ``z_range``'s top: the wrist and forearm over the tray."""

BRIDGE_CELLS = 3
"""Fine soil: gaps of up to this many cells without data inside a blob are bridged (tines, 8 mm, seen
from 0.4-1 m with their shadow; a dropout band)."""

MAX_EXTENT_FACTOR = 1.25
"""Fine soil: a candidate longer than this times the largest rock (``rock_size_range``) is a heap, a
wall or the arm, not a rock. A rock's outline seen from above is longer than its longest side when it
lies diagonally (a 120 x 100 mm box: 156 mm corner to corner; its footprint's rectangle less)."""


class Reason:
    """Why an estimate has (or lacks) a fresh rock position. Plain strings, published as they are."""

    DETECTED = "detected"
    NONE_ABOVE_GROUND = "none above ground"
    OCCLUDED_BY_BUCKET = "occluded by bucket"
    NO_VALID_DEPTH = "no valid depth in the tray"
    OUTSIDE_GATE = "detection outside the tracking gate"
    TRACK_EXPIRED = "held estimate expired"
    IN_BUCKET = "rock in bucket"


@dataclass
class RockEstimate:
    """Rock estimate in the tray frame.

    ``position`` is the rock centre (m) or None when there is none to give (never made up).
    ``detected`` says whether this frame saw it; otherwise a tracker may hold the last position,
    ``age_s`` old. ``reason`` is a :class:`Reason` value. ``ground_height`` is the soil height at the
    tray centre (m), None without valid depth. ``in_bucket``: the rock is in the bucket (``position`` is
    then the load's). ``candidates``: every rock seen on the soil, ``chosen`` the index of the one
    ``position`` comes from (None when it does not come from a candidate).
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
    ground: GroundPlane | LocalGround | None = None
    stamp_s: float = 0.0
    debug: dict = field(default_factory=dict, repr=False)
    in_bucket: bool = False
    candidates: list[RockCandidate] = field(default_factory=list)
    chosen: int | None = None

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
            "in_bucket": bool(self.in_bucket),
            "candidates": [c.as_dict() for c in self.candidates],
            "chosen": self.chosen,
        }


class RockDetector:
    """Stateless apart from caches; one instance per camera."""

    def __init__(self, config: PerceptionConfig | None = None, bucket_geometry: BucketGeometry = DEFAULT_BUCKET) -> None:
        self.config = (config or PerceptionConfig()).validate()
        self.geom = bucket_geometry
        self.debug_maps = False
        """Set to keep the height map, its peaks and the blob mask in each estimate's ``debug`` (tools)."""
        self._rays = RayCache()
        self._ray_sel: tuple | None = None
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

        def none(reason: str, ground=None, **dbg) -> RockEstimate:
            return RockEstimate(None, 0.0, reason, None if ground is None else ground.height, ground=ground,
                                stamp_s=stamp_s, debug=dbg)

        roi = self.roi(intrinsics, T)
        if roi is None:
            return none(Reason.NO_VALID_DEPTH, roi=None)
        u0, v0, u1, v1 = roi
        sub = depth_m[v0:v1, u0:u1]
        step = cfg.decimation
        if cfg.median_ksize > 1 and step >= 2 and not cfg.coarse_soil:
            # Decimated first, then a 3x3 median: each output sees 9 samples spread over the 2-3x
            # wider window a full-resolution median would, at a tenth of its cost.
            dec = np.ascontiguousarray(sub[::step, ::step])
            filt = cv2.medianBlur(dec, 3)
            # The median may fill a hole from its neighbours: keep holes holes, never invent depth.
            z = np.where(dec > 0, filt, 0.0).ravel()
        elif cfg.median_ksize > 1:
            filt = cv2.medianBlur(np.ascontiguousarray(sub), cfg.median_ksize)
            z = np.where(sub[::step, ::step] > 0, filt[::step, ::step], 0.0).ravel()
        else:
            z = sub[::step, ::step].ravel()
        origin, rays = self._rays.get(intrinsics, T, roi, step)
        sel, rays = self._rays_over_tray(origin, rays)
        z = z[sel].astype(np.float32, copy=False)
        # All rays at once (no data gives the camera's origin), then one crop: the valid depth range
        # and the tray's search area; the bucket is looked for at any height (its wrist can hang far
        # above the band the rock lives in and still hide the tray).
        px = origin[0] + z * rays[:, 0]
        py = origin[1] + z * rays[:, 1]
        pz = origin[2] + z * rays[:, 2]
        keep = (z > cfg.min_depth) & (z < cfg.max_depth) & (pz >= cfg.z_range[0])
        keep &= (px >= self._search_lo[0]) & (px <= self._search_hi[0])
        keep &= (py >= self._search_lo[1]) & (py <= self._search_hi[1])
        pts = np.stack([px[keep], py[keep], pz[keep]], axis=1)
        if bucket is not None and len(pts):
            in_bucket = points_in_bucket(pts, bucket, self.geom, cfg.bucket_margin, cfg.arm_radius,
                                         cfg.bucket_tip_margin)
            load = points_in_load(pts, bucket, self.geom, cfg.load_margin)
            ahead = points_ahead_of_tips(pts, bucket, self.geom, 0.5 * cfg.rock_size_range[1], cfg.load_margin)
        else:
            in_bucket = np.zeros(len(pts), bool)
            load = ahead = in_bucket
        n_bucket = int(in_bucket.sum())
        load_pts, ahead_pts = pts[load], pts[ahead]
        band = pts[:, 2] <= cfg.z_range[1]
        bucket_pts = pts[in_bucket & band] if n_bucket else pts[:0]
        soil = pts[band & ~in_bucket]
        n_points = int(band.sum())
        gidx = np.flatnonzero((np.abs(soil[:, 0]) <= self._ground_half[0]) & (np.abs(soil[:, 1]) <= self._ground_half[1]))
        if len(gidx) < cfg.min_ground_points:
            if self._is_load(load_pts):  # the bucket fills the view, a rock in it
                return self._in_bucket(load_pts, None, bucket, [], stamp_s, {"roi": roi})
            reason = Reason.OCCLUDED_BY_BUCKET if n_bucket >= cfg.min_ground_points else Reason.NO_VALID_DEPTH
            return none(reason, roi=roi, num_points=n_points, num_bucket_points=n_bucket)
        # A regular subsample (fit_ground would take one anyway) before copying any point.
        gidx = gidx[:: max(1, len(gidx) // cfg.ground_fit_max_points)]
        plane = fit_ground(soil[gidx], cfg.ground_model, cfg.ground_fit_max_points, cfg.ground_fit_iterations,
                           cfg.ground_inlier_sigma, cfg.ground_inlier_min, cfg.ground_max_slope)

        # Height map (mean height per cell, above the fitted plane).
        h = soil[:, 2] - plane.height_at(soil[:, 0], soil[:, 1])
        below_arm = h < cfg.max_height_above_ground
        soil, h = soil[below_arm], h[below_arm]
        iy, ix = self._grid.cells(soil[:, :2])
        hm = fill_small_holes(cell_mean(iy, ix, h, self._grid.shape))
        # Soil cells for the ground: clear of the walls (wall tops, mixed pixels at the walls) and of
        # the bucket (mixed pixels at its edges).
        soil_cells = self._ground_cells
        near_bucket = excl = None
        if n_bucket:
            occ = self._grid.occupancy(bucket_pts[:, :2])
            near_bucket = cv2.dilate(occ, np.ones((3, 3), np.uint8)) > 0
            soil_cells = soil_cells & ~near_bucket
            excl = occ
        pc = _Points(soil, h, iy, ix, hm, soil_cells, near_bucket, excl)
        if cfg.coarse_soil:
            ground, rel_pts, cands, dbg = self._coarse(plane, pc, bucket_pts if n_bucket else None)
        else:
            ground, rel_pts, cands, dbg = self._fine(plane, pc)
        dbg.update(roi=roi, num_points=n_points, num_bucket_points=n_bucket)
        found = self._candidates(soil, rel_pts, ground, cands)
        if len(load_pts):
            hl = load_pts[:, 2] - ground.height_at(load_pts[:, 0], load_pts[:, 1])
            load_pts = load_pts[hl >= cfg.min_height_above_ground]
            ha = ahead_pts[:, 2] - ground.height_at(ahead_pts[:, 0], ahead_pts[:, 1])
            n_ahead = int((ha >= cfg.min_height_above_ground).sum())
            # As much of it again just ahead of the tips: a rock the tines are sliding under, its centre
            # still ahead of them -- on the soil, not yet in the bucket.
            if self._is_load(load_pts) and n_ahead < len(load_pts):
                # The rock is in the bucket: what stands out against the bucket is that rock (its
                # part outside the load space) or the bucket's own edges, never a rock on the soil.
                found = [f for f in found if not f.touches_bucket]
                return self._in_bucket(load_pts, ground, bucket, found, stamp_s, dbg)
        if not found:
            occluded = n_bucket >= cfg.min_cluster_points
            if occluded and prior_xy is not None:
                # With a last known position, blame the bucket only if it is what the camera sees there
                # (or the rock sits inside its volume); else the rock has really gone from the soil.
                pxy = np.asarray(prior_xy, dtype=float)[:2]
                prior = np.array([pxy[0], pxy[1], float(ground.height_at(pxy[0], pxy[1]))])
                occluded = bool(points_in_bucket(prior[None], bucket, self.geom, cfg.bucket_margin, cfg.arm_radius,
                                                 cfg.bucket_tip_margin)[0]) \
                    or self._hidden_at(depth_m, intrinsics, T, prior)
            return none(Reason.OCCLUDED_BY_BUCKET if occluded else Reason.NONE_ABOVE_GROUND, ground, **dbg)
        best = choose(found, prior_xy, cfg.prior_gate, cfg.candidate_tie,
                      None if bucket is None else bucket.tip_xyz)
        c = found[best]
        return RockEstimate(
            c.position.copy(), c.confidence, Reason.DETECTED, ground.height, 0.0, c.num_points, True, len(found),
            c.top, ground, stamp_s, dbg, candidates=found, chosen=best,
        )

    def _rays_over_tray(self, origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
        """(indices, rays) of the rays that pass over the tray's search area somewhere between the lowest
        height looked at and RAY_TOP above the highest (the wrist over the tray): the other pixels of
        the ROI (walls, table, beyond) are never back-projected. Cached per ray set."""
        if self._ray_sel is not None and self._ray_sel[0] is rays:
            return self._ray_sel[1], self._ray_sel[2]
        cfg = self.config
        ends = []
        for zp in (cfg.z_range[0], cfg.z_range[1] + RAY_TOP):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (zp - origin[2]) / rays[:, 2]
            ends.append(origin[None, :2] + t[:, None] * rays[:, :2])
        lo, hi = np.minimum(*ends), np.maximum(*ends)
        ok = np.all((hi >= self._search_lo) & (lo <= self._search_hi), axis=1) & np.all(np.isfinite(lo), axis=1)
        sel = np.flatnonzero(ok)
        self._ray_sel = (rays, sel, np.ascontiguousarray(rays[sel]))
        return self._ray_sel[1], self._ray_sel[2]

    # -- candidates on fine soil ---------------------------------------------------------------

    def _fine(self, plane: GroundPlane, pc: "_Points"):
        """Local ground and the blobs standing out of it by height and a steep edge (fine_soil.py)."""
        cfg = self.config
        known = pc.hm > UNKNOWN / 2
        ground, rel, seed, slope, excl = fit_local_ground(pc.hm, known, pc.soil_cells & known, plane,
                                                          tuple(self._grid.lo), cfg)
        rel_pts = pc.h - ground.correction[pc.iy, pc.ix]
        low = max(cfg.footprint_height, FOOTPRINT_NOISE_FACTOR * ground.residual_std)
        n, lab = hysteresis(rel, seed, low, known)
        mask = (lab > 0).astype(np.uint8)
        # A rock seen between the tines (or through a dropout band) shows as strips with no data
        # between them: bridge gaps of up to BRIDGE_CELLS of unknown cells, so it is one blob.
        closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((BRIDGE_CELLS + 2,) * 2, np.uint8))
        mask = np.where(known, mask, closed).astype(np.uint8)
        pick = (rel_pts >= low) & (mask[pc.iy, pc.ix] > 0)
        labels: list = []
        clusters = mask_clusters(mask, self._grid.cell, (pc.iy[pick], pc.ix[pick]), cfg.close_iterations, pc.excl,
                                 self._wall_band, labels)
        verdicts = []
        tops, edges = blob_features(rel, slope, labels[0], int(labels[0].max()) if clusters else 0, known)
        max_extent = MAX_EXTENT_FACTOR * cfg.rock_size_range[1]
        for c in clusters:
            top, edge = float(tops[c.label]), float(edges[c.label])
            info = {"top": top, "edge_slope": edge}
            if not (len(c.indices) >= cfg.min_cluster_points and c.area >= cfg.min_visible_area
                    and c.length <= max_extent and c.width >= cfg.min_visible_width
                    and c.band_fraction <= cfg.max_wall_fraction):
                verdicts.append(("size", info))
            elif top < seed:
                verdicts.append(("low", info))
            elif top < cfg.max_soil_relief and edge < cfg.min_edge_slope:
                verdicts.append(("gentle edge: soil relief", info))
            else:
                verdicts.append(("rock", info))
        cands = []
        radius_range = (0.25 * cfg.rock_size_range[0], 0.6 * cfg.rock_size_range[1])
        for c, v in zip(clusters, verdicts):
            if v[0] == "rock":
                centre = None
                if pc.excl is not None:  # the bucket may hide part of it: the visible part's centroid is off
                    centre = occlusion_aware_centre(labels[0] == c.label, known, tuple(self._grid.lo),
                                                    cfg.cell_size, radius_range)
                v[1]["outline_centre"] = centre is not None
                cands.append((c, pick, False, centre, True))
        dbg = {"soil": "fine", "seed_height": seed, "roughness": ground.residual_std, "num_clusters": len(clusters),
               "clusters": [{"area": c.area, "length": c.length, "width": c.width, "touches": c.touches,
                             "verdict": v[0], **v[1]} for c, v in zip(clusters, verdicts)]}
        if self.debug_maps:
            dbg.update(height_map=pc.hm, rel=rel, slope=slope, excluded=excl, mask=mask, labels=labels[0])
        return ground, rel_pts, cands, dbg

    # -- candidates on coarse soil -------------------------------------------------------------

    def _coarse(self, plane: GroundPlane, pc: "_Points", bucket_pts: np.ndarray | None):
        """The grains' upper envelope as ground; blobs above it that are not a grain's spherical cap;
        flat faces level with the grains."""
        cfg = self.config
        hm, soil_cells, near_bucket = pc.hm, pc.soil_cells, pc.near_bucket
        iy, ix = pc.iy, pc.ix
        peaks, prow, pcol = suppress_near_peaks(*peak_heights(np.where(soil_cells, hm, UNKNOWN), cfg.peak_min_dynamic),
                                                0.5 * cfg.rock_nominal_size / cfg.cell_size)
        # Rough soil: the plane's inliers scatter; or the height map does and shows many peaks -- a
        # large flat rock can hold the robust plane on itself and leave the grains around it as
        # outliers (a heap on smooth soil spreads the heights too, but makes no field of peaks).
        rough = plane.residual_std >= cfg.envelope_rough_sigma
        if not rough and len(peaks) >= cfg.envelope_min_peaks:
            cells = hm[soil_cells & (hm > UNKNOWN / 2)]
            rough = len(cells) >= 10 and robust_sigma(cells) >= cfg.envelope_rough_sigma
        env = envelope_offset(peaks, cfg.envelope_min_peaks, cfg.envelope_quantile, rough=rough)
        ground = replace(plane, c=plane.c + env)
        rel = hm - np.float32(env)
        granular = bool(env > 0.0)  # rough soil, the ground lifted to the envelope of its grains
        excl = None
        if bucket_pts is not None:
            hb = bucket_pts[:, 2] - ground.height_at(bucket_pts[:, 0], bucket_pts[:, 1])
            bxy = bucket_pts[hb > cfg.min_height_above_ground, :2]
            if len(bxy):
                excl = self._grid.occupancy(bxy)
        rel_pts = pc.h - env

        # Blobs standing out: the connected part of the map above the footprint height that holds
        # cells min_height_above_ground above the ground (hysteresis); the full footprint (not only
        # the top) gives the size checks and the centre. A soil grain's spherical cap is no rock.
        _, lab = hysteresis(rel, cfg.min_height_above_ground, cfg.footprint_height, np.ones(rel.shape, bool))
        mask = (lab > 0).astype(np.uint8)
        pick = (rel_pts >= cfg.footprint_height) & (mask[iy, ix] > 0)
        labels: list = []
        clusters = mask_clusters(mask, self._grid.cell, (iy[pick], ix[pick]), cfg.close_iterations, excl,
                                 self._wall_band, labels)
        verdicts = [self._verdict(c, rel, labels[0], near_bucket) for c in clusters]
        cands = [(c, pick, False) for c, v in zip(clusters, verdicts) if v[0] == "rock"]
        flat = None
        if not cands and granular and cfg.flat_top_window > 0:
            # On granular soil a rock may lie level with the grains' tops (or tilted, its face
            # running from under the envelope to above it): no height tells it from the grains, but
            # its face is flat where the grains are domes (see PerceptionConfig.flat_top_max_rms).
            flat = self._flat_tops(rel, soil_cells)
            if flat.any():
                fpick = flat[iy, ix]
                fl_labels: list = []
                fl = mask_clusters(flat.astype(np.uint8), self._grid.cell, (iy[fpick], ix[fpick]), 0, excl,
                                   self._wall_band, fl_labels)
                for c in fl:
                    v = self._flat_verdict(c)
                    clusters.append(c)
                    verdicts.append((v, {"flat_top": True}))
                    if v == "rock":
                        cands.append((c, fpick, True))
        dbg = {"soil": "coarse", "num_clusters": len(clusters), "envelope_offset": env, "num_peaks": len(peaks),
               "granular": granular,
               "clusters": [{"area": c.area, "length": c.length, "width": c.width, "touches": c.touches,
                             "verdict": v[0], **v[1]} for c, v in zip(clusters, verdicts)]}
        if self.debug_maps:
            dbg.update(height_map=hm, peaks=(peaks, prow, pcol), mask=mask, plane=ground, labels=labels[0],
                       flat_tops=flat)
        return ground, rel_pts, cands, dbg

    # -- from blobs to rocks -------------------------------------------------------------------

    def _candidates(self, soil: np.ndarray, rel_pts: np.ndarray, ground, cands) -> list["_Found"]:
        """Centre, protrusion and confidence of each blob judged a rock."""
        cfg = self.config
        out = []
        picked: dict[int, tuple] = {}  # the candidates of one kind share their pick mask: index once
        for c, kpick, is_flat, *extra in cands:
            outline_xy, whole = (extra + [None, False])[:2]
            if id(kpick) not in picked:
                picked[id(kpick)] = (soil[kpick], rel_pts[kpick])
            kp, kr = picked[id(kpick)]
            # Centre from the blob's upper half (above halfway between the ground and its top): the
            # whole rock there, whatever grains touch its lower part. A flat top: its whole face, and
            # the rock's centre half a rock behind it along its normal (a tilted face's own centre is
            # off the rock's by up to half the rock's size, downhill).
            if is_flat:
                xy, n = self._cell_centroid(kp, c.indices, with_normal=True)
                xy = xy - cfg.rock_half_height * n[:2]
            elif outline_xy is not None:
                xy = outline_xy  # part of it hidden by the bucket: where its whole outline puts it (fine_soil.py)
            elif whole:
                # Fine soil: nothing but the rock stands out there, and its footprint's centroid is
                # its centre's xy however it is tilted or buried (its top is off-centre on a tilted rock).
                xy = self._cell_centroid(kp, c.indices)
            else:
                r = kr[c.indices]
                level = max(cfg.footprint_height, 0.5 * quantile(r, cfg.top_percentile / 100))
                sel = c.indices[r >= level]
                xy = self._cell_centroid(kp, sel if len(sel) >= 3 else c.indices)
            cp, crel = kp[c.indices], kr[c.indices]
            hi = crel >= cfg.min_height_above_ground
            cz = cp[hi, 2] if hi.any() and not is_flat else cp[:, 2]
            top = quantile(cz, cfg.top_percentile / 100)
            protrusion = top - float(ground.height_at(xy[0], xy[1]))
            zc = top - max(cfg.rock_half_height, protrusion / 2)
            # Confidence: enough of a rock-sized blob, standing clearly out of the soil (or flat-topped
            # among grains: half the score), not clipped by the bucket. Each factor in [0, 1]; the
            # tracker weighs detections by it. A blob against the bucket may be only the visible sliver
            # of a rock under it, its centroid off by up to half a rock: trust it in proportion to how
            # much of a whole rock it shows.
            size_score = min(1.0, c.area / (0.5 * cfg.rock_nominal_size**2))
            height_score = min(1.0, max(protrusion, 0.0) / (2 * cfg.min_height_above_ground))
            if is_flat:
                height_score = max(height_score, 0.5)
            touch = 0.8 * min(1.0, c.area / cfg.rock_nominal_size**2) if c.touches else 1.0
            conf = float(np.clip(size_score * height_score * touch, 0.0, 1.0))
            out.append(_Found(np.array([xy[0], xy[1], zc]), protrusion, c.area, conf, bool(c.touches), top,
                              len(c.indices)))
        return out

    def _is_load(self, load_pts: np.ndarray) -> bool:
        cfg = self.config
        if len(load_pts) < cfg.load_min_points:
            return False
        ext = np.percentile(load_pts[:, :2], 95, axis=0) - np.percentile(load_pts[:, :2], 5, axis=0)
        return bool(np.max(ext) >= cfg.load_min_extent)

    def _in_bucket(self, load_pts: np.ndarray, ground, bucket: BucketPose, found: list, stamp_s: float,
                   dbg: dict) -> RockEstimate:
        """The rock in the bucket: xy the load's cell centroid, z halfway between its top and the tines."""
        cfg = self.config
        xy = self._cell_centroid(load_pts, np.arange(len(load_pts)))
        top = float(np.percentile(load_pts[:, 2], cfg.top_percentile))
        tines = float(bucket.tip_xyz[2])
        zc = max(0.5 * (top + tines), top - cfg.rock_size_range[1] / 2)
        conf = float(min(1.0, len(load_pts) / (4.0 * cfg.load_min_points)))
        dbg = dict(dbg, num_load_points=len(load_pts))
        return RockEstimate(np.array([xy[0], xy[1], zc]), conf, Reason.IN_BUCKET,
                            None if ground is None else ground.height, 0.0, len(load_pts), True, len(found), top,
                            ground, stamp_s, dbg, in_bucket=True, candidates=found, chosen=None)

    def _flat_tops(self, rel: np.ndarray, soil_cells: np.ndarray) -> np.ndarray:
        """Cells of flat faces reaching the soil's envelope: windows of flat_top_window whose cells lie
        within flat_top_max_rms of a plane, each grown to its whole window, in connected regions that
        reach flat_top_min_height (the tray floor and dug hollows lie far below the grains' tops)."""
        cfg = self.config
        win = max(3, int(round(cfg.flat_top_window / cfg.cell_size)) | 1)
        known = (rel > UNKNOWN / 2) & soil_cells
        core = (local_plane_rms(rel, known, win) <= cfg.flat_top_max_rms).astype(np.uint8)
        region = (cv2.dilate(core, np.ones((win, win), np.uint8)) > 0) & known
        n, lab = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
        if n <= 1:
            return np.zeros(rel.shape, bool)
        top = np.full(n, -np.inf, np.float32)
        np.maximum.at(top, lab[region], rel[region])
        ok = top >= cfg.flat_top_min_height
        ok[0] = False
        return ok[lab]

    def _flat_verdict(self, c: Cluster) -> str:
        cfg = self.config
        if c.area < cfg.flat_top_min_area or len(c.indices) < cfg.min_cluster_points:
            return "small flat"
        if c.length > cfg.max_cluster_extent or c.band_fraction > cfg.max_wall_fraction:
            return "size"
        return "rock"

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

    def _verdict(self, c: Cluster, rel: np.ndarray, labels: np.ndarray,
                 near_bucket: np.ndarray | None = None) -> tuple[str, dict]:
        """("rock" or why not, shape figures) for one blob standing out of the soil: rock-sized, and
        not a soil grain's spherical cap (see shape.py)."""
        cfg = self.config
        if not self._rock_like(c):
            return "size", {}
        blob = labels == c.label
        shape = None
        if c.touches and near_bucket is not None:
            # Cells next to the bucket hold mixed pixels at its edges: judge the shape without them
            # when enough of the blob's top is clear of them.
            shape = top_shape(rel, blob & ~near_bucket, cfg.cell_size)
            if shape is not None and shape.num_cells < MIN_SHAPE_CELLS:
                shape = None
        if shape is None:
            shape = top_shape(rel, blob, cfg.cell_size)
        if shape is None:
            return "size", {}
        info = {"top": shape.top, "top_area": shape.area, "plane_rms": shape.plane_rms,
                "sphere_rms": shape.sphere_rms, "sphere_radius": shape.sphere_radius}
        if c.touches and shape.num_cells < MIN_SHAPE_CELLS:
            return "hidden by the bucket", info  # too little of its top in view to judge it
        ratio = cfg.sphere_max_rms_ratio_at_bucket if c.touches else cfg.sphere_max_rms_ratio
        if cfg.reject_spherical_tops and shape.is_spherical_cap(cfg.sphere_max_rms, ratio):
            return "spherical cap", info
        if c.touches and shape.top < cfg.min_height_above_ground:
            # Against the bucket a few cells above min_height_above_ground are as likely mixed pixels
            # at its edges or soil seen between its tines: the blob must stand out by its bulk.
            return "low at the bucket", info
        return "rock", info

    def _rock_like(self, c: Cluster) -> bool:
        cfg = self.config
        return (
            len(c.indices) >= cfg.min_cluster_points
            and c.area >= cfg.min_cluster_area
            and c.length <= cfg.max_cluster_extent
            and c.width >= cfg.min_cluster_width
            and c.band_fraction <= cfg.max_wall_fraction
        )

    def _cell_centroid(self, pts: np.ndarray, indices: np.ndarray, with_normal: bool = False):
        """Mean xy of the occupied cells (each cell's points averaged first); with ``with_normal`` also
        the upward unit normal of the plane through the cells' mean points ((0, 0, 1) when they do
        not span a plane)."""
        p = pts[indices]
        iy, ix = self._grid.cells(p[:, :2])
        flat = iy.astype(np.int64) * self._grid.shape[1] + ix
        size = self._grid.shape[0] * self._grid.shape[1]
        cnt = np.bincount(flat, minlength=size).astype(np.float64)
        occ = cnt > 0
        m = np.stack([np.bincount(flat, weights=p[:, k], minlength=size)[occ] / cnt[occ] for k in range(3)], axis=1)
        xy = m[:, :2].mean(axis=0)
        if not with_normal:
            return xy
        n = np.array([0.0, 0.0, 1.0])
        if len(m) >= 4:
            d = m - m.mean(axis=0)
            A = np.stack([d[:, 0], d[:, 1]], axis=1)
            if np.linalg.matrix_rank(A) == 2:
                (a, b), *_ = np.linalg.lstsq(A, d[:, 2], rcond=None)
                n = np.array([-a, -b, 1.0]) / np.sqrt(a * a + b * b + 1.0)
        return xy, n


@dataclass
class _Points:
    """The soil points of one frame and their height map (shared by both soil kinds)."""

    soil: np.ndarray
    h: np.ndarray  # height above the plane per point
    iy: np.ndarray
    ix: np.ndarray
    hm: np.ndarray  # height map above the plane
    soil_cells: np.ndarray
    near_bucket: np.ndarray | None
    excl: np.ndarray | None  # occupancy of the bucket's points: blobs touching it are flagged


@dataclass(frozen=True)
class _Found(RockCandidate):
    top: float = 0.0
    num_points: int = 0


def with_tray_size(config: PerceptionConfig, tray_size) -> PerceptionConfig:
    """The config with the calibrated tray size."""
    return replace(config, tray_size=(float(tray_size[0]), float(tray_size[1]))).validate()
