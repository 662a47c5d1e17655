"""The independent scene generator (bench/scenegen) renders what its truth says.

These tests check the generator against its own ground truth by routes that do not reuse the
renderer: back-projection of ideal depth onto ``soil_height_at``, the projected rock top point
(from the surface sample) against the ray-cast depth, labels against the rock list, the in-bucket
rock against the contract's bucket frame, and the sensor model's statistics.
"""

import numpy as np
import pytest

from excavation_contract import BucketGeometry
from scenegen import FAMILIES, RockTruth, Scene, depth_16uc1, make_scene

EXPECTED = {
    "flat_barely_buried", "buried_40_60", "camera_tilted", "camera_high_low", "round_rocks", "flat_rocks",
    "angular_rocks", "bucket_occluding", "rock_in_bucket", "bucket_no_rock", "empty_relief", "two_rocks",
    "three_rocks", "coarse_granular", "fine_granular", "dropouts_speckle", "small_tray", "large_tray", "sloped_soil",
}
BUCKET_FAMILIES = {"bucket_occluding", "rock_in_bucket", "bucket_no_rock"}
EMPTY_FAMILIES = {"bucket_no_rock", "empty_relief"}
N_ROCKS = {"two_rocks": 2, "three_rocks": 3, "bucket_no_rock": 0, "empty_relief": 0}

_CACHE: dict = {}


def scene(family, seed=0) -> Scene:
    if (family, seed) not in _CACHE:
        _CACHE[(family, seed)] = make_scene(family, seed)
    return _CACHE[(family, seed)]


def backproject(sc, mask, depth=None):
    v, u = np.nonzero(mask)
    z = (sc.depth_clean if depth is None else depth)[v, u].astype(np.float64)
    q = np.stack([(u - sc.cx) / sc.fx * z, (v - sc.cy) / sc.fy * z, z], axis=1)
    return q @ sc.T_tray_camera[:3, :3].T + sc.T_tray_camera[:3, 3]


def project(sc, P):
    q = (np.asarray(P, float) - sc.T_tray_camera[:3, 3]) @ sc.T_tray_camera[:3, :3]
    return sc.fx * q[..., 0] / q[..., 2] + sc.cx, sc.fy * q[..., 1] / q[..., 2] + sc.cy, q[..., 2]


def test_family_list():
    assert set(FAMILIES) == EXPECTED and len(FAMILIES) == len(EXPECTED)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_builds_with_right_types(family):
    sc = scene(family)
    H, W = sc.height, sc.width
    assert (W, H) in ((640, 480), (848, 480))
    assert sc.depth.shape == (H, W) and sc.depth.dtype == np.float32
    assert sc.depth_clean.shape == (H, W) and sc.labels.shape == (H, W) and sc.labels.dtype == np.uint8
    assert np.isfinite(sc.depth).all() and (sc.depth >= 0).all()
    valid = sc.depth > 0
    assert valid.mean() > 0.5 and sc.depth[valid].min() >= 0.1
    assert set(np.unique(sc.labels)) <= {0, 1, 2, 3, 4}
    assert (sc.labels == 2).sum() > 5000, "soil must be in view"
    assert sc.T_tray_camera.shape == (4, 4) and sc.T_tray_camera.dtype == np.float64
    R = sc.T_tray_camera[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(R), 1.0)
    assert R[2, 2] < -0.8, "optical z looks down at the tray (tilt <= ~35 deg)"
    assert 0.3 < sc.T_tray_camera[2, 3] < 1.3
    assert 570 <= sc.fx <= 650 if W == 640 else 400 <= sc.fx <= 450
    assert len(sc.rocks) == N_ROCKS.get(family, 1)
    for r in sc.rocks:
        assert isinstance(r, RockTruth) and r.centre.shape == (3,) and r.size.shape == (3,)
        assert r.shape in ("round", "flat", "angular", "elongated")
        assert 0.0 <= r.visible_fraction <= 1.0
        assert 0.02 <= r.axes.max() <= 0.1205 and (r.size >= 0.5 * r.axes.min()).all()
    if family in BUCKET_FAMILIES:
        assert sc.T_tray_bucket.shape == (4, 4) and isinstance(sc.bucket_geometry, BucketGeometry)
        assert (sc.labels == 4).sum() > 200
    else:
        assert sc.T_tray_bucket is None and sc.bucket_geometry is None and not (sc.labels == 4).any()
    img = depth_16uc1(sc)
    assert img.dtype == np.uint16 and img.shape == (H, W)
    assert ((img == 0) == (sc.depth == 0)).all()
    assert np.abs(img.astype(np.float64) / 1000.0 - sc.depth)[valid].max() <= 0.0010001


def test_deterministic_per_seed_and_different_across_seeds():
    a = scene("two_rocks", 0)
    b = make_scene("two_rocks", 0)
    assert np.array_equal(a.depth, b.depth) and np.array_equal(a.labels, b.labels)
    assert np.allclose([r.centre for r in a.rocks], [r.centre for r in b.rocks])
    c = make_scene("two_rocks", 1)
    assert not np.allclose([r.centre for r in a.rocks], [r.centre for r in c.rocks])
    assert not np.array_equal(a.T_tray_camera, c.T_tray_camera)


def test_noise_false_is_same_geometry_without_sensor_effects():
    noisy = scene("round_rocks")
    clean = make_scene("round_rocks", 0, noise=False)
    assert np.array_equal(clean.depth, noisy.depth_clean) and np.array_equal(clean.labels, noisy.labels)
    both = (noisy.depth > 0) & (clean.depth > 0)
    err = np.abs(noisy.depth - clean.depth)[both]
    assert 0.0002 < np.median(err) < 0.003, "D435-like noise at ~0.7 m is about a millimetre"
    assert (noisy.depth == 0).mean() > (clean.depth == 0).mean(), "stereo shadow / edge loss drop pixels"
    assert np.allclose(noisy.depth[noisy.depth > 0] * 1000, np.round(noisy.depth[noisy.depth > 0] * 1000), atol=1e-3)


ROCK_FAMILIES = [f for f in FAMILIES if f not in EMPTY_FAMILIES]


@pytest.mark.parametrize("family", ROCK_FAMILIES)
def test_rock_top_depth_matches_truth(family):
    """The ideal depth where the truth top point projects equals its camera-z (2 mm). A polyhedron's
    top vertex can sit on the silhouette next to steep faces, so for angular rocks the best rock
    pixel of the 5x5 neighbourhood."""
    sc = scene(family)
    for i, r in enumerate(sc.rocks):
        u, v, z = project(sc, r.top)
        iu, iv = int(round(float(u))), int(round(float(v)))
        assert 0 <= iu < sc.width and 0 <= iv < sc.height
        if sc.labels[iv, iu] == 4 or (r.shape != "angular" and sc.rock_ids[iv, iu] != i):
            continue  # hidden by the bucket or by another rock
        win = np.s_[max(iv - 2, 0):iv + 3, max(iu - 2, 0):iu + 3] if r.shape == "angular" else np.s_[iv:iv + 1, iu:iu + 1]
        ok = sc.rock_ids[win] == i
        assert ok.any()
        assert np.abs(sc.depth_clean[win][ok] - z).min() < 0.002


@pytest.mark.parametrize("family", FAMILIES)
def test_soil_pixels_lie_on_soil_height(family):
    sc = scene(family)
    P = backproject(sc, sc.labels == 2)
    res = P[:, 2] - sc.soil_height_at(P[:, 0], P[:, 1])
    assert np.abs(res).max() < 0.002
    sx, sy = sc.tray_size
    assert (np.abs(P[:, 0]) <= sx / 2 + 1e-6).all() and (np.abs(P[:, 1]) <= sy / 2 + 1e-6).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_agree_with_truth(family):
    sc = scene(family)
    assert ((sc.labels == 3) == (sc.rock_ids >= 0)).all()
    if family in EMPTY_FAMILIES:
        assert not (sc.labels == 3).any()
    for i, r in enumerate(sc.rocks):
        n = int((sc.rock_ids == i).sum())
        if r.visible or r.in_bucket:
            assert n >= 30, f"rock {i} truth says visible, image shows {n} pixels"
        P = backproject(sc, sc.rock_ids == i)
        assert np.linalg.norm(P[:, :2] - r.centre[:2], axis=1).max() <= 0.75 * np.linalg.norm(r.size[:2]) + 0.002
        assert P[:, 2].max() <= r.top[2] + 1e-4


def test_rock_in_bucket_lies_in_bucket_volume():
    for seed in (0, 1):
        sc = scene("rock_in_bucket", seed)
        g = sc.bucket_geometry
        (r,) = sc.rocks
        assert r.in_bucket and not r.visible
        T = sc.T_tray_bucket
        for p in (r.centre, r.top):
            q = (p - T[:3, 3]) @ T[:3, :3]
            assert -g.tine_length <= q[0] <= 0.0 and abs(q[1]) <= g.width / 2
            assert g.tine_thickness / 2 - 1e-6 <= q[2] <= g.back_height
        tip = T[:3, 3]
        assert tip[2] - sc.soil_height_at(tip[0], tip[1]) > 0.02, "bucket lifted above the soil"
        assert abs(np.arcsin(np.clip(-T[2, 0], -1, 1))) <= 0.3 + 1e-9, "pitch within +-0.3 rad"


def test_bucket_occluding_hides_20_to_80_percent():
    fr = [scene("bucket_occluding", s).rocks[0].visible_fraction for s in range(4)]
    assert sum(0.2 <= f <= 0.8 for f in fr) >= 3, fr
    for s in range(4):
        sc = scene("bucket_occluding", s)
        near = np.zeros_like(sc.labels, dtype=bool)
        u, v, _ = project(sc, sc.rocks[0].centre)
        near[max(0, int(v) - 60):int(v) + 60, max(0, int(u) - 60):int(u) + 60] = True
        assert (sc.labels[near] == 4).any(), "bucket pixels next to the rock"


def test_empty_families_have_no_rocks_and_relief_bump():
    assert scene("empty_relief").rocks == [] and scene("bucket_no_rock").rocks == []
    sc = scene("empty_relief")
    sx, sy = sc.tray_size
    xs, ys = np.meshgrid(np.linspace(-sx / 2, sx / 2, 200), np.linspace(-sy / 2, sy / 2, 150))
    assert np.abs(sc.soil_height_at(xs, ys)).max() <= 0.0155
    A, bx, by, sgx, _ = sc.params["bump"]
    assert 0.010 <= A <= 0.015 and 0.04 <= 3 * sgx <= 0.08
    ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = sc.soil_height_at(bx + 3 * sgx * np.cos(ang), by + 3 * sgx * np.sin(ang))
    assert sc.soil_height_at(bx, by) - ring.mean() >= 0.007, "a 10-15 mm bump stands out of its surroundings"


def test_family_knobs():
    assert scene("coarse_granular").rocks[0].size.max() >= 1.2 * scene("coarse_granular").params["grain_diameter"]
    assert 0.010 <= scene("fine_granular").params["grain_diameter"] <= 0.020
    assert 4.0 <= scene("sloped_soil").params["slope_deg"] <= 8.0
    assert 0.15 <= min(scene("small_tray").tray_size) <= max(scene("small_tray").tray_size) <= 0.2
    assert min(scene("large_tray").tray_size) >= 0.5
    assert (scene("dropouts_speckle").depth == 0).mean() >= 0.1
    assert scene("flat_barely_buried").rocks[0].burial <= 0.2
    assert 0.4 <= scene("buried_40_60").rocks[0].burial <= 0.6


def test_visible_property_thresholds():
    base = dict(centre=np.zeros(3), size=np.full(3, 0.05), shape="round", in_bucket=False)
    assert RockTruth(protrusion=0.02, visible_fraction=0.9, **base).visible
    assert not RockTruth(protrusion=0.011, visible_fraction=0.9, **base).visible
    assert not RockTruth(protrusion=0.02, visible_fraction=0.4, **base).visible
    assert not RockTruth(protrusion=0.02, visible_fraction=0.9, **{**base, "in_bucket": True}).visible


def test_unknown_family_raises():
    with pytest.raises(ValueError, match="no_such_family.*round_rocks"):
        make_scene("no_such_family", 0)
