"""Scene families: each one is a set of overrides of the default randomisation ranges.

Defaults: tray 0.40 x 0.30, camera 0.6-0.8 m, tilt 0-20 deg, smooth relief <= 10 mm, no bucket,
one rock 40-120 mm of a random shape buried 0-50 %. Ranges are sampled per scene by build.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .shapes import SHAPES


@dataclass(frozen=True)
class Spec:
    tray_x: tuple = (0.40, 0.40)
    tray_y: tuple = (0.30, 0.30)
    square_tray: bool = False
    cam_heights: tuple = ((0.6, 0.8),)
    tilt_deg: tuple = (0.0, 20.0)
    relief_mm: tuple = (0.0, 10.0)
    slope_deg: tuple = (0.0, 1.5)
    slope_prob: float = 0.3
    fine_mm: tuple = (0.3, 1.0)  # peak amplitude of the fine ripple texture
    grain_mm: tuple | None = None
    bump: bool = False  # at least one 10-15 mm smooth bump 40-80 mm wide
    n_rocks: int = 1
    shapes: tuple = SHAPES
    rock_mm: tuple = (40.0, 120.0)
    burial: tuple = (0.0, 0.5)
    heap_prob: float = 0.6
    bucket: str | None = None  # None | "occlude" | "in_bucket" | "free"
    dropout: tuple = (0.0, 0.0)
    speckle: tuple = (0.0, 0.0)


_D = Spec()

SPECS: dict[str, Spec] = {
    "flat_barely_buried": replace(_D, burial=(0.0, 0.2), relief_mm=(0.0, 2.0), slope_prob=0.0, fine_mm=(0.2, 0.5), heap_prob=0.2),
    "buried_40_60": replace(_D, burial=(0.4, 0.6)),
    "camera_tilted": replace(_D, tilt_deg=(12.0, 30.0)),
    "camera_high_low": replace(_D, cam_heights=((0.4, 0.5), (0.9, 1.0)), tray_x=(0.30, 0.34), tray_y=(0.22, 0.25)),
    "round_rocks": replace(_D, shapes=("round",)),
    "flat_rocks": replace(_D, shapes=("flat",)),
    "angular_rocks": replace(_D, shapes=("angular",)),
    "bucket_occluding": replace(_D, bucket="occlude", burial=(0.0, 0.4)),
    "rock_in_bucket": replace(_D, bucket="in_bucket", n_rocks=0),
    "bucket_no_rock": replace(_D, bucket="free", n_rocks=0),
    "empty_relief": replace(_D, n_rocks=0, relief_mm=(10.0, 15.0), bump=True, slope_prob=0.0),
    "two_rocks": replace(_D, n_rocks=2, rock_mm=(40.0, 100.0)),
    "three_rocks": replace(_D, n_rocks=3, rock_mm=(40.0, 90.0)),
    "coarse_granular": replace(_D, grain_mm=(40.0, 70.0), relief_mm=(0.0, 6.0), burial=(0.0, 0.3)),
    "fine_granular": replace(_D, grain_mm=(10.0, 20.0), relief_mm=(0.0, 6.0)),
    "dropouts_speckle": replace(_D, dropout=(0.10, 0.25), speckle=(0.002, 0.01)),
    "small_tray": replace(_D, tray_x=(0.15, 0.20), tray_y=(0.15, 0.20), rock_mm=(40.0, 80.0), cam_heights=((0.45, 0.8),)),
    "large_tray": replace(_D, tray_x=(0.50, 0.60), tray_y=(0.50, 0.60), cam_heights=((0.8, 1.0),)),
    "sloped_soil": replace(_D, slope_deg=(4.0, 8.0), slope_prob=1.0, relief_mm=(3.0, 10.0)),
}

FAMILIES: tuple[str, ...] = tuple(SPECS)
