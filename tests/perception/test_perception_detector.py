"""Rock detection on synthetic scenes of known geometry (ray-cast boxes, see bench/box_scenes.py)."""

import numpy as np
import pytest

from excavation.perception import BucketPose, PerceptionConfig, Reason, RockDetector, decode_depth, look_at
from box_scenes import (
    ID_ROCK,
    TrayScene,
    add_noise,
    d435_intrinsics,
    render_scene,
    rock_on_ground,
    to_16uc1,
)

INTR = d435_intrinsics()
T_DOWN = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))  # straight down, image up = +x
# Oblique view from the far side and a bit to the left, like a camera on a post beside the tray.
T_OBLIQUE = look_at([0.30, 0.12, 0.55], [0.0, 0.0, 0.0])
TRAY = (0.20, 0.20)


def frame(scene, T=T_DOWN, seed=0, noise=True):
    depth, ids = render_scene(scene, INTR, T)
    if noise:
        depth = add_noise(depth, np.random.default_rng(seed), rel_std=0.01, dropout=0.02)
    return decode_depth(to_16uc1(depth), "16UC1", INTR), ids


def detector(**kw):
    return RockDetector(PerceptionConfig(tray_size=TRAY, **kw))


@pytest.mark.parametrize(
    "xy, burial, yaw, T, ground, tilt",
    [
        ((0.0, 0.0), 0.5, 0.0, T_DOWN, 0.0, (0.0, 0.0)),
        ((0.05, -0.04), 0.3, 0.5, T_DOWN, 0.012, (0.02, -0.03)),
        ((-0.06, 0.05), 0.6, 1.1, T_DOWN, -0.01, (0.0, 0.0)),
        ((0.03, 0.04), 0.4, 0.3, T_OBLIQUE, 0.005, (-0.02, 0.0)),
        ((-0.05, -0.05), 0.0, 0.0, T_OBLIQUE, 0.0, (0.0, 0.0)),
    ],
)
def test_rock_centre_and_ground_within_tolerance(xy, burial, yaw, T, ground, tilt):
    scene = TrayScene(tray_size=TRAY, ground_offset=ground, ground_tilt=tilt)
    scene.rocks.append(rock_on_ground(scene, xy, 0.05, burial, yaw))
    depth, _ = frame(scene, T)
    est = detector().detect(depth, INTR, T)
    assert est.reason == Reason.DETECTED and est.detected
    truth = scene.rocks[0][0]
    assert np.linalg.norm(est.position[:2] - truth[:2]) < 0.006, (est.position, truth)
    assert abs(est.position[2] - truth[2]) < 0.006, (est.position, truth)
    assert abs(est.ground_height - scene.ground_height_at(0.0, 0.0)) < 0.003
    assert 0.5 < est.confidence <= 1.0
    assert est.num_candidates == 1 and est.num_points > 50


def test_rock_standing_proud_uses_midpoint_between_top_and_ground():
    # A 70 mm cube on the soil, larger than the assumed 50 mm: the centre is halfway up.
    scene = TrayScene(tray_size=TRAY)
    scene.rocks.append(rock_on_ground(scene, (0.02, 0.0), 0.07, 0.0))
    est = detector().detect(frame(scene)[0], INTR, T_DOWN)
    assert est.detected
    assert abs(est.position[2] - 0.035) < 0.006


def test_float_metre_input_gives_same_answer_as_millimetres():
    scene = TrayScene(tray_size=TRAY)
    scene.rocks.append(rock_on_ground(scene, (0.04, 0.02), 0.05, 0.5))
    d, _ = render_scene(scene, INTR, T_DOWN)
    a = detector().detect(decode_depth(d, "32FC1", INTR), INTR, T_DOWN)
    b = detector().detect(decode_depth(to_16uc1(d), "16UC1", INTR), INTR, T_DOWN)
    assert np.allclose(a.position, b.position, atol=0.002)


def test_empty_tray_reports_none_above_ground_and_ground_height():
    scene = TrayScene(tray_size=TRAY, ground_offset=0.015)
    est = detector().detect(frame(scene)[0], INTR, T_DOWN)
    assert est.position is None and not est.detected
    assert est.reason == Reason.NONE_ABOVE_GROUND
    assert abs(est.ground_height - 0.015) < 0.003


def test_low_soil_bumps_are_not_rocks_but_a_big_heap_is_not_either():
    scene = TrayScene(tray_size=TRAY)
    scene.bumps.append((np.array([0.03, 0.03, 0.004]), np.array([0.03, 0.02, 0.006])))  # 10 mm high
    scene.bumps.append((np.array([-0.02, -0.04, 0.0]), np.array([0.075, 0.03, 0.02])))  # 150 mm long heap
    est = detector().detect(frame(scene)[0], INTR, T_DOWN)
    assert est.reason == Reason.NONE_ABOVE_GROUND and est.position is None


def test_bucket_in_view_is_ignored_and_the_rock_still_found():
    scene = TrayScene(tray_size=TRAY)
    scene.rocks.append(rock_on_ground(scene, (0.05, 0.04), 0.05, 0.5))
    scene.bucket = BucketPose((-0.01, -0.04, 0.02), 0.15)
    depth, ids = frame(scene)
    det = detector()
    est = det.detect(depth, INTR, T_DOWN, bucket=scene.bucket)
    assert est.detected and np.linalg.norm(est.position[:2] - scene.rocks[0][0][:2]) < 0.006
    assert est.num_candidates == 1
    # Without the bucket pose the bucket itself is taken for soil or rock (an extra candidate, another
    # position, or a soil surface lifted to the tines so that the rock is lost): the exclusion matters.
    blind = det.detect(depth, INTR, T_DOWN, bucket=None)
    assert (not blind.detected or blind.num_candidates > est.num_candidates
            or np.linalg.norm(blind.position[:2] - est.position[:2]) > 0.02)


def test_bucket_alone_is_reported_as_occlusion_not_a_rock():
    scene = TrayScene(tray_size=TRAY)
    scene.bucket = BucketPose((0.03, 0.0, 0.01), 0.0)
    est = detector().detect(frame(scene)[0], INTR, T_DOWN, bucket=scene.bucket)
    assert est.position is None
    assert est.reason == Reason.OCCLUDED_BY_BUCKET


def test_rock_carried_in_the_bucket_is_not_a_rock_in_the_soil():
    scene = TrayScene(tray_size=TRAY)
    bucket = BucketPose((0.05, 0.0, 0.08), 0.0)
    scene.bucket = bucket
    # Resting on the tines, between tips and back plate.
    scene.rocks.append((np.array([0.05 - 0.06, 0.0, 0.08 + 0.004 + 0.025]), 0.05, 0.2))
    depth, ids = frame(scene)
    assert (ids == ID_ROCK).sum() > 500  # the camera does see it
    est = detector().detect(depth, INTR, T_DOWN, bucket=bucket)
    assert est.in_bucket and est.reason == Reason.IN_BUCKET and est.candidates == []
    assert np.linalg.norm(est.position[:2] - scene.rocks[0][0][:2]) < 0.01


def test_rock_under_the_tines_is_found_between_them_or_reported_occluded():
    scene = TrayScene(tray_size=TRAY)
    scene.rocks.append(rock_on_ground(scene, (0.0, 0.0), 0.05, 0.5))
    scene.bucket = BucketPose((0.06, 0.0, 0.045), 0.0)  # fork right over the rock
    depth, ids = frame(scene)
    est = detector().detect(depth, INTR, T_DOWN, bucket=scene.bucket)
    if est.detected:
        assert np.linalg.norm(est.position - scene.rocks[0][0]) < 0.012
    else:
        assert est.position is None and est.reason == Reason.OCCLUDED_BY_BUCKET
    # Lower the fork onto the rock's top: then the rock is inside the bucket's volume.
    scene.bucket = BucketPose((0.06, 0.0, 0.028), 0.0)
    est = detector().detect(frame(scene)[0], INTR, T_DOWN, bucket=scene.bucket)
    assert est.position is None and est.reason == Reason.OCCLUDED_BY_BUCKET


def test_several_rocks_are_all_reported_and_the_most_exposed_or_the_tracked_one_is_chosen():
    scene = TrayScene(tray_size=TRAY)
    big = rock_on_ground(scene, (0.05, 0.05), 0.05, 0.4)
    small = rock_on_ground(scene, (-0.05, -0.04), 0.035, 0.4)
    scene.rocks += [big, small]
    depth, _ = frame(scene)
    det = detector()
    est = det.detect(depth, INTR, T_DOWN)
    assert est.num_candidates == 2 and len(est.candidates) == 2
    # Both are reported where they are; the bigger one stands out more and is chosen.
    seen = sorted(est.candidates, key=lambda c: -c.protrusion)
    assert np.linalg.norm(seen[0].position[:2] - big[0][:2]) < 0.006
    assert np.linalg.norm(seen[1].position[:2] - small[0][:2]) < 0.006
    assert np.linalg.norm(est.position[:2] - big[0][:2]) < 0.006
    assert est.candidates[est.chosen].protrusion == seen[0].protrusion
    near_small = det.detect(depth, INTR, T_DOWN, prior_xy=np.array([-0.04, -0.04]))
    assert np.linalg.norm(near_small.position[:2] - small[0][:2]) < 0.006


def test_with_a_prior_the_bucket_is_blamed_only_where_it_hides_the_rock():
    scene = TrayScene(tray_size=TRAY)
    scene.bucket = BucketPose((0.06, 0.05, 0.05), 0.0)  # over the +y half only; no rock anywhere
    depth = frame(scene)[0]
    det = detector()
    assert det.detect(depth, INTR, T_DOWN, bucket=scene.bucket).reason == Reason.OCCLUDED_BY_BUCKET
    under = det.detect(depth, INTR, T_DOWN, bucket=scene.bucket, prior_xy=np.array([-0.06, 0.05]))  # under the wrist
    assert under.reason == Reason.OCCLUDED_BY_BUCKET
    gone = det.detect(depth, INTR, T_DOWN, bucket=scene.bucket, prior_xy=np.array([0.0, -0.06]))
    assert gone.reason == Reason.NONE_ABOVE_GROUND and gone.position is None


def test_bucket_wrist_filling_the_view_is_occlusion():
    scene = TrayScene(tray_size=TRAY)
    scene.rocks.append(rock_on_ground(scene, (0.0, 0.0), 0.05, 0.5))
    scene.bucket = BucketPose((0.12, 0.0, 0.12), 0.0)  # wrist right in front of the camera
    est = detector().detect(frame(scene)[0], INTR, T_DOWN, bucket=scene.bucket)
    assert est.position is None and est.reason == Reason.OCCLUDED_BY_BUCKET
