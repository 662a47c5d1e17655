"""Telling the rock from soil grains as big as it by shape: a grain's top is a spherical cap, the
rock's is not (faces, ridges, voxel steps); a rock level with the grains' tops shows a flat face.

Scenes as the simulator makes them at 30..70 mm: spheres on a floor or in a packed bed, a box rock.
"""

import numpy as np
import pytest

from excavation.perception import BucketPose, PerceptionConfig, Reason, RockDetector, decode_depth, look_at
from excavation.perception.bucket_volume import points_in_bucket
from excavation.perception.heightmap import UNKNOWN, local_plane_rms
from excavation.perception.shape import top_shape
from box_scenes import (
    TrayScene,
    add_noise,
    d435_intrinsics,
    grain_bed,
    render_scene,
    to_16uc1,
)

INTR = d435_intrinsics()
T_DOWN = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))
TRAY = (0.16, 0.16)
CELL = 0.005


def coarse_soil(scene):
    """The simulator's coarse-soil settings (config/perception_sim.yaml) for the scene's grains."""
    d = max((2 * r for _, r in scene.grains), default=0.0)
    return {"soil_grain_size": d, "min_height_above_ground": 0.015} if d else {}


def detect(scene, seed, rel_std=0.01, **cfg):
    depth, _ = render_scene(scene, INTR, T_DOWN)
    depth = add_noise(depth, np.random.default_rng(seed), rel_std=rel_std, dropout=0.02)
    det = RockDetector(PerceptionConfig(tray_size=TRAY, **{**coarse_soil(scene), **cfg}))
    return det.detect(decode_depth(to_16uc1(depth), "16UC1", INTR), INTR, T_DOWN)


# ----------------------------------------------------------------------------- height-map shapes
def grid(n=21):
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return (x - n // 2) * CELL, (y - n // 2) * CELL


def cap(radius, stand, noise=0.0, seed=0):
    """Height map (m) of a sphere of ``radius`` whose top stands ``stand`` above the ground."""
    x, y = grid()
    d2 = x * x + y * y
    h = np.where(d2 < radius**2, np.sqrt(np.maximum(radius**2 - d2, 0.0)) - radius + stand, 0.0)
    return (h + np.random.default_rng(seed).normal(0, noise, h.shape)).astype(np.float32)


def box_top(side, stand, tilt=0.0, noise=0.0, seed=0):
    """Height map of a box of ``side`` (m) standing ``stand`` out, its top tilted by ``tilt`` (rad)."""
    x, y = grid()
    inside = (np.abs(x) <= side / 2) & (np.abs(y) <= side / 2)
    h = np.where(inside, stand + np.tan(tilt) * x, 0.0)
    return (h + np.random.default_rng(seed).normal(0, noise, h.shape)).astype(np.float32)


@pytest.mark.parametrize("diameter", [0.03, 0.04, 0.05, 0.06, 0.07])
@pytest.mark.parametrize("stand", [0.015, 0.03])
def test_a_grain_top_is_a_spherical_cap_whatever_its_size(diameter, stand):
    hm = cap(diameter / 2, min(stand, diameter), noise=0.0003)
    s = top_shape(hm, hm >= 0.005, CELL)
    assert s is not None and s.convex
    assert s.is_spherical_cap(0.0015, 0.3), s
    assert s.sphere_radius == pytest.approx(diameter / 2, rel=0.25)


@pytest.mark.parametrize("tilt", [0.0, 0.3, 0.6])
def test_a_box_top_is_no_spherical_cap(tilt):
    hm = box_top(0.05, 0.03, tilt, noise=0.0003)
    s = top_shape(hm, hm >= 0.005, CELL)
    assert s is not None and not s.is_spherical_cap(0.0015, 0.3), s


def test_a_ridge_and_voxel_steps_are_no_spherical_cap():
    x, y = grid()
    roof = np.where((np.abs(x) <= 0.03) & (np.abs(y) <= 0.03), 0.03 - np.abs(x), 0.0).astype(np.float32)
    s = top_shape(roof, roof >= 0.005, CELL)
    assert not s.is_spherical_cap(0.0015, 0.3), s
    # A 50 mm rock of 10 mm voxels: a rounded heap of steps.
    steps = np.floor(cap(0.03, 0.03) / 0.01) * 0.01
    s = top_shape(steps.astype(np.float32), steps >= 0.005, CELL)
    assert not s.is_spherical_cap(0.0015, 0.3), s


def test_local_plane_rms_flat_faces_at_any_tilt_and_grain_caps():
    known = np.ones((21, 21), bool)
    for tilt in (0.0, 0.4, 0.8):
        rms = local_plane_rms(box_top(0.08, 0.02, tilt, noise=0.0002), known, 5)
        assert np.nanmedian(rms[7:14, 7:14]) < 0.0004  # the face's interior: noise only
    for diameter in (0.03, 0.05, 0.07):
        rms = local_plane_rms(cap(diameter / 2, diameter / 2, noise=0.0002), known, 5)
        assert rms[10, 10] > 0.0007  # a grain's top is curved at the window's scale
    holed = known.copy()
    holed[8:13, 8:13] = False
    assert np.isinf(local_plane_rms(np.zeros((21, 21), np.float32), holed, 5)[10, 10])  # not enough known


# ----------------------------------------------------------------------------- whole frames
@pytest.mark.parametrize("diameter", [0.06, 0.07])
@pytest.mark.parametrize("seed", [0, 1])
def test_grains_on_a_bare_floor_are_not_the_rock_but_a_rock_among_them_is(diameter, seed):
    # The simulator at 60-70 mm: a few grains (balls) on the tray floor, as tall as the rock.
    rng = np.random.default_rng(seed)
    scene = TrayScene(tray_size=TRAY)
    r = diameter / 2
    for cx, cy in [(-0.045, -0.045), (0.045, 0.045)]:
        scene.grains.append((np.array([cx, cy, r]) + np.r_[rng.uniform(-0.005, 0.005, 2), 0.0], r))
    est = detect(scene, seed, rel_std=0.0025)
    assert not est.detected and est.reason == Reason.NONE_ABOVE_GROUND
    assert detect(scene, seed, rel_std=0.0025, reject_spherical_tops=False).detected  # what the test is for
    # One grain and a 50 mm rock (a box) standing as high: the rock is found, not the grain.
    scene.grains.pop()
    scene.rocks.append((np.array([0.035, 0.035, 0.025]), 0.05, 0.3))
    est = detect(scene, seed, rel_std=0.0025)
    assert est.detected and np.linalg.norm(est.position[:2] - [0.035, 0.035]) < 0.008, est.position


@pytest.mark.parametrize("diameter", [0.04, 0.05])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_rock_level_with_the_grains_is_found_by_its_flat_top(diameter, seed):
    rng = np.random.default_rng(200 + seed)
    scene = TrayScene(tray_size=TRAY)
    top = grain_bed(scene, diameter, 2, jitter=0.05, rng=rng)
    xy = rng.uniform(-0.03, 0.03, 2)
    centre = np.array([xy[0], xy[1], top + float(rng.uniform(-0.004, 0.004)) - 0.025])
    scene.rocks.append((centre, 0.05, float(rng.uniform(0, np.pi / 2))))
    # The rock took the place of the grains it overlaps (the simulator's rock pushes them aside).
    scene.grains = [(c, r) for c, r in scene.grains if np.max(np.abs(c[:2] - centre[:2])) > 0.025 + 0.5 * r]
    # Standing out by height is switched off: only its flat face finds it.
    assert not detect(scene, seed, rel_std=0.0025, min_height_above_ground=0.1, flat_top_window=0.0).detected
    est = detect(scene, seed, rel_std=0.0025, min_height_above_ground=0.1)
    assert est.detected and est.reason == Reason.DETECTED
    assert np.linalg.norm(est.position[:2] - centre[:2]) < 0.008, (est.position, centre)
    assert abs(est.position[2] - centre[2]) < 0.012, (est.position, centre)


@pytest.mark.parametrize("diameter", [0.03, 0.04, 0.05])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dug_grain_bed_with_the_camera_noise_of_the_simulator_has_no_rock(diameter, seed):
    scene = TrayScene(tray_size=TRAY)
    grain_bed(scene, diameter, 2, jitter=0.05, rng=np.random.default_rng(300 + seed), keep=0.7)
    est = detect(scene, seed, rel_std=0.0025)
    assert not est.detected, est.debug.get("clusters")


def test_flat_tops_are_looked_for_on_granular_soil_only():
    # Smooth soil is flat everywhere: a low plateau (a pressed patch of soil, 8 mm high) is no rock.
    scene = TrayScene(tray_size=TRAY)
    scene.bumps.append((np.array([0.0, 0.0, 0.0]), np.array([0.03, 0.03, 0.008])))
    assert not detect(scene, 0, rel_std=0.0025).detected


def test_a_flat_face_gives_its_normal_and_the_rock_centre_lies_behind_it():
    det = RockDetector(PerceptionConfig(tray_size=TRAY))
    xs, ys = np.meshgrid(np.linspace(-0.02, 0.02, 30), np.linspace(-0.02, 0.02, 30))
    tilt = 0.5
    pts = np.stack([xs.ravel(), ys.ravel(), 0.03 + np.tan(tilt) * xs.ravel()], axis=1)
    xy, n = det._cell_centroid(pts, np.arange(len(pts)), with_normal=True)
    assert np.allclose(xy, 0.0, atol=0.002)
    assert np.allclose(n, [-np.sin(tilt), 0.0, np.cos(tilt)], atol=0.02)  # leans downhill (-x)


# ----------------------------------------------------------------------------- bucket volume
def test_the_bucket_hull_margin_ahead_of_the_tips_is_small():
    pose = BucketPose((0.0, 0.0, 0.0), 0.0)
    ahead = np.array([[0.004, 0.0, 0.02], [0.012, 0.0, 0.02]])  # just ahead of the tine tips, above them
    assert points_in_bucket(ahead, pose, margin=0.015).tolist() == [True, True]
    assert points_in_bucket(ahead, pose, margin=0.015, tip_margin=0.005).tolist() == [True, False]
    side = np.array([[-0.05, 0.07, 0.02]])  # beside the outer tine: the full margin still applies
    assert points_in_bucket(side, pose, margin=0.015, tip_margin=0.005).tolist() == [True]


def test_unknown_cells_never_make_a_shape():
    hm = np.full((21, 21), UNKNOWN, np.float32)
    assert top_shape(hm, hm > 0, CELL) is None
