"""Rollout buffer."""

from .rollout_storage import Batch, RolloutStorage

__all__ = ["Batch", "RolloutStorage"]
