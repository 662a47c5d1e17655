"""Command line: compute the tray calibration from one depth image of the empty tray.

Example::

    calibrate_tray --depth empty_tray.png --intrinsics camera_info.yaml \\
        --tray-size 0.16 0.16 --x-hint up --output calibration.yaml

Depth: .npy (uint16 = millimetres, float = metres) or a 16-bit PNG (millimetres, as the RealSense
tools save it). Intrinsics: --intrinsics YAML (K/width/height or camera_info_manager's format) or
--fx/--fy/--cx/--cy (the image gives width and height).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import yaml

from .calibration import IMAGE_DIRECTIONS, calibrate_from_depth, save_calibration
from .camera import CameraIntrinsics
from .depth import decode_depth
from .errors import CalibrationError, PerceptionInputError


def load_depth_file(path: str, depth_scale: float | None = None) -> np.ndarray:
    """float32 metres (0 = no data) from .npy or 16-bit .png."""
    if not os.path.exists(path):
        raise PerceptionInputError(f"--depth: file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        img = np.load(path)
    elif ext == ".png":
        import cv2

        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise PerceptionInputError(f"--depth: cannot read {path!r} as an image")
        if img.dtype != np.uint16:
            raise PerceptionInputError(f"--depth: {path!r} is an {img.dtype} PNG; expected a 16-bit depth PNG (millimetres)")
    else:
        raise PerceptionInputError(f"--depth: {path!r} has extension {ext!r}; expected .npy or .png")
    if img.ndim != 2:
        raise PerceptionInputError(f"--depth: {path!r} has shape {img.shape}; expected a single-channel image")
    if depth_scale is not None:
        return decode_depth(img.astype(np.float32) * np.float32(depth_scale), "32FC1")
    if img.dtype == np.uint16:
        return decode_depth(img, "16UC1")
    if img.dtype.kind == "f":
        return decode_depth(img, "32FC1")
    raise PerceptionInputError(
        f"--depth: {path!r} holds {img.dtype}; expected uint16 millimetres or float metres (or pass --depth-scale)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="calibrate_tray",
        description="Compute the tray frame (T_tray_camera) from one depth image of the empty, levelled tray "
        "and write the calibration YAML the perception node reads.",
    )
    p.add_argument("--depth", required=True, help="depth image: .npy (uint16 mm or float m) or 16-bit .png (mm)")
    p.add_argument("--depth-scale", type=float, default=None, help="metres per depth unit, overriding the dtype rule")
    p.add_argument("--intrinsics", help="YAML with K (9 numbers), width, height (or camera_info_manager format)")
    p.add_argument("--fx", type=float)
    p.add_argument("--fy", type=float)
    p.add_argument("--cx", type=float)
    p.add_argument("--cy", type=float)
    p.add_argument("--tray-size", type=float, nargs=2, default=(0.20, 0.20), metavar=("X", "Y"),
                   help="inner soil area of the tray along tray x and y (m); default 0.20 0.20")
    p.add_argument("--x-hint", choices=sorted(IMAGE_DIRECTIONS), default="up",
                   help="image direction tray +x (away from the robot) roughly points to; default up")
    p.add_argument("--seed-px", type=float, nargs=2, metavar=("U", "V"),
                   help="a pixel on the soil surface (default: image centre)")
    p.add_argument("--plane-tolerance", type=float, default=0.006, help="plane inlier distance (m)")
    p.add_argument("--size-tolerance", type=float, default=0.25, help="allowed relative size mismatch")
    p.add_argument("--camera-frame", default="camera_depth_optical_frame")
    p.add_argument("--output", "-o", default="calibration.yaml", help="calibration YAML to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        depth = load_depth_file(args.depth, args.depth_scale)
        h, w = depth.shape
        if args.intrinsics:
            with open(args.intrinsics, encoding="utf-8") as fh:
                intr = CameraIntrinsics.from_dict(yaml.safe_load(fh))
        else:
            vals = [args.fx, args.fy, args.cx, args.cy]
            if any(v is None for v in vals):
                raise PerceptionInputError("intrinsics: pass --intrinsics FILE or all of --fx --fy --cx --cy")
            intr = CameraIntrinsics(args.fx, args.fy, args.cx, args.cy, w, h)
        cal = calibrate_from_depth(
            depth, intr, tuple(args.tray_size), args.x_hint, tuple(args.seed_px) if args.seed_px else None,
            args.plane_tolerance, args.size_tolerance,
        )
    except (PerceptionInputError, CalibrationError, OSError, yaml.YAMLError) as exc:
        print(f"calibrate_tray: error: {exc}", file=sys.stderr)
        return 2
    cal.camera_frame = args.camera_frame
    save_calibration(cal, args.output)
    T = cal.T_tray_camera
    print(f"camera position in tray: {np.round(T[:3, 3], 4).tolist()} m")
    print(f"camera optical axis in tray: {np.round(T[:3, 2], 4).tolist()}")
    print(f"measured tray surface: {cal.info['measured_size'][0]:.3f} x {cal.info['measured_size'][1]:.3f} m "
          f"(given {cal.tray_size[0]:.3f} x {cal.tray_size[1]:.3f}); plane rms {cal.info['plane_rms_m'] * 1000:.1f} mm")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
