"""Bad input: every case gets a defined result or an error naming the input, never a made-up rock."""

import numpy as np
import pytest

from excavation.perception import (
    CameraIntrinsics,
    PerceptionConfig,
    PerceptionInputError,
    Reason,
    RockDetector,
    RockPerception,
    TrayCalibration,
    decode_depth,
    image_from_buffer,
    look_at,
)
from excavation.perception.bucket_volume import BucketPose
from box_scenes import TrayScene, d435_intrinsics, render_scene, rock_on_ground, to_16uc1

INTR = d435_intrinsics()
T = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))
CFG = PerceptionConfig(tray_size=(0.2, 0.2))


@pytest.fixture(scope="module")
def rock_depth():
    scene = TrayScene(tray_size=(0.2, 0.2))
    scene.rocks.append(rock_on_ground(scene, (0.03, -0.02), 0.05, 0.5))
    return render_scene(scene, INTR, T)[0], scene.rocks[0][0]


def test_wrong_encoding_is_named():
    with pytest.raises(PerceptionInputError, match="encoding 'rgb8'.*16UC1.*32FC1"):
        decode_depth(np.zeros((480, 640, 3), np.uint8), "rgb8", INTR)


def test_pixel_type_must_match_encoding():
    with pytest.raises(PerceptionInputError, match="16UC1.*uint16.*float32"):
        decode_depth(np.zeros((480, 640), np.float32), "16UC1", INTR)
    with pytest.raises(PerceptionInputError, match="32FC1.*float.*uint16"):
        decode_depth(np.zeros((480, 640), np.uint16), "32FC1", INTR)


def test_size_not_matching_intrinsics_is_named():
    with pytest.raises(PerceptionInputError, match=r"320x240.*640x480"):
        decode_depth(np.zeros((240, 320), np.uint16), "16UC1", INTR)
    with pytest.raises(PerceptionInputError, match="intrinsics"):
        RockDetector(CFG).detect(np.zeros((240, 320), np.float32), INTR, T)


def test_missing_or_malformed_camera_pose(rock_depth):
    det = RockDetector(CFG)
    with pytest.raises(PerceptionInputError, match="T_tray_camera.*missing"):
        det.detect(rock_depth[0], INTR, None)
    with pytest.raises(PerceptionInputError, match="T_tray_camera.*4x4"):
        det.detect(rock_depth[0], INTR, np.eye(3))
    bad = T.copy()
    bad[0, 0] = np.nan
    with pytest.raises(PerceptionInputError, match="T_tray_camera.*NaN"):
        det.detect(rock_depth[0], INTR, bad)
    with pytest.raises(PerceptionInputError, match="T_tray_camera.*missing"):
        RockPerception(CFG).process(to_16uc1(rock_depth[0]), "16UC1", INTR, 0.0)


def test_bad_intrinsics_and_bucket_pose():
    with pytest.raises(PerceptionInputError, match="focal"):
        CameraIntrinsics.from_K(np.zeros(9), 640, 480)
    with pytest.raises(PerceptionInputError, match="K must be"):
        CameraIntrinsics.from_K([1, 2, 3], 640, 480)
    with pytest.raises(PerceptionInputError, match="bucket pose"):
        BucketPose((0.0, np.nan, 0.0), 0.0)


def test_nan_and_inf_in_float_depth_are_no_data(rock_depth):
    d = rock_depth[0].copy()
    d[::3, :] = np.nan
    d[1::7, :] = np.inf
    d[2::11, :] = -1.0
    dec = decode_depth(d, "32FC1", INTR)
    assert np.isfinite(dec).all() and (dec >= 0).all()
    est = RockDetector(CFG).detect(dec, INTR, T)
    assert est.detected and np.linalg.norm(est.position[:2] - rock_depth[1][:2]) < 0.008


def test_all_zero_or_all_nan_depth_has_no_rock_and_says_why():
    for img, enc in ((np.zeros((480, 640), np.uint16), "16UC1"), (np.full((480, 640), np.nan, np.float32), "32FC1")):
        est = RockDetector(CFG).detect(decode_depth(img, enc, INTR), INTR, T)
        assert est.position is None and est.ground_height is None
        assert est.reason == Reason.NO_VALID_DEPTH


def test_holes_over_the_rock_do_not_invent_it_elsewhere(rock_depth):
    d, truth = rock_depth
    d = d.copy()
    # A large hole right where the rock is: what is left must not be mistaken for a rock.
    u = int(INTR.cx - truth[1] * 615 / 0.6)
    v = int(INTR.cy - truth[0] * 615 / 0.6)
    d[v - 60 : v + 60, u - 60 : u + 60] = 0.0
    est = RockDetector(CFG).detect(d, INTR, T)
    assert est.position is None and est.reason == Reason.NONE_ABOVE_GROUND
    # Random 30 % holes still give the rock.
    d2 = rock_depth[0].copy()
    d2[np.random.default_rng(1).random(d2.shape) < 0.3] = 0.0
    est2 = RockDetector(CFG).detect(d2, INTR, T)
    assert est2.detected and np.linalg.norm(est2.position[:2] - truth[:2]) < 0.008


def test_camera_not_seeing_the_tray():
    away = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 1.5])  # looking up
    est = RockDetector(CFG).detect(np.full((480, 640), 1.0, np.float32), INTR, away)
    assert est.position is None and est.reason == Reason.NO_VALID_DEPTH


def test_image_from_buffer_handles_step_and_byte_order():
    img = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 300).astype(np.uint16)
    padded = np.zeros((3, 10), np.uint8)
    padded[:, :8] = img.view(np.uint8).reshape(3, 8)
    out = image_from_buffer(padded.tobytes(), "16UC1", 4, 3, step=10)
    assert np.array_equal(out, img)
    big = image_from_buffer(img.byteswap().tobytes(), "16UC1", 4, 3, is_bigendian=True)
    assert np.array_equal(big, img)
    with pytest.raises(PerceptionInputError, match="bytes"):
        image_from_buffer(b"\x00" * 10, "16UC1", 4, 3)


def test_calibration_dict_errors_name_the_key():
    with pytest.raises(PerceptionInputError, match="missing key 'T_tray_camera'"):
        TrayCalibration.from_dict({"format_version": 1, "tray_size": [0.2, 0.2]})
    with pytest.raises(PerceptionInputError, match="format_version"):
        TrayCalibration.from_dict({"format_version": 7, "tray_size": [0.2, 0.2], "T_tray_camera": np.eye(4).tolist()})
    with pytest.raises(PerceptionInputError, match="tray_size"):
        TrayCalibration.from_dict({"format_version": 1, "tray_size": [0.2, -1], "T_tray_camera": np.eye(4).tolist()})
