"""Calibration: YAML round trip and the CLI recovering a known tray pose from an empty-tray image."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from excavation.perception import PerceptionInputError, TrayCalibration, load_calibration, look_at, save_calibration
from excavation.perception.calibrate_cli import main
from box_scenes import TrayScene, add_noise, d435_intrinsics, render_scene, to_16uc1

INTR = d435_intrinsics()
TRAY = (0.24, 0.18)
# Camera offset and yawed, the tray's +x roughly toward the image top.
T_TRUE = look_at([-0.05, 0.06, 0.58], [0.01, -0.02, 0.0], up=(1.0, 0.25, 0.0))


def rot_angle_deg(Ra, Rb):
    c = (np.trace(Ra.T @ Rb) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


@pytest.fixture(scope="module")
def empty_tray_mm():
    scene = TrayScene(tray_size=TRAY, wall_height=0.03)
    depth, _ = render_scene(scene, INTR, T_TRUE)
    return to_16uc1(add_noise(depth, np.random.default_rng(0), rel_std=0.01, dropout=0.02))


def check(cal: TrayCalibration):
    T = cal.T_tray_camera
    assert np.linalg.norm(T[:3, 3] - T_TRUE[:3, 3]) < 0.006, T[:3, 3]
    assert rot_angle_deg(T[:3, :3], T_TRUE[:3, :3]) < 1.0
    assert cal.tray_size == TRAY


def test_cli_recovers_tray_pose_from_npy(tmp_path, empty_tray_mm, capsys):
    np.save(tmp_path / "d.npy", empty_tray_mm)
    out = tmp_path / "cal.yaml"
    rc = main(["--depth", str(tmp_path / "d.npy"), "--fx", "615", "--fy", "615", "--cx", "320", "--cy", "240",
               "--tray-size", *map(str, TRAY), "--x-hint", "up", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    cal = load_calibration(out)
    check(cal)
    assert cal.intrinsics.width == 640 and cal.intrinsics.fx == 615


def test_cli_png_with_intrinsics_yaml_and_x_hint(tmp_path, empty_tray_mm):
    cv2.imwrite(str(tmp_path / "d.png"), empty_tray_mm)
    (tmp_path / "ci.yaml").write_text(yaml.safe_dump({"image_width": 640, "image_height": 480,
                                                      "camera_matrix": {"data": INTR.K.ravel().tolist()}}))
    out = tmp_path / "cal.yaml"
    assert main(["--depth", str(tmp_path / "d.png"), "--intrinsics", str(tmp_path / "ci.yaml"),
                 "--tray-size", *map(str, TRAY), "-o", str(out)]) == 0
    check(load_calibration(out))
    # Hinting the wrong image direction swaps x and y, and the non-square tray no longer fits.
    assert main(["--depth", str(tmp_path / "d.png"), "--intrinsics", str(tmp_path / "ci.yaml"),
                 "--tray-size", *map(str, TRAY), "--x-hint", "left", "-o", str(tmp_path / "x.yaml")]) == 2


def test_cli_errors_are_clear(tmp_path, empty_tray_mm, capsys):
    assert main(["--depth", str(tmp_path / "missing.npy"), "--fx", "1", "--fy", "1", "--cx", "1", "--cy", "1"]) == 2
    assert "missing.npy" in capsys.readouterr().err
    np.save(tmp_path / "d.npy", empty_tray_mm)
    assert main(["--depth", str(tmp_path / "d.npy")]) == 2
    assert "--fx" in capsys.readouterr().err
    # Wrong tray size: the flat region found does not match.
    assert main(["--depth", str(tmp_path / "d.npy"), "--fx", "615", "--fy", "615", "--cx", "320", "--cy", "240",
                 "--tray-size", "0.5", "0.5", "-o", str(tmp_path / "c.yaml")]) == 2
    assert "0.500 x 0.500" in capsys.readouterr().err


def test_cli_help_runs_as_module():
    r = subprocess.run([sys.executable, "-m", "excavation.perception.calibrate_cli", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--tray-size" in r.stdout and "--x-hint" in r.stdout


def test_yaml_round_trip_and_file_errors(tmp_path):
    cal = TrayCalibration(T_TRUE, (0.16, 0.16), INTR)
    save_calibration(cal, tmp_path / "c.yaml")
    back = load_calibration(tmp_path / "c.yaml")
    assert np.allclose(back.T_tray_camera, T_TRUE, atol=1e-8) and back.tray_size == (0.16, 0.16)
    assert back.intrinsics == INTR
    with pytest.raises(PerceptionInputError, match="does not exist"):
        load_calibration(tmp_path / "nope.yaml")
    bad = cal.to_dict()
    bad["T_tray_camera"][0][0] = 2.0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(PerceptionInputError, match="bad.yaml.*rotation"):
        load_calibration(tmp_path / "bad.yaml")
