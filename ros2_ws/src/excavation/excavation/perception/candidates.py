"""Every rock a frame shows, and which one to dig.

All candidates are reported (a user sees every rock), and one is chosen by a rule a user can rely on,
frame after frame:

1. with a tracked rock, the candidate nearest to it within ``prior_gate`` (keep digging the same rock);
2. otherwise the most exposed one (largest protrusion above the ground: the easiest to lift out);
3. candidates within ``tie`` of that protrusion tie, and the one nearest the bucket's tip wins (the
   tray's centre without a bucket pose): the shortest move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RockCandidate:
    """One rock seen on the soil (tray frame)."""

    position: np.ndarray
    """Rock centre (m)."""
    protrusion: float
    """Height of its top above the ground (m)."""
    area: float
    """Footprint seen from above (m^2)."""
    confidence: float
    touches_bucket: bool

    def as_dict(self) -> dict:
        return {"position": [float(v) for v in self.position], "protrusion": float(self.protrusion),
                "area": float(self.area), "confidence": float(self.confidence),
                "touches_bucket": bool(self.touches_bucket)}


def choose(candidates: list[RockCandidate], prior_xy=None, prior_gate: float = 0.06, tie: float = 0.005,
           bucket_xy=None) -> int | None:
    """Index of the candidate to dig (see the module docstring), None when there is none."""
    if not candidates:
        return None
    xy = np.array([c.position[:2] for c in candidates], dtype=float)
    if prior_xy is not None:
        d = np.hypot(*(xy - np.asarray(prior_xy, dtype=float)[:2]).T)
        near = int(np.argmin(d))
        if d[near] <= prior_gate:
            return near
    prot = np.array([c.protrusion for c in candidates])
    tied = np.flatnonzero(prot >= prot.max() - tie)
    target = np.zeros(2) if bucket_xy is None else np.asarray(bucket_xy, dtype=float)[:2]
    return int(tied[np.argmin(np.hypot(*(xy[tied] - target).T))])
