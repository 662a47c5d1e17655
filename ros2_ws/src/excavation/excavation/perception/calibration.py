"""Tray calibration: the camera's pose in the tray frame, its file format, and finding it from depth.

Calibration YAML (``format_version: 1``)::

    format_version: 1
    tray_frame: tray                       # frame the pose is expressed in
    camera_frame: camera_depth_optical_frame
    tray_size: [0.16, 0.16]                # inner soil area along tray x, y (m)
    T_tray_camera:                         # 4x4, row-major: optical frame (z forward, x right,
      - [r00, r01, r02, tx]                #   y down) -> tray frame; p_tray = T @ p_camera
      - [r10, r11, r12, ty]
      - [r20, r21, r22, tz]
      - [0.0, 0.0, 0.0, 1.0]
    camera:                                # optional: intrinsics the calibration was made with
      width: 640
      height: 480
      K: [fx, 0, cx, 0, fy, cy, 0, 0, 1]

Finding the tray (:func:`calibrate_from_depth`): the empty, levelled soil surface is the plane around
the image point the user aims at (image centre by default). Fit that plane, take the connected region
of its inliers, fit the smallest rectangle around it in the plane: its centre is the tray origin, the
plane normal (toward the camera) is tray z, and of the rectangle's axes the one pointing most toward
the ``x_hint`` image direction is tray x (x points away from the robot; tell which way that is in
the image). The tray's known size checks that the region found is the tray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import yaml

from .camera import CameraIntrinsics, validate_pose
from .errors import CalibrationError, PerceptionInputError

FORMAT_VERSION = 1

# Image directions as camera-frame vectors (optical frame: x right, y down).
IMAGE_DIRECTIONS = {
    "up": np.array([0.0, -1.0, 0.0]),
    "down": np.array([0.0, 1.0, 0.0]),
    "left": np.array([-1.0, 0.0, 0.0]),
    "right": np.array([1.0, 0.0, 0.0]),
}


@dataclass
class TrayCalibration:
    T_tray_camera: np.ndarray
    tray_size: tuple[float, float] = (0.20, 0.20)
    intrinsics: CameraIntrinsics | None = None
    tray_frame: str = "tray"
    camera_frame: str = "camera_depth_optical_frame"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.T_tray_camera = validate_pose(self.T_tray_camera, "T_tray_camera")
        ts = tuple(float(v) for v in np.asarray(self.tray_size, dtype=float).ravel())
        if len(ts) != 2 or min(ts) <= 0 or not all(np.isfinite(ts)):
            raise PerceptionInputError(f"tray_size: expected two positive lengths in metres, got {self.tray_size}")
        self.tray_size = ts

    def to_dict(self) -> dict:
        d = {
            "format_version": FORMAT_VERSION,
            "tray_frame": self.tray_frame,
            "camera_frame": self.camera_frame,
            "tray_size": [float(v) for v in self.tray_size],
            "T_tray_camera": [[float(round(v, 9)) for v in row] for row in self.T_tray_camera],
        }
        if self.intrinsics is not None:
            d["camera"] = self.intrinsics.to_dict()
        if self.info:
            d["info"] = self.info
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibration") -> "TrayCalibration":
        if not isinstance(d, dict):
            raise PerceptionInputError(f"{source}: expected a YAML mapping, got {type(d).__name__}")
        ver = d.get("format_version")
        if ver != FORMAT_VERSION:
            raise PerceptionInputError(f"{source}: format_version {ver!r} is not supported; expected {FORMAT_VERSION}")
        for key in ("T_tray_camera", "tray_size"):
            if key not in d:
                raise PerceptionInputError(f"{source}: missing key {key!r}")
        try:
            return cls(
                T_tray_camera=np.asarray(d["T_tray_camera"], dtype=float),
                tray_size=tuple(d["tray_size"]),
                intrinsics=CameraIntrinsics.from_dict(d["camera"]) if d.get("camera") else None,
                tray_frame=str(d.get("tray_frame", "tray")),
                camera_frame=str(d.get("camera_frame", "camera_depth_optical_frame")),
                info=dict(d.get("info") or {}),
            )
        except (PerceptionInputError, ValueError, TypeError) as exc:
            raise PerceptionInputError(f"{source}: {exc}") from exc


def load_calibration(path: str | os.PathLike) -> TrayCalibration:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise PerceptionInputError(f"calibration file {os.fspath(path)!r} does not exist") from exc
    except yaml.YAMLError as exc:
        raise PerceptionInputError(f"calibration file {os.fspath(path)!r} is not valid YAML: {exc}") from exc
    return TrayCalibration.from_dict(data, f"calibration file {os.fspath(path)!r}")


def save_calibration(cal: TrayCalibration, path: str | os.PathLike) -> None:
    header = (
        "# Tray calibration for excavation perception (format_version 1).\n"
        "# T_tray_camera: camera optical frame (z forward, x right, y down) in the tray frame\n"
        "# (origin at the tray centre on the soil surface, z up, x away from the robot), row-major.\n"
    )
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(header)
        yaml.safe_dump(cal.to_dict(), fh, sort_keys=False, default_flow_style=None)


def _camera_points(depth_m: np.ndarray, intr: CameraIntrinsics, step: int):
    v, u = np.mgrid[0 : intr.height : step, 0 : intr.width : step]
    z = depth_m[::step, ::step]
    x = (u - intr.cx) / intr.fx * z
    y = (v - intr.cy) / intr.fy * z
    return np.stack([x, y, z], axis=-1), z > 0


def _fit_plane(p: np.ndarray, iterations: int = 5, min_tol: float = 0.003):
    """Trimmed SVD plane fit: (unit normal n, offset d) with n . p + d = 0, and the inlier mask."""
    inl = np.ones(len(p), bool)
    n = np.array([0.0, 0.0, 1.0])
    d = 0.0
    for _ in range(iterations):
        q = p[inl]
        c = q.mean(axis=0)
        _, _, vt = np.linalg.svd(q - c, full_matrices=False)
        n = vt[2]
        d = -float(n @ c)
        r = p @ n + d
        sigma = 1.4826 * np.median(np.abs(r - np.median(r)))
        inl = np.abs(r) < max(3.0 * sigma, min_tol)
        if inl.sum() < 3:
            raise CalibrationError("plane fit: fewer than 3 inliers")
    return n, d, inl


def calibrate_from_depth(
    depth_m: np.ndarray,
    intr: CameraIntrinsics,
    tray_size: tuple[float, float],
    x_hint: str = "up",
    seed_px: tuple[float, float] | None = None,
    plane_tolerance: float = 0.006,
    size_tolerance: float = 0.25,
    step: int = 2,
) -> TrayCalibration:
    """Tray pose from one depth image of the empty, levelled tray (float32 metres, 0 = no data)."""
    if x_hint not in IMAGE_DIRECTIONS:
        raise PerceptionInputError(f"x_hint: expected one of {sorted(IMAGE_DIRECTIONS)}, got {x_hint!r}")
    if depth_m.shape != (intr.height, intr.width):
        raise PerceptionInputError(
            f"depth image is {depth_m.shape[1]}x{depth_m.shape[0]} but the intrinsics say {intr.width}x{intr.height}"
        )
    # Median filter first (holes stay holes): per-pixel noise of a centimetre would otherwise break
    # the surface into specks that the inlier test cannot join.
    filt = cv2.medianBlur(np.ascontiguousarray(depth_m, dtype=np.float32), 5)
    depth_m = np.where(depth_m > 0, filt, 0.0).astype(np.float32)
    pts, valid = _camera_points(depth_m, intr, step)
    gh, gw = valid.shape
    su, sv = seed_px if seed_px is not None else (intr.width / 2, intr.height / 2)
    si, sj = int(np.clip(sv / step, 0, gh - 1)), int(np.clip(su / step, 0, gw - 1))
    # Seed window: a patch around the aimed-at point that lies inside the tray for any sane view.
    r = max(4, min(gh, gw) // 12)
    win_valid = valid[max(si - r, 0) : si + r + 1, max(sj - r, 0) : sj + r + 1]
    win = pts[max(si - r, 0) : si + r + 1, max(sj - r, 0) : sj + r + 1][win_valid]
    if len(win) < 30:
        raise CalibrationError(
            f"too few valid depth pixels ({len(win)}) around the seed pixel ({su:.0f}, {sv:.0f}); aim the camera at the tray"
        )
    n, d, win_inl = _fit_plane(win)
    r_win = win[win_inl] @ n + d
    tol = max(plane_tolerance, 4.0 * 1.4826 * float(np.median(np.abs(r_win - np.median(r_win)))))
    res = np.abs(pts @ n + d)
    mask = (valid & (res < tol)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    nlab, labels = cv2.connectedComponents(mask, connectivity=4)
    lab = labels[si, sj]
    if lab == 0:
        ys, xs = np.nonzero(labels)
        if len(ys) == 0:
            raise CalibrationError("no planar surface found around the seed pixel")
        k = np.argmin((ys - si) ** 2 + (xs - sj) ** 2)
        lab = labels[ys[k], xs[k]]
    region = pts[labels == lab]
    n, d, inl = _fit_plane(region)
    region = region[inl]
    if n @ (-region.mean(axis=0)) < 0:  # normal toward the camera = tray z up
        n, d = -n, -d
    # In-plane basis, then the smallest enclosing rectangle of the surface region.
    e1 = np.cross(n, [0.0, 1.0, 0.0] if abs(n[1]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    origin = -d * n
    uv = np.stack([(region - origin) @ e1, (region - origin) @ e2], axis=1).astype(np.float32)
    (cu, cv), (w, h), ang = cv2.minAreaRect(uv)
    a = np.deg2rad(ang)
    ax1 = np.cos(a) * e1 + np.sin(a) * e2  # rectangle side of length w
    ax2 = np.cross(n, ax1)  # side of length h
    centre = origin + cu * e1 + cv * e2
    hint = IMAGE_DIRECTIONS[x_hint]
    cands = [(ax1, w, h), (-ax1, w, h), (ax2, h, w), (-ax2, h, w)]
    x_axis, len_x, len_y = max(cands, key=lambda c: float(c[0] @ hint))
    if float(x_axis @ hint) < 0.3:
        raise CalibrationError(
            f"x_hint {x_hint!r}: no tray edge points that way in the image (the camera looks along the hint?)"
        )
    y_axis = np.cross(n, x_axis)
    exp_x, exp_y = tray_size
    for got, exp, name in ((len_x, exp_x, "x"), (len_y, exp_y, "y")):
        if abs(got - exp) > size_tolerance * exp:
            raise CalibrationError(
                f"the flat region found is {len_x:.3f} x {len_y:.3f} m (x by y) but the tray is "
                f"{exp_x:.3f} x {exp_y:.3f} m: {name} differs by more than {size_tolerance:.0%}; "
                "is the tray empty and levelled, and the seed pixel on it?"
            )
    T_cam_tray = np.eye(4)
    T_cam_tray[:3, 0], T_cam_tray[:3, 1], T_cam_tray[:3, 2], T_cam_tray[:3, 3] = x_axis, y_axis, n, centre
    T_tray_cam = np.linalg.inv(T_cam_tray)
    info = {
        "measured_size": [round(float(len_x), 4), round(float(len_y), 4)],
        "plane_inliers": int(len(region)),
        "plane_rms_m": round(float(np.sqrt(np.mean((region @ n + d) ** 2))), 5),
        "x_hint": x_hint,
        "plane_tolerance_m": round(float(tol), 5),
    }
    return TrayCalibration(T_tray_cam, (float(exp_x), float(exp_y)), intr, info=info)
