"""Warp initialisation with a fixed, reusable kernel cache.

A cold compile of the Newton kernels takes ~45 s on a CPU; a warm cache takes seconds. The cache
lives in ``$EXCAVATION_WARP_CACHE`` or, by default, ``$XDG_CACHE_HOME/excavation/warp`` (usually
``~/.cache/excavation/warp``), so every run, test and CI job on a machine reuses it.
"""

from __future__ import annotations

import os
from pathlib import Path

_initialised = False


def warp_cache_dir() -> Path:
    env = os.environ.get("EXCAVATION_WARP_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "excavation" / "warp"


def init_warp(quiet: bool = True) -> None:
    """Point Warp at the shared kernel cache and initialise it (idempotent)."""
    global _initialised
    if _initialised:
        return
    cache = warp_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WARP_CACHE_PATH", str(cache))
    import warp as wp

    wp.config.kernel_cache_dir = str(cache)
    wp.config.quiet = quiet
    wp.init()
    _initialised = True
