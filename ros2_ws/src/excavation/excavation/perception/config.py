"""Typed configuration of the rock perception pipeline and its tracker.

Defaults suit a RealSense D435-class camera about 0.6 m above a soil tray and a ~50 mm rock.
``tray_size`` is normally overridden by the calibration file (it is the tray's inner soil area).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


COARSE_GRAIN_RATIO = 0.4
"""Soil counts as coarse when its grains are at least this share of the smallest rock's size."""


@dataclass(frozen=True)
class PerceptionConfig:
    """Per-frame rock detection (depth -> points -> ground -> clusters -> rock centre)."""

    tray_size: tuple[float, float] = (0.20, 0.20)
    """Inner soil area of the tray along tray x and y (m), centred on the tray origin."""
    soil_grain_size: float = 0.01
    """Typical size of the soil's grains (m): sand, earth, gravel ~0.001-0.01; the simulator's
    particles are its resolution. With grains much smaller than a rock (below ``COARSE_GRAIN_RATIO``
    of the smallest rock) the soil is smooth at a rock's scale and rocks are told from it by height
    above the local ground and a steep edge, whatever their shape (fine_soil.py). With grains about as
    big as the rocks (coarse simulation) a grain is told from a rock by its spherical top and the
    ground is the grains' upper envelope (the ``envelope_*``, ``flat_top_*`` and ``sphere_*`` fields)."""
    rock_size_range: tuple[float, float] = (0.04, 0.12)
    """Smallest and largest rock to expect (m, longest side)."""
    ground_smoothing: float = 0.025
    """Fine soil: standard deviation (m) of the Gaussian with which the ground follows the soil's
    relief around the fitted plane. Relief wider than a few times this is ground; a heap as narrow
    keeps about half of its height above it (and is told from a rock by its gentle edge)."""
    ground_refits: int = 2
    """Fine soil: times the local ground is refitted with the candidates found so far left out."""
    ground_exclusion_margin: float = 0.01
    """... each candidate grown by this much (m): its foot (soil pushed up around it, mixed pixels)."""
    noise_seed_factor: float = 4.0
    """Fine soil: a candidate must stand at least this many times the soil's robust roughness (cells
    about the local ground) above it, and at least ``min_height_above_ground``."""
    max_soil_relief: float = 0.02
    """Fine soil: a candidate standing this much (m) above the local ground is a rock whatever its edge
    (no soil heap left by digging stands so high on so small a footprint); a lower one needs a steep
    edge (``min_edge_slope``)."""
    min_edge_slope: float = 0.55
    """Fine soil: slope (dz/dxy, 80th percentile around the candidate's outline) from which its edge
    is steep: a rock's side. A smooth heap 15 mm high and 35 mm or more wide rises more gently."""
    min_visible_area: float = 0.0004
    """Fine soil: a candidate's footprint covers at least this much tray area (m^2; 20 x 20 mm: the
    half of a 40 mm rock the bucket may leave in view)."""
    min_visible_width: float = 0.015
    """Fine soil: ... and is at least this wide (m; short side of its minimum-area rectangle): a rock
    can be a slab on edge, a thin line of cells is mixed pixels."""
    load_margin: float = 0.008
    """Rock in the bucket: points at least this far (m) inside the bucket's load space -- between back
    plate and tine tips, between the side tines, above the tines, below the back plate's top -- are
    load, not bucket (covers the bucket pose's error)."""
    load_min_points: int = 12
    load_min_extent: float = 0.02
    """... and make a rock in the bucket when there are at least this many of them, spanning this much
    (m), standing at least ``min_height_above_ground`` above the ground below them."""
    candidate_tie: float = 0.005
    """Choosing among several rocks: candidates within this much (m) of the most exposed one's
    protrusion tie, and the one nearest the bucket's tip (or the tray's centre) wins. See
    RockDetector.detect."""
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
    """Use every n-th pixel in both directions inside the tray's image region. 2 keeps ~2 mm between
    samples at 0.6 m with a D435: a rock seen between 8 mm tines still gets several samples per gap
    (every 3rd pixel put rocks under the tines 15-25 mm off)."""
    median_ksize: int = 5
    """Median filter (3 or 5; 0/1 = off) of the depth: removes per-pixel noise and speckle while keeping
    the rock's edges sharp, on the full image. On fine soil with a pixel step of 2 or more, a 3x3
    median of the decimated image instead: about the same window at a tenth of the cost."""
    min_ground_points: int = 150
    """Fewer valid soil points than this in the tray => no ground, no rock (reason: no valid depth)."""
    ground_model: str = "plane"
    """"plane" (tilted plane z = a x + b y + c, robust fit) or "constant" (one robust height)."""
    ground_fit_max_points: int = 1500
    ground_fit_iterations: int = 3
    ground_inlier_sigma: float = 3.0
    ground_inlier_min: float = 0.004
    """A soil point is a ground inlier within max(sigma * robust std, min) of the plane (m)."""
    ground_max_slope: float = 0.25
    """A fitted slope steeper than this (dz/dx) is not believed; the constant model is used instead."""
    min_height_above_ground: float = 0.010
    """A blob must stand at least this high above the ground (m; on coarse soil the grains' upper
    envelope) to be a rock candidate. The simulator's coarse soil uses 15 mm (config/perception_sim.yaml):
    fewer ~10 mm bumps under heavy depth noise, a few coarse rocks that barely clear the grains missed.
    10 mm on fine soil: a rock whose top stands 12 mm out reads ~10 mm in the 5 mm cells' means."""
    footprint_height: float = 0.005
    """A blob with cells above min_height_above_ground extends over its connected cells above this
    height (m, above the same ground): the rock's footprint, for its size, shape and centre, rather
    than its top only. Equal to min_height_above_ground = no hysteresis."""
    peak_min_dynamic: float = 0.005
    """A regional maximum of the height map is a *peak* when every path from it to higher ground first
    descends at least this much (m): above the (cell-averaged) depth noise, below the relief of a
    soil grain worth the name."""
    envelope_min_peaks: int = 4
    """On rough soil (see ``envelope_rough_sigma``) with at least this many peaks, the ground is lifted
    from the robust plane (the median soil surface) to the soil's upper envelope: the
    ``envelope_quantile`` of the peak heights, the highest peak left out (it may be the rock). On soil
    made of grains as large as the rock (coarse simulation) the surface is the top of the grains, and
    a grain standing at it is not the rock. With 2 .. envelope_min_peaks-1 peaks (the bucket hides
    most grains) their lower median is the envelope; with fewer, the plane."""
    envelope_quantile: float = 0.75
    """Quantile of the peak heights taken as the soil's upper envelope: high enough to sit on the top
    layer of grains when the layer below shows between them, low enough that a grain or two standing
    on others cannot lift it."""
    envelope_rough_sigma: float = 0.003
    """The envelope is used only on rough soil: the plane's robust residual std at least this (m),
    or -- with at least envelope_min_peaks peaks -- the robust spread of the height map (a large flat
    rock can hold the robust plane on itself, the grains around it left as outliers).
    On smooth soil (real soil seen by a depth camera: ~1-2 mm) a few peaks are rocks, clods or mixed
    pixels at the bucket's edges, and the plane stays the ground."""
    flat_top_window: float = 0.025
    """On granular soil (the ground lifted to the envelope of the grains' peaks) a rock may lie level
    with the grains' tops, or tilted with its face running from under their envelope to above it:
    no height tells it from them. Its face is flat where the grains are domes: windows of this size
    (m; 25 mm = 5 cells) whose cells lie within ``flat_top_max_rms`` of a plane (any tilt), grown to
    the whole window, make flat-top candidates when no blob stands out. 0 = off. Never used on
    smooth soil (real soil, fine simulation), where everything is flat."""
    flat_top_max_rms: float = 0.0006
    """Largest RMS distance (m) of a window's cells from their plane for a flat face: the depth noise
    left in the cell means (~0.3 mm in the simulator). A grain's cap departs by about
    0.2 * window^2 / diameter: 0.85 mm for a 70 mm grain, 1.2 mm at 50 mm, 2 mm at 30 mm."""
    flat_top_min_area: float = 0.0006
    """A flat-top candidate covers at least this much tray area (m^2; 0.0006 ~ one window: a face of
    a rock of the expected size, partly hidden or tilted away)."""
    flat_top_min_height: float = -0.005
    """... and its highest cell reaches this height (m) relative to the grains' envelope: a rock's
    face among the grains' tops; the tray floor showing where the soil was dug away lies far below."""
    reject_spherical_tops: bool = True
    """Reject blobs whose top is a spherical cap (``sphere_max_rms``, ``sphere_max_rms_ratio``): soil
    grains (simulated particles, gravel). Assumes the rock is not a sphere (the simulator's rocks
    are boxes; broken rock is angular); set False for a round pebble on smooth soil."""
    sphere_max_rms: float = 0.0015
    """A top is a spherical cap when a sphere fits its upper part within this RMS (m) ..."""
    sphere_max_rms_ratio: float = 0.3
    """... and within this fraction of its RMS departure from a plane (so the sphere explains the
    top's relief, not just a flat top's noise). Measured on the simulator's frames: grains 0.1-0.28
    (any size, 30-70 mm), the rock 0.34 and up (10 mm voxels, whose steps the sphere cannot follow;
    their RMS is also > 2 mm) and 0.45 and up for coarser rocks (faces, ridges, corners)."""
    sphere_max_rms_ratio_at_bucket: float = 0.5
    """The same ratio for a blob against the bucket: a grain seen in part (between the tines, cut
    by the bucket's shadow) fits its sphere less well (0.3-0.45), mixed pixels at the cut edge."""
    max_height_above_ground: float = 0.15
    """Points higher than this above the ground (m) are the arm, a hand, ... never the rock."""
    cell_size: float = 0.005
    """Grid cell (m) of the tray's height map (mean height of the points in each cell), on which the
    ground's envelope is found and blobs are clustered."""
    close_iterations: int = 1
    """Morphological closing (3x3) of the blob mask: bridges single-cell dropouts in a rock."""
    min_cluster_points: int = 12
    min_cluster_area: float = 0.0008
    """A rock candidate's footprint covers at least this much tray area (m^2; 0.0008 ~ a 28 mm square,
    40 % of a 45 mm rock's outline): smaller blobs are soil grains (a whole 30 mm grain covers 0.0007)
    or slivers of a rock the bucket hides, which are better reported as occluded."""
    max_cluster_extent: float = 0.14
    """A candidate longer than this (m; long side of its minimum-area rectangle, any orientation) is a
    soil heap or a wall, not the rock. Rocks of ~50 mm voxelised coarsely are long: three 40 mm voxels
    in a row make a 120 mm rock."""
    min_cluster_width: float = 0.02
    """A candidate narrower than this (m; short side of its minimum-area rectangle) is a sliver: mixed
    pixels along a wall or the bucket's edge, soil seen between the tines, not a rock."""
    wall_band: float = 0.02
    max_wall_fraction: float = 0.6
    """A candidate with more than this share of its cells within ``wall_band`` (m) of the tray's
    walls runs along a wall: soil banked against it, mixed pixels at its top edge. A rock lying
    against a wall keeps well under half of itself in the band."""
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
    bucket_tip_margin: float = 0.005
    """... but only this much (m) ahead of the tine tips: the tips are thin (mixed pixels at them
    are few), and a rock lying just ahead of them -- where the bucket meets it while digging, the
    tines often buried under it -- would lose its back half to the full margin."""
    arm_radius: float = 0.06
    """Radius (m) of the column above the flange (wrist, forearm) removed with the bucket."""
    prior_gate: float = 0.06
    """With a tracked position, the nearest candidate within this distance (m, in xy) is preferred."""

    @property
    def coarse_soil(self) -> bool:
        """Whether the soil's grains are about as big as the rocks (see ``soil_grain_size``)."""
        return self.soil_grain_size >= COARSE_GRAIN_RATIO * self.rock_size_range[0]

    def validate(self) -> "PerceptionConfig":
        if len(self.tray_size) != 2 or min(self.tray_size) <= 0:
            raise ValueError(f"PerceptionConfig.tray_size must be two positive lengths (m), got {self.tray_size}")
        if len(self.rock_size_range) != 2 or not 0 < self.rock_size_range[0] <= self.rock_size_range[1]:
            raise ValueError(f"PerceptionConfig.rock_size_range must be (smallest, largest) > 0 (m), got {self.rock_size_range}")
        if not self.soil_grain_size >= 0:
            raise ValueError(f"PerceptionConfig.soil_grain_size must be >= 0 (m), got {self.soil_grain_size}")
        if self.ground_smoothing <= 0 or self.ground_refits < 0 or self.ground_exclusion_margin < 0:
            raise ValueError("PerceptionConfig: need ground_smoothing > 0, ground_refits >= 0, ground_exclusion_margin >= 0")
        if self.noise_seed_factor < 0 or self.min_edge_slope < 0 or self.min_visible_area < 0:
            raise ValueError("PerceptionConfig: need noise_seed_factor, min_edge_slope, min_visible_area >= 0")
        if self.decimation < 1:
            raise ValueError(f"PerceptionConfig.decimation must be >= 1, got {self.decimation}")
        if self.median_ksize not in (0, 1, 3, 5):
            raise ValueError(f"PerceptionConfig.median_ksize must be 0, 1, 3 or 5, got {self.median_ksize}")
        if self.ground_model not in ("plane", "constant"):
            raise ValueError(f"PerceptionConfig.ground_model must be 'plane' or 'constant', got {self.ground_model!r}")
        if not 0 < self.min_height_above_ground < self.max_height_above_ground:
            raise ValueError("PerceptionConfig: need 0 < min_height_above_ground < max_height_above_ground")
        if self.flat_top_window < 0 or self.flat_top_max_rms <= 0:
            raise ValueError("PerceptionConfig: need flat_top_window >= 0 and flat_top_max_rms > 0")
        if not 0 < self.footprint_height <= self.min_height_above_ground:
            raise ValueError("PerceptionConfig: need 0 < footprint_height <= min_height_above_ground")
        if not 0 <= self.envelope_quantile <= 1:
            raise ValueError(f"PerceptionConfig.envelope_quantile must be in [0, 1], got {self.envelope_quantile}")
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
    max_hold_s: float | None = 0.5
    """Give up a held estimate after this long (s) when the rock's last position is in view and
    empty (reason "none above ground") or a detection is outside the gate: the rock is not hidden, it
    is gone, and without a position the policy holds still. A rock carried in the bucket is seen there
    (reason "rock in bucket"); one last seen in or against the bucket and then gone from its place is
    held as occluded (the bucket took it). None holds for ever."""
    max_hold_occluded_s: float | None = None
    """The same while the bucket hides the rock's last position (reason "occluded by bucket"); None
    holds for ever: the policy was trained to always see a rock position."""
    max_blind_s: float = 0.5
    """A frame without valid depth (a blind camera: all zeros or NaN) is not occlusion: it never
    gives a position, so the policy goes stale and holds still; after this long blind (s) the track
    itself is dropped, and a rock seen again starts a new one."""
    time_jump_s: float = 5.0
    """A frame stamped this much later than the previous one, or any earlier, is a time jump (a clock
    reset, a replayed bag): the track is reset with a warning, and tracking goes on from that frame."""

    def validate(self) -> "TrackerConfig":
        if self.gate <= 0 or self.reacquire_radius <= 0:
            raise ValueError("TrackerConfig: gate and reacquire_radius must be > 0")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"TrackerConfig.smoothing must be in (0, 1], got {self.smoothing}")
        if self.reacquire_frames < 1:
            raise ValueError(f"TrackerConfig.reacquire_frames must be >= 1, got {self.reacquire_frames}")
        if not self.max_blind_s >= 0:
            raise ValueError(f"TrackerConfig.max_blind_s must be >= 0, got {self.max_blind_s}")
        for name in ("max_hold_s", "max_hold_occluded_s"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"TrackerConfig.{name} must be >= 0 or None, got {v}")
        if not self.time_jump_s > 0:
            raise ValueError(f"TrackerConfig.time_jump_s must be > 0, got {self.time_jump_s}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
