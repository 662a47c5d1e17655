"""Property-based tests (hypothesis) over perception's input boundaries: whatever a depth image,
CameraInfo or bucket pose holds, the library either gives an estimate it can stand by (no position,
or a finite one inside the tray) or refuses with PerceptionInputError naming the input -- never
another exception, never a made-up rock."""

import os
from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from excavation.perception import (BucketPose, CameraIntrinsics, PerceptionInputError, RockPerception, TrayCalibration,
                                   image_from_buffer, look_at)

W, H = 64, 48
INTR = CameraIntrinsics(fx=60.0, fy=60.0, cx=32.0, cy=24.0, width=W, height=H)
T = look_at([0.0, 0.0, 0.6], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))
TRAY = (0.4, 0.3)
# Derandomized: the same examples every run, so CI is reproducible; raise max_examples locally to hunt.
SETTINGS = settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "100")), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def perception():
    return RockPerception(calibration=TrayCalibration(T, TRAY, INTR))


def check_estimate(est):
    if est.position is not None:
        p = np.asarray(est.position)
        assert np.all(np.isfinite(p))
        assert abs(p[0]) <= TRAY[0] / 2 and abs(p[1]) <= TRAY[1] / 2
    for c in est.candidates:
        assert np.all(np.isfinite(c.position)) and np.isfinite(c.protrusion)


depth_mm = hnp.arrays(np.uint16, (H, W), elements=st.one_of(st.just(0), st.integers(0, 65535),
                                                            st.integers(550, 650)))
depth_m = hnp.arrays(np.float32, (H, W), elements=st.one_of(
    st.just(np.nan), st.just(np.inf), st.just(-np.inf), st.just(0.0),
    st.floats(-10.0, 100.0, width=32), st.floats(0.5, 0.75, width=32)))


@SETTINGS
@given(depth_mm)
def test_any_16uc1_frame_gives_an_estimate_or_a_clear_refusal(img):
    check_estimate(perception().process(img, "16UC1", INTR, 0.0))


@SETTINGS
@given(depth_m)
def test_any_32fc1_frame_gives_an_estimate_or_a_clear_refusal(img):
    check_estimate(perception().process(img, "32FC1", INTR, 0.0))


@SETTINGS
@given(encoding=st.sampled_from(["16UC1", "32FC1", "mono16", "rgb8", "", "16uc1"]),
       width=st.integers(-2, 80), height=st.integers(-2, 60), pad=st.integers(-4, 8),
       bigendian=st.booleans(), nbytes_delta=st.integers(-3, 3))
def test_any_image_message_layout_is_decoded_or_refused_by_name(encoding, width, height, pad, bigendian, nbytes_delta):
    item = 2 if encoding in ("16UC1", "mono16", "16uc1") else 4
    step = max(width, 0) * item + pad
    data = bytes(max(0, step * max(height, 0) + nbytes_delta))
    try:
        img = image_from_buffer(data, encoding, width, height, step, bigendian)
    except PerceptionInputError as exc:
        assert str(exc)  # says what was wrong
        return
    assert img.shape == (height, width)
    try:
        check_estimate(perception().process(img, encoding, INTR, 0.0))
    except PerceptionInputError as exc:
        assert "depth image" in str(exc) or "encoding" in str(exc)


finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e3, 1e3))


@SETTINGS
@given(k=st.lists(finite_or_not, min_size=0, max_size=12), width=st.integers(-5, 5000), height=st.integers(-5, 5000))
def test_any_camera_info_is_accepted_only_when_usable(k, width, height):
    try:
        intr = CameraIntrinsics.from_camera_info(SimpleNamespace(k=k, width=width, height=height))
    except PerceptionInputError as exc:
        assert str(exc)
        return
    assert intr.width > 0 and intr.height > 0 and intr.fx > 0 and intr.fy > 0
    assert all(np.isfinite(v) for v in (intr.fx, intr.fy, intr.cx, intr.cy))


@SETTINGS
@given(tip=st.lists(finite_or_not, min_size=3, max_size=3), q=st.lists(finite_or_not, min_size=4, max_size=4))
def test_any_bucket_pose_is_a_rotation_or_refused(tip, q):
    try:
        pose = BucketPose.from_quaternion(tip, q)
    except PerceptionInputError as exc:
        assert "bucket pose" in str(exc)
        return
    R = pose.rotation
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-4) and np.all(np.isfinite(pose.tip_xyz))
    # And the detector takes it, whatever it is.
    img = np.full((H, W), 600, np.uint16)
    check_estimate(perception().process(img, "16UC1", INTR, 0.0, bucket=pose))
