"""Typed configuration of the rock perception pipeline and its tracker.

Defaults suit a RealSense D435-class camera about 0.6 m above a soil tray and a ~50 mm rock.
``tray_size`` is normally overridden by the calibration file (it is the tray's inner soil area).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class PerceptionConfig:
    """Per-frame rock detection (depth -> points -> ground -> clusters -> rock centre)."""

    tray_size: tuple[float, float] = (0.20, 0.20)
    """Inner soil area of the tray along tray x and y (m), centred on the tray origin."""
    edge_margin: float = 0.005
    """The rock is searched in the tray area shrunk by this much (m): keeps wall tops and the mixed
    pixels at the wall edges out of the clusters."""
    ground_edge_margin: float = 0.015
    """The ground is fitted on the tray area shrunk by this much (m), clear of the walls."""
    z_range: tuple[float, float] = (-0.15, 0.30)
    """Points outside this tray-frame height band are dropped at once (m): floor below, arm above."""
    roi_max_height: float = 0.12
    """Highest tray-frame z (m) the rock can reach: with the tray's outline it bounds the image region
    that is processed at all (the arm above is never looked at)."""
    min_depth: float = 0.10
    max_depth: float = 3.0
    """Depth readings outside [min_depth, max_depth] (m) count as no data."""
    decimation: int = 2
    """Use every n-th pixel in both directions inside the tray's image region."""
    median_ksize: int = 5
    """Median filter (3 or 5; 0/1 = off) on the depth before decimation: removes per-pixel noise and
    speckle while keeping the rock's edges sharp."""
    min_ground_points: int = 150
    """Fewer valid soil points than this in the tray => no ground, no rock (reason: no valid depth)."""
    ground_model: str = "plane"
    """"plane" (tilted plane z = a x + b y + c, robust fit) or "constant" (one robust height)."""
    ground_fit_max_points: int = 2500
    ground_fit_iterations: int = 4
    ground_inlier_sigma: float = 3.0
    ground_inlier_min: float = 0.004
    """A soil point is a ground inlier within max(sigma * robust std, min) of the plane (m)."""
    ground_max_slope: float = 0.25
    """A fitted slope steeper than this (dz/dx) is not believed; the constant model is used instead."""
    min_height_above_ground: float = 0.015
    """Points at least this high above the ground (m) may belong to the rock."""
    max_height_above_ground: float = 0.15
    """Points higher than this above the ground (m) are the arm, a hand, ... never the rock."""
    cell_size: float = 0.005
    """Grid cell (m) of the occupancy map the above-ground points are clustered on."""
    close_iterations: int = 1
    """Morphological closing (3x3) of the occupancy map: bridges single-cell dropouts in a rock."""
    min_cluster_points: int = 12
    min_cluster_area: float = 0.0003
    """A rock candidate covers at least this much tray area (m^2; 0.0003 ~ a 17 mm square)."""
    max_cluster_extent: float = 0.11
    """A candidate whose bounding box is longer than this (m) is a soil heap or a wall, not the rock."""
    rock_nominal_size: float = 0.05
    """Side of the expected rock (m); used for confidence only."""
    rock_half_height: float = 0.025
    """Assumed half height of the rock (m). The centre is put at top - max(rock_half_height,
    protrusion / 2): exact for a rock of the assumed size however deep it is buried, and the midpoint
    between top and ground when the rock stands out more than its assumed height."""
    top_percentile: float = 70.0
    """Percentile of the cluster's heights taken as its top surface (robust to noise and side faces)."""
    bucket_margin: float = 0.015
    """The bucket's volume is inflated by this much (m) before its points are removed."""
    arm_radius: float = 0.06
    """Radius (m) of the column above the flange (wrist, forearm) removed with the bucket."""
    prior_gate: float = 0.06
    """With a tracked position, the nearest candidate within this distance (m, in xy) is preferred."""

    def validate(self) -> "PerceptionConfig":
        if len(self.tray_size) != 2 or min(self.tray_size) <= 0:
            raise ValueError(f"PerceptionConfig.tray_size must be two positive lengths (m), got {self.tray_size}")
        if self.decimation < 1:
            raise ValueError(f"PerceptionConfig.decimation must be >= 1, got {self.decimation}")
        if self.median_ksize not in (0, 1, 3, 5):
            raise ValueError(f"PerceptionConfig.median_ksize must be 0, 1, 3 or 5, got {self.median_ksize}")
        if self.ground_model not in ("plane", "constant"):
            raise ValueError(f"PerceptionConfig.ground_model must be 'plane' or 'constant', got {self.ground_model!r}")
        if not 0 < self.min_height_above_ground < self.max_height_above_ground:
            raise ValueError("PerceptionConfig: need 0 < min_height_above_ground < max_height_above_ground")
        if self.cell_size <= 0:
            raise ValueError(f"PerceptionConfig.cell_size must be > 0, got {self.cell_size}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PerceptionConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"PerceptionConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kw).validate()


@dataclass(frozen=True)
class TrackerConfig:
    """Keeps the rock estimate steady across frames."""

    gate: float = 0.06
    """A detection farther than this (m) from the track is an outlier (another object, a glitch)."""
    smoothing: float = 0.5
    """Weight of a new in-gate detection of confidence 1 in the exponential average (1 = no
    smoothing); a detection's weight is this times its confidence."""
    reacquire_frames: int = 3
    """This many consecutive out-of-gate detections that agree with each other move the track there
    (the rock really moved, e.g. it fell out of the bucket)."""
    reacquire_radius: float = 0.03
    """Out-of-gate detections agree when they lie within this distance (m) of each other."""
    min_confidence: float = 0.1
    """Detections below this confidence are treated as no detection."""
    confidence_time_constant: float = 3.0
    """A held estimate's confidence decays as exp(-age / this) (s)."""
    max_hold_s: float | None = None
    """Give up a held estimate after this long (s); None holds it for ever (the policy was trained
    to always see a rock position, and the rock is often hidden in the bucket for seconds)."""

    def validate(self) -> "TrackerConfig":
        if self.gate <= 0 or self.reacquire_radius <= 0:
            raise ValueError("TrackerConfig: gate and reacquire_radius must be > 0")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"TrackerConfig.smoothing must be in (0, 1], got {self.smoothing}")
        if self.reacquire_frames < 1:
            raise ValueError(f"TrackerConfig.reacquire_frames must be >= 1, got {self.reacquire_frames}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
