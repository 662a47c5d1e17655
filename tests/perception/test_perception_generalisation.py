"""Perception on scenes it was not built against: scenegen's independent renderer (bench/scenegen) and
the ray-cast box scenes (bench/box_scenes.py), with the library's default configuration.

The per-family rates are bench/perception_bench.py's job; these tests pin the behaviours: a sphere is
a rock, a smooth soil bump is not, a rock in a yawed bucket is "in bucket", a bucket part is never a
rock, several rocks are all reported and the choice is stable, 16UC1 and 32FC1 agree.
"""

import numpy as np
import pytest

from box_scenes import TrayScene, add_noise, d435_intrinsics, render_scene, to_16uc1
from excavation_contract import DEFAULT_BUCKET
from excavation.perception import (BucketPose, Reason, RockDetector, RockPerception, PerceptionConfig, TrayCalibration,
                                   decode_depth, look_at)
from scenegen import depth_16uc1, make_scene

MATCH = 0.025  # a candidate within this (m, xy) of a rock's centre is that rock


def perceive(scene, encoding="16UC1"):
    from excavation.perception import CameraIntrinsics

    intr = CameraIntrinsics(fx=scene.fx, fy=scene.fy, cx=scene.cx, cy=scene.cy, width=scene.width, height=scene.height)
    perc = RockPerception(calibration=TrayCalibration(np.asarray(scene.T_tray_camera), tuple(scene.tray_size), intr),
                          bucket_geometry=scene.bucket_geometry or DEFAULT_BUCKET)
    bucket = None if scene.T_tray_bucket is None else BucketPose.from_matrix(scene.T_tray_bucket)
    if encoding == "16UC1":
        image = depth_16uc1(scene)
    else:
        image = np.where(scene.depth > 0, scene.depth, np.nan).astype(np.float32)
    return perc.process(image, encoding, intr, 0.0, bucket=bucket)


def near(p, rock) -> bool:
    return float(np.hypot(*(np.asarray(p)[:2] - np.asarray(rock.centre)[:2]))) <= MATCH


# ----------------------------------------------------------------------------- shapes and soil
def test_a_sphere_on_smooth_soil_is_a_rock():
    # The shape test of the coarse-soil path took round tops for soil grains; on fine soil a round
    # pebble is a rock like any other.
    intr = d435_intrinsics()
    T = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))
    scene = TrayScene(tray_size=(0.2, 0.2))
    scene.grains.append((np.array([0.03, -0.02, 0.025 - 0.01]), 0.025))  # 50 mm sphere, 10 mm in the soil
    depth, _ = render_scene(scene, intr, T)
    depth = add_noise(depth, np.random.default_rng(0), rel_std=0.003, dropout=0.02)
    est = RockDetector(PerceptionConfig(tray_size=(0.2, 0.2))).detect(decode_depth(to_16uc1(depth), "16UC1", intr), intr, T)
    assert est.detected and np.hypot(est.position[0] - 0.03, est.position[1] + 0.02) < 0.006


@pytest.mark.parametrize("seed", range(3))
def test_round_rocks_from_another_renderer_are_found(seed):
    scene = make_scene("round_rocks", seed)
    est = perceive(scene)
    for rock in scene.rocks:
        if rock.visible:
            assert any(near(c.position, rock) for c in est.candidates), (rock, est.candidates)


@pytest.mark.parametrize("seed", range(4))
def test_smooth_soil_relief_and_bumps_are_not_rocks(seed):
    scene = make_scene("empty_relief", seed)  # +-15 mm relief, a 10-15 mm smooth bump
    est = perceive(scene)
    assert est.candidates == [] and est.position is None and est.reason == Reason.NONE_ABOVE_GROUND


@pytest.mark.parametrize("seed", range(3))
def test_a_rock_on_sloped_soil_is_found_and_the_slope_is_ground(seed):
    scene = make_scene("sloped_soil", seed)
    est = perceive(scene)
    assert all(any(near(c.position, r) for c in est.candidates) for r in scene.rocks if r.visible)
    assert all(any(np.hypot(*(c.position[:2] - r.centre[:2])) < 0.07 for r in scene.rocks) for c in est.candidates)
    assert abs(est.ground_height - float(scene.soil_height_at(np.zeros(1), np.zeros(1))[0])) < 0.006


# ----------------------------------------------------------------------------- the bucket
@pytest.mark.parametrize("seed", range(4))
def test_bucket_parts_are_never_rocks(seed):
    scene = make_scene("bucket_no_rock", seed)  # any yaw, tips down, a user's bucket or the default
    est = perceive(scene)
    assert est.candidates == [] and not est.in_bucket


def test_a_rock_in_a_yawed_bucket_is_in_the_bucket_never_on_the_soil():
    checked = 0
    for seed in range(12):
        scene = make_scene("rock_in_bucket", seed)
        rock = scene.rocks[0]
        yaw = np.degrees(np.arctan2(scene.T_tray_bucket[1, 0], scene.T_tray_bucket[0, 0]))
        if rock.visible_fraction < 0.3 or abs(yaw) < 20:
            continue  # hidden by the wrist, or not yawed enough to matter
        est = perceive(scene)
        assert not any(near(c.position, rock) for c in est.candidates)
        assert est.in_bucket and est.reason == Reason.IN_BUCKET
        assert np.hypot(*(est.position[:2] - rock.centre[:2])) < 0.03
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_a_rock_in_the_bucket_seen_from_a_box_scene_with_the_bucket_yawed():
    intr = d435_intrinsics()
    T = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))
    yaw = np.radians(150.0)  # the bucket turned back toward the camera side
    R = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    tip = np.array([-0.02, 0.0, 0.08])
    Tb = np.eye(4)
    Tb[:3, :3], Tb[:3, 3] = R, tip
    bucket = BucketPose.from_matrix(Tb)
    scene = TrayScene(tray_size=(0.2, 0.2))
    scene.bucket = bucket
    centre = tip + R @ np.array([-0.06, 0.0, 0.004 + 0.025])  # on the tines, halfway to the back plate
    scene.rocks.append((centre, 0.05, yaw))
    depth, _ = render_scene(scene, intr, T)
    est = RockDetector(PerceptionConfig(tray_size=(0.2, 0.2))).detect(decode_depth(to_16uc1(depth), "16UC1", intr),
                                                                      intr, T, bucket=bucket)
    assert est.in_bucket and est.reason == Reason.IN_BUCKET and est.candidates == []
    assert np.hypot(*(est.position[:2] - centre[:2])) < 0.01
    # The same rock with the bucket pose given as pitch only (no yaw): its mask misses the rock's
    # place, and the rock is seen where it lies -- why the node passes the full orientation.
    pitch_only = BucketPose(tuple(tip), 0.0)
    est2 = RockDetector(PerceptionConfig(tray_size=(0.2, 0.2))).detect(decode_depth(to_16uc1(depth), "16UC1", intr),
                                                                       intr, T, bucket=pitch_only)
    assert not est2.in_bucket


# ----------------------------------------------------------------------------- several rocks, encodings
def test_every_rock_is_reported_and_the_choice_is_the_most_exposed_then_stable():
    scene = make_scene("three_rocks", 1)
    est = perceive(scene)
    visible = [r for r in scene.rocks if r.visible]
    assert all(any(near(c.position, r) for c in est.candidates) for r in visible)
    most = max(range(len(est.candidates)), key=lambda i: est.candidates[i].protrusion)
    prot = [c.protrusion for c in est.candidates]
    assert est.chosen is not None and prot[est.chosen] >= prot[most] - 0.005
    assert np.allclose(est.position, est.candidates[est.chosen].position)


@pytest.mark.parametrize("family, seed", [("flat_rocks", 0), ("angular_rocks", 1), ("two_rocks", 2)])
def test_16uc1_and_32fc1_give_the_same_rocks(family, seed):
    scene = make_scene(family, seed)
    a, b = perceive(scene, "16UC1"), perceive(scene, "32FC1")
    assert len(a.candidates) == len(b.candidates) >= 1
    pa = sorted(tuple(np.round(c.position[:2], 3)) for c in a.candidates)
    pb = sorted(tuple(np.round(c.position[:2], 3)) for c in b.candidates)
    assert np.allclose(pa, pb, atol=0.003)
