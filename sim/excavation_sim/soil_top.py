"""Where the soil's top is: one measure, used to settle the bed, to place the rock and by tests.

The top of a bed of particles is ragged (a particle resting in a hollow sits lower than its
neighbours, a loose one on top sits higher), so the measure is robust: the tray is cut into square
columns about one particle wide, each column's top is its highest particle's top (centre + radius),
and the soil top is the median over the columns that hold any particle.
"""

from __future__ import annotations

import torch


def column_count(tray_size: float, delta: float) -> int:
    """Columns per side: the soil grid's count (``scene.soil_grid``), so each column is one particle wide."""
    return max(1, int(tray_size / delta + 1e-9))


def soil_top(points: torch.Tensor, world: torch.Tensor, valid: torch.Tensor, num_worlds: int, radius: float,
             tray_size: float, columns: int) -> torch.Tensor:
    """Soil top per world (``num_worlds``,), in the points' frame (NaN for a world without particles).

    ``points`` (P, 3) are particle centres relative to their own tray (x, y centred on it), ``world``
    (P,) their world index, ``valid`` (P,) which of them are soil this episode.
    """
    half = tray_size / 2.0
    cell = tray_size / columns
    ij = torch.clamp(((points[:, :2] + half) / cell).floor().long(), 0, columns - 1)
    key = (world.long() * columns + ij[:, 1]) * columns + ij[:, 0]
    top = torch.where(valid, points[:, 2] + radius, torch.full_like(points[:, 2], -torch.inf))
    col = torch.full((num_worlds * columns * columns,), -torch.inf, dtype=points.dtype, device=points.device)
    col = col.scatter_reduce(0, key, top, reduce="amax")
    col = col.view(num_worlds, columns * columns)
    col = torch.where(torch.isfinite(col), col, torch.full_like(col, torch.nan))
    return torch.nanmedian(col, dim=1).values


__all__ = ["column_count", "soil_top"]
