"""Public data classes: the rendered ``Scene`` and the per-rock ground truth ``RockTruth``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VISIBLE_MIN_PROTRUSION = 0.012
VISIBLE_MIN_FRACTION = 0.5


@dataclass
class RockTruth:
    centre: np.ndarray  # (3,) tray frame: superquadric centre / polyhedron vertex mean
    size: np.ndarray  # (3,) full extents along tray x, y, z (axis-aligned box of the posed rock)
    shape: str  # "round" | "flat" | "angular" | "elongated"
    protrusion: float  # highest rock point minus soil height under the centre (m)
    visible_fraction: float  # visible / unoccluded pixel count (bucket/arm occlusion only)
    in_bucket: bool
    burial: float = 0.0  # fraction of the rock's height below the soil under its centre
    axes: np.ndarray = field(default_factory=lambda: np.zeros(3))  # full extents in the rock frame
    R: np.ndarray = field(default_factory=lambda: np.eye(3))  # rock frame in tray frame
    top: np.ndarray = field(default_factory=lambda: np.zeros(3))  # highest surface point, tray frame

    @property
    def visible(self) -> bool:
        return (not self.in_bucket) and self.protrusion >= VISIBLE_MIN_PROTRUSION and self.visible_fraction >= VISIBLE_MIN_FRACTION


@dataclass
class Scene:
    family: str
    seed: int
    depth: np.ndarray  # (H, W) float32 forward-z metres, 0 = no data (sensor model applied)
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    T_tray_camera: np.ndarray  # 4x4, camera optical frame (x right, y down, z fwd) in tray frame
    tray_size: tuple  # inner soil area (sx, sy) m
    rocks: list  # list[RockTruth]
    T_tray_bucket: np.ndarray | None
    bucket_geometry: object | None  # excavation_contract.BucketGeometry
    labels: np.ndarray  # (H, W) uint8: 0 floor/none, 1 wall, 2 soil, 3 rock, 4 bucket/arm (pre-noise)
    depth_clean: np.ndarray  # (H, W) float32 ideal depth (no sensor effects), 0 = no hit
    rock_ids: np.ndarray  # (H, W) int16 index into rocks of the visible rock, -1 elsewhere
    soil: object = None  # soil.SoilModel
    wall_top: float = 0.04
    params: dict = field(default_factory=dict)  # sampled knobs (slope, grain size, sensor ...)

    def soil_height_at(self, x, y) -> np.ndarray:
        """True soil surface height (tray frame z) at (x, y), rocks excluded; vectorised."""
        return self.soil.height(np.asarray(x, float), np.asarray(y, float))

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def depth_16uc1(scene: Scene) -> np.ndarray:
    """The depth as a RealSense 16UC1 image: uint16 millimetres, 0 = no data."""
    d = np.asarray(scene.depth, dtype=np.float64)
    mm = np.where(np.isfinite(d) & (d > 0), np.round(d * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)
