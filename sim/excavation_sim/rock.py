"""Voxelised random rocks.

A rock is a random smooth blob of a given volume, voxelised at the scene resolution ``delta`` (a rock
is never less than one voxel). The voxels are merged greedily into as few axis-aligned boxes as
possible: the surface is exactly the voxelised one, but the collision pipeline sees a handful of
boxes instead of up to ~125 at 10 mm, which is what keeps fine resolutions affordable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RockShape:
    """Boxes of one rock, in the rock body frame (origin = centroid of the voxels)."""

    centers: np.ndarray  # (B, 3) box centres, m
    half_extents: np.ndarray  # (B, 3) box half sizes, m
    voxel_count: int
    delta: float  # voxel edge, m

    @property
    def volume(self) -> float:
        return self.voxel_count * self.delta**3

    @property
    def half_height(self) -> float:
        """Distance from the centroid to the lowest point (used to place and to judge lifting)."""
        return float(-(self.centers[:, 2] - self.half_extents[:, 2]).min())

    @property
    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        lo = (self.centers - self.half_extents).min(axis=0)
        hi = (self.centers + self.half_extents).max(axis=0)
        return lo, hi


def random_blob_occupancy(volume: float, delta: float, rng: np.random.Generator, roughness: float = 0.25) -> np.ndarray:
    """Boolean voxel grid of a random blob whose voxelised volume is close to ``volume``.

    The blob is an ellipsoid with random axes (aspect up to 1 +- roughness) perturbed by a few low
    spherical harmonics-like terms; its scale is bisected so the voxel count matches the volume.
    """
    if volume <= 0 or delta <= 0:
        raise ValueError(f"rock volume and delta must be > 0, got volume={volume}, delta={delta}")
    axes = 1.0 + roughness * rng.uniform(-1.0, 1.0, size=3)
    bumps = rng.normal(0.0, 0.08 * roughness / 0.25, size=4)
    target_voxels = max(1, int(round(volume / delta**3)))
    # Grid big enough for the largest blob the bisection may try.
    r_max = 2.0 * (volume ** (1.0 / 3.0)) * axes.max()
    n = max(1, int(np.ceil(2 * r_max / delta))) | 1  # odd, so one voxel sits at the centre
    c = (np.arange(n) - n // 2) * delta
    x, y, z = np.meshgrid(c, c, c, indexing="ij")

    def occupancy(scale: float) -> np.ndarray:
        u, v, w = x / (axes[0] * scale), y / (axes[1] * scale), z / (axes[2] * scale)
        r = np.sqrt(u * u + v * v + w * w) + 1e-12
        shape = 1.0 + bumps[0] * u / r + bumps[1] * v / r + bumps[2] * w / r + bumps[3] * (u * v) / (r * r)
        return r <= shape

    lo, hi = 1e-4, r_max
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if occupancy(mid).sum() < target_voxels:
            lo = mid
        else:
            hi = mid
    occ = occupancy(hi)
    if not occ.any():
        occ[n // 2, n // 2, n // 2] = True
    return occ


def merge_voxels(occ: np.ndarray) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Greedy box cover of a voxel grid: grow each box along x, then y, then z while full."""
    occ = occ.copy()
    boxes = []
    nx, ny, nz = occ.shape
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                if not occ[i, j, k]:
                    continue
                i1 = i
                while i1 + 1 < nx and occ[i1 + 1, j, k]:
                    i1 += 1
                j1 = j
                while j1 + 1 < ny and occ[i : i1 + 1, j1 + 1, k].all():
                    j1 += 1
                k1 = k
                while k1 + 1 < nz and occ[i : i1 + 1, j : j1 + 1, k1 + 1].all():
                    k1 += 1
                occ[i : i1 + 1, j : j1 + 1, k : k1 + 1] = False
                boxes.append(((i, j, k), (i1, j1, k1)))
    return boxes


def make_rock(volume: float, delta: float, rng: np.random.Generator, roughness: float = 0.25) -> RockShape:
    """A random rock of about ``volume`` m^3 voxelised at ``delta`` m, as merged boxes."""
    occ = random_blob_occupancy(volume, delta, rng, roughness)
    idx = np.argwhere(occ).astype(np.float64)
    centroid = idx.mean(axis=0)
    centers, halves = [], []
    for (i0, j0, k0), (i1, j1, k1) in merge_voxels(occ):
        lo = np.array([i0, j0, k0], dtype=np.float64) - 0.5
        hi = np.array([i1, j1, k1], dtype=np.float64) + 0.5
        centers.append(((lo + hi) / 2 - centroid) * delta)
        halves.append((hi - lo) / 2 * delta)
    return RockShape(np.array(centers), np.array(halves), int(occ.sum()), float(delta))
