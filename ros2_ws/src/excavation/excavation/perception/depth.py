"""Depth image decoding and back-projection into the tray frame.

Encodings: ``16UC1`` / ``mono16`` (uint16 millimetres, realsense-ros) and ``32FC1`` (float32 metres,
simulators). Decoded depth is float32 metres with 0 meaning "no data", because OpenCV's filters
cannot carry NaN and 0 is what the RealSense itself writes for holes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .camera import CameraIntrinsics
from .errors import PerceptionInputError

# encoding -> (dtype of the pixels, metres per unit)
ENCODINGS: dict[str, tuple[type, float]] = {
    "16UC1": (np.uint16, 0.001),
    "mono16": (np.uint16, 0.001),
    "32FC1": (np.float32, 1.0),
}


def _check_encoding(encoding: str) -> tuple[type, float]:
    if encoding not in ENCODINGS:
        raise PerceptionInputError(
            f"depth image encoding {encoding!r} is not supported; expected '16UC1' (uint16 millimetres) "
            "or '32FC1' (float32 metres)"
        )
    return ENCODINGS[encoding]


def image_from_buffer(
    data: Any, encoding: str, width: int, height: int, step: int | None = None, is_bigendian: bool = False
) -> np.ndarray:
    """The pixel array of a sensor_msgs/Image's fields, without cv_bridge (no copy when possible)."""
    dtype, _ = _check_encoding(encoding)
    if int(width) <= 0 or int(height) <= 0:
        raise PerceptionInputError(f"depth image: width and height must be > 0, got {width}x{height}")
    itemsize = np.dtype(dtype).itemsize
    step = width * itemsize if step is None else int(step)
    if step < width * itemsize:
        raise PerceptionInputError(f"depth image: step {step} is smaller than width*{itemsize} = {width * itemsize}")
    buf = np.frombuffer(bytes(data) if isinstance(data, (list, tuple)) else data, dtype=np.uint8)
    if buf.size != step * height:
        raise PerceptionInputError(
            f"depth image: data has {buf.size} bytes, expected step*height = {step}*{height} = {step * height}"
        )
    rows = buf.reshape(height, step)[:, : width * itemsize]
    dt = np.dtype(dtype).newbyteorder(">" if is_bigendian else "<")
    return np.ascontiguousarray(rows).view(dt).reshape(height, width).astype(dtype, copy=False)


def decode_depth(image: Any, encoding: str, intrinsics: CameraIntrinsics | None = None) -> np.ndarray:
    """float32 metres (0 = no data) from a 16UC1 or 32FC1 depth image.

    Raises PerceptionInputError for an unknown encoding, a pixel type that does not match it, a
    non-2-D image, or a size that differs from the intrinsics'.
    """
    dtype, scale = _check_encoding(encoding)
    if image is None:
        raise PerceptionInputError("depth image: missing (None)")
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim != 2:
        raise PerceptionInputError(f"depth image: expected a single-channel 2-D image, got shape {img.shape}")
    if dtype is np.uint16 and img.dtype != np.uint16:
        raise PerceptionInputError(
            f"depth image: encoding {encoding!r} needs uint16 millimetre pixels, got {img.dtype}"
        )
    if dtype is np.float32 and img.dtype.kind != "f":
        raise PerceptionInputError(
            f"depth image: encoding {encoding!r} needs float metre pixels, got {img.dtype} "
            "(integer millimetres are '16UC1')"
        )
    if intrinsics is not None and img.shape != (intrinsics.height, intrinsics.width):
        raise PerceptionInputError(
            f"depth image is {img.shape[1]}x{img.shape[0]} (width x height) but the intrinsics "
            f"(CameraInfo) say {intrinsics.width}x{intrinsics.height}"
        )
    if dtype is np.uint16:
        return img.astype(np.float32) * np.float32(scale)
    out = img.astype(np.float32, copy=True)
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out


def project_points(points_tray: np.ndarray, intr: CameraIntrinsics, T_tray_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N,2) and camera depths (N,) of tray-frame points."""
    T_cam_tray = np.linalg.inv(T_tray_camera)
    pc = points_tray @ T_cam_tray[:3, :3].T + T_cam_tray[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([intr.fx * pc[:, 0] / z + intr.cx, intr.fy * pc[:, 1] / z + intr.cy], axis=1)
    return uv, z


def box_roi(
    intr: CameraIntrinsics, T_tray_camera: np.ndarray, lo: np.ndarray, hi: np.ndarray, pad: int = 2
) -> tuple[int, int, int, int] | None:
    """Image rectangle (u0, v0, u1, v1), end exclusive, that holds the tray-frame box [lo, hi].

    The whole image when part of the box is behind the camera; None when the box is out of view.
    """
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    uv, z = project_points(corners, intr, T_tray_camera)
    if np.any(z <= 1e-3):
        if np.all(z <= 1e-3):
            return None
        return 0, 0, intr.width, intr.height
    u0 = max(int(np.floor(uv[:, 0].min())) - pad, 0)
    v0 = max(int(np.floor(uv[:, 1].min())) - pad, 0)
    u1 = min(int(np.ceil(uv[:, 0].max())) + pad + 1, intr.width)
    v1 = min(int(np.ceil(uv[:, 1].max())) + pad + 1, intr.height)
    if u1 <= u0 or v1 <= v0:
        return None
    return u0, v0, u1, v1


class RayCache:
    """Tray-frame ray directions of a decimated pixel grid, scaled so that point = origin + depth * ray.

    Back-projection is then one multiply-add per point; the rays only change with the intrinsics,
    the camera pose or the ROI, so they are computed once and reused frame after frame.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._rays: np.ndarray | None = None
        self._origin: np.ndarray | None = None

    def get(self, intr: CameraIntrinsics, T: np.ndarray, roi: tuple[int, int, int, int], step: int):
        key = (intr.key(), T.tobytes(), roi, step)
        if key != self._key:
            u0, v0, u1, v1 = roi
            u = np.arange(u0, u1, step, dtype=np.float64)
            v = np.arange(v0, v1, step, dtype=np.float64)
            uu, vv = np.meshgrid(u, v)
            d_cam = np.stack([(uu.ravel() - intr.cx) / intr.fx, (vv.ravel() - intr.cy) / intr.fy, np.ones(uu.size)], axis=1)
            self._rays = (d_cam @ T[:3, :3].T).astype(np.float32)
            self._origin = T[:3, 3].astype(np.float32)
            self._key = key
        return self._origin, self._rays


def backproject(depth_m: np.ndarray, intr: CameraIntrinsics, T_tray_camera: np.ndarray, step: int = 1) -> np.ndarray:
    """All valid pixels of a full depth image as tray-frame points (N,3); a convenience for tools."""
    origin, rays = RayCache().get(intr, np.asarray(T_tray_camera, float), (0, 0, intr.width, intr.height), step)
    z = depth_m[::step, ::step].ravel()
    ok = z > 0
    return origin + z[ok, None] * rays[ok]
