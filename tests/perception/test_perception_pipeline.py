"""RockPerception end to end: decode -> detect -> track, with the calibration file's pose and tray."""

import numpy as np

from excavation.perception import BucketPose, Reason, RockPerception, TrayCalibration, look_at
from box_scenes import TrayScene, add_noise, d435_intrinsics, render_scene, rock_on_ground, to_16uc1

INTR = d435_intrinsics()
T = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))


def test_track_holds_while_the_bucket_hides_the_rock_then_resumes():
    cal = TrayCalibration(T, (0.16, 0.16), INTR)
    perc = RockPerception(calibration=cal)
    assert perc.config.tray_size == (0.16, 0.16)
    scene = TrayScene(tray_size=(0.16, 0.16), wall_height=0.06)
    scene.rocks.append(rock_on_ground(scene, (-0.03, 0.02), 0.05, 0.5))
    truth = scene.rocks[0][0]
    rng = np.random.default_rng(0)

    def step(t, bucket=None):
        scene.bucket = bucket
        d, _ = render_scene(scene, INTR, T)
        return perc.process(to_16uc1(add_noise(d, rng)), "16UC1", INTR, t, bucket=bucket)

    for k in range(3):
        est = step(0.1 * k)
    assert est.detected and np.linalg.norm(est.position - truth) < 0.006
    # The wrist right above the rock: nothing seen, the track is held with its age.
    cover = BucketPose((-0.03 + 0.12, 0.02, 0.12), 0.0)
    held = step(0.5, cover)
    assert not held.detected and held.reason == Reason.OCCLUDED_BY_BUCKET
    assert np.linalg.norm(held.position - truth) < 0.006 and abs(held.age_s - 0.3) < 1e-9
    assert held.confidence < est.confidence
    # The rock is in the bucket and lifted: the camera sees it but inside the bucket's volume.
    lift = BucketPose((0.05, -0.02, 0.10), 0.0)
    scene.rocks[0] = (np.array([0.05 - 0.06, -0.02, 0.10 + 0.004 + 0.025]), 0.05, 0.0)
    carried = step(0.8, lift)
    # Not a rock in the soil: the rock in the bucket, and the track follows it there at once.
    assert carried.detected and carried.in_bucket and carried.reason == Reason.IN_BUCKET
    assert np.linalg.norm(carried.position[:2] - scene.rocks[0][0][:2]) < 0.01 and carried.age_s == 0.0
    assert carried.candidates == []
    # Dropped back at a new place, away from the bucket: after re-acquisition the track follows.
    scene.rocks[0] = rock_on_ground(scene, (0.04, -0.03), 0.05, 0.3)
    outs = [step(1.0 + 0.1 * k) for k in range(4)]
    assert outs[-1].detected and np.linalg.norm(outs[-1].position - scene.rocks[0][0]) < 0.006


import pytest  # noqa: E402


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_a_blind_camera_gives_no_rock_position(encoding):
    """Good frames, then 10 s of all-zero (16UC1) or all-NaN (32FC1) frames: after the first blind
    frame no position is given (the policy goes stale and holds still), whether a bucket is in view or not."""
    perc = RockPerception(calibration=TrayCalibration(T, (0.16, 0.16), INTR))
    scene = TrayScene(tray_size=(0.16, 0.16), wall_height=0.06)
    scene.rocks.append(rock_on_ground(scene, (-0.03, 0.02), 0.05, 0.5))
    rng = np.random.default_rng(1)
    for k in range(3):
        d, _ = render_scene(scene, INTR, T)
        good = perc.process(to_16uc1(add_noise(d, rng)), "16UC1", INTR, 0.1 * k)
    assert good.detected
    h, w = INTR.height, INTR.width
    blind = np.zeros((h, w), np.uint16) if encoding == "16UC1" else np.full((h, w), np.nan, np.float32)
    bucket = BucketPose((0.09, 0.02, 0.12), 0.0)
    outs = [perc.process(blind, encoding, INTR, 0.3 + 0.1 * k, bucket=bucket if k % 2 else None) for k in range(100)]
    assert all(o.position is None and o.reason == Reason.NO_VALID_DEPTH for o in outs), {o.reason for o in outs}
