"""Rock perception scored on scenegen's scenes (an independent renderer), per scene family.

Each scene goes through ``RockPerception.process`` as a node would feed it: the 16UC1 frame (32FC1 for
every other seed, both encodings must work), the scene's camera intrinsics and calibrated pose, its tray
size, the bucket's full pose and the cell's bucket geometry. The detector's configuration is the
library's default: nothing is set per family (held-out scenes come with no hints either).

Scoring, per scene:

* a visible rock (``RockTruth.visible``: not in the bucket, >= 12 mm above the soil, >= half of it in
  view) is *found* when a reported candidate lies within ``MATCH_RADIUS`` (xy) of its centre; the xy
  error is that candidate's distance;
* a *false report* is a candidate farther than that from every rock (visible or not: a buried rock's
  cap that the detector reports is not false), or any candidate on a scene without rocks;
* a rock in the bucket must be reported as such (``in_bucket``) and never as a rock on the soil (a
  candidate within ``MATCH_RADIUS`` of it is a violation);
* time: ``process`` of the same frame, once untimed (it fills the per-camera ray cache, as the first
  frame of a stream does), then the median of ``TIMED_CALLS`` timed calls (a shared virtual machine's
  scheduling jitter is not the pipeline's cost; its spread is reported as it is by ms_per_frame_p95).
"""

from __future__ import annotations

import time

import numpy as np

FOOTPRINT_MARGIN = 0.01
IN_BUCKET_MIN_VISIBLE = 0.3
"""A rock in the bucket counts as in view (it should be reported "in bucket") when at least this share
of it is visible; otherwise the bucket or the wrist hides it ("occluded by bucket" is right)."""
TIMED_CALLS = 3
MATCH_RADIUS = 0.025
"""A candidate within this xy distance (m) of a rock's centre is that rock (half the smallest rock is
20 mm; a candidate off by more is not a usable position)."""


def _intrinsics(scene):
    from excavation.perception import CameraIntrinsics

    return CameraIntrinsics(fx=float(scene.fx), fy=float(scene.fy), cx=float(scene.cx), cy=float(scene.cy),
                            width=int(scene.width), height=int(scene.height))


def evaluate_scene(scene, use_32fc1: bool = False) -> dict:
    """One scene through a fresh RockPerception; the record the summary is made of."""
    from excavation_contract import DEFAULT_BUCKET
    from excavation.perception import BucketPose, RockPerception, TrayCalibration
    from scenegen import depth_16uc1

    intr = _intrinsics(scene)
    cal = TrayCalibration(np.asarray(scene.T_tray_camera, float), tuple(scene.tray_size), intr)
    geom = scene.bucket_geometry or DEFAULT_BUCKET
    perc = RockPerception(calibration=cal, bucket_geometry=geom)
    bucket = None if scene.T_tray_bucket is None else BucketPose.from_matrix(scene.T_tray_bucket)
    if use_32fc1:
        image, enc = np.where(scene.depth > 0, scene.depth, np.nan).astype(np.float32), "32FC1"
    else:
        image, enc = depth_16uc1(scene), "16UC1"
    perc.process(image, enc, intr, 0.0, bucket=bucket)
    times = []
    for k in range(TIMED_CALLS):
        perc.reset()
        t0 = time.perf_counter()
        est = perc.process(image, enc, intr, 0.1 * (k + 1), bucket=bucket)
        times.append((time.perf_counter() - t0) * 1e3)
    ms = float(np.median(times))
    cands = [np.asarray(c.position, float) for c in est.candidates]
    rocks = list(scene.rocks)
    used = np.zeros(len(cands), bool)
    found, xy_err = 0, []
    for r in rocks:
        if not r.visible:
            continue
        if not cands:
            continue
        d = np.array([np.hypot(*(c[:2] - np.asarray(r.centre)[:2])) for c in cands])
        k = int(np.argmin(d))
        if d[k] <= MATCH_RADIUS:
            found += 1
            xy_err.append(float(d[k]) * 1e3)
    for i, c in enumerate(cands):
        # A report on a rock (buried, mostly hidden, or off its centre) is not a false report: only one
        # farther than the rock's half size + FOOTPRINT_MARGIN from every rock on the soil is.
        near = [np.hypot(*(c[:2] - np.asarray(r.centre)[:2])) <= max(MATCH_RADIUS, 0.5 * float(np.max(r.size)) + FOOTPRINT_MARGIN)
                for r in rocks if not r.in_bucket]
        used[i] = any(near)
    in_bucket_rocks = [r for r in rocks if r.in_bucket]
    seen_in_bucket = [r for r in in_bucket_rocks if r.visible_fraction >= IN_BUCKET_MIN_VISIBLE]
    violation = any(np.hypot(*(c[:2] - np.asarray(r.centre)[:2])) <= MATCH_RADIUS for c in cands for r in in_bucket_rocks)
    chosen_ok = None
    if est.position is not None and not est.in_bucket and any(r.visible for r in rocks):
        chosen_ok = any(np.hypot(*(np.asarray(est.position)[:2] - np.asarray(r.centre)[:2])) <= MATCH_RADIUS
                        for r in rocks if not r.in_bucket)
    return {
        "family": scene.family, "seed": int(scene.seed), "encoding": enc,
        "visible": sum(r.visible for r in rocks), "found": found, "xy_mm": xy_err,
        "false": bool((~used).any()), "num_candidates": len(cands),
        "in_bucket_truth": bool(in_bucket_rocks), "in_bucket_seen": bool(seen_in_bucket),
        "in_bucket_reported": bool(est.in_bucket),
        "in_bucket_as_soil_rock": bool(violation), "chosen_is_a_rock": chosen_ok,
        "reason": est.reason, "ms": ms,
    }


def summarise(records: list[dict]) -> dict:
    vis = sum(r["visible"] for r in records)
    xy = [e for r in records for e in r["xy_mm"]]
    ms = [r["ms"] for r in records]
    empty = [r for r in records if r["visible"] == 0 and not r["in_bucket_truth"]]
    ib = [r for r in records if r["in_bucket_truth"]]
    seen = [r for r in ib if r["in_bucket_seen"]]
    chosen = [r["chosen_is_a_rock"] for r in records if r["chosen_is_a_rock"] is not None]
    return {
        "frames": len(records),
        "visible_rocks": vis,
        "detection_rate": sum(r["found"] for r in records) / vis if vis else None,
        "false_detection_rate": sum(r["false"] for r in records) / len(records) if records else None,
        "false_reports": sum(r["false"] for r in records),
        "frames_without_visible_rock": len(empty),
        "false_on_frames_without_visible_rock": sum(r["false"] for r in empty),
        "rock_in_bucket_frames": len(ib),
        "rock_in_bucket_in_view": len(seen),
        "rock_in_bucket_reported": sum(r["in_bucket_reported"] for r in ib),
        "rock_in_bucket_in_view_reported": sum(r["in_bucket_reported"] for r in seen),
        "rock_in_bucket_reported_as_soil_rock": sum(r["in_bucket_as_soil_rock"] for r in ib),
        "chosen_is_a_rock_rate": float(np.mean(chosen)) if chosen else None,
        "xy_error_median_mm": float(np.median(xy)) if xy else None,
        "xy_error_p95_mm": float(np.percentile(xy, 95)) if xy else None,
        "ms_per_frame": float(np.median(ms)) if ms else None,
        "ms_per_frame_p95": float(np.percentile(ms, 95)) if ms else None,
    }


def run(seeds: int, first_seed: int = 0, families=None, progress=None) -> dict:
    """Every family x ``seeds`` scenes: {"overall": summary, "by_family": {family: summary}, "records"}."""
    from scenegen import FAMILIES, make_scene

    fams = list(families or FAMILIES)
    records = []
    for fam in fams:
        for s in range(first_seed, first_seed + seeds):
            rec = evaluate_scene(make_scene(fam, s), use_32fc1=bool(s % 2))
            records.append(rec)
        if progress:
            progress(fam, summarise([r for r in records if r["family"] == fam]))
    return {"overall": summarise(records), "by_family": {f: summarise([r for r in records if r["family"] == f]) for f in fams},
            "records": records}
