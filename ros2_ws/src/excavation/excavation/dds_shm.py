"""Fast DDS shared-memory files that dead processes left in /dev/shm.

Every Fast DDS participant creates a segment (``fastrtps_<id>``, 8 MB with the stack's profile) and
port files (``fastrtps_port<n>``, ``sem.fastrtps_port<n>_mutex``), each with an ``..._el`` file on which
the owner holds an flock while it lives. A process killed with SIGKILL cannot remove them; a launcher
that kills its nodes on a hang leaves ~8 MB per node each time. An ``_el`` file nobody holds an flock
on belongs to a dead owner: its files can go (as ``fastdds shm clean`` does).
"""

from __future__ import annotations

import fcntl
import os
import time

SHM_DIR = "/dev/shm"
PREFIX = "fastrtps_"
MIN_AGE_S = 2.0
"""Files younger than this are left alone: a participant starting up creates its files an instant
before it locks them."""


def _owner_alive(el_path: str) -> bool:
    try:
        fd = os.open(el_path, os.O_RDONLY)
    except OSError:
        return True  # cannot tell: keep
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def clean_stale_segments(shm_dir: str = SHM_DIR, newer_than: float | None = None,
                         min_age_s: float = MIN_AGE_S) -> tuple[int, int]:
    """Remove the Fast DDS files of dead owners (only those modified after ``newer_than``, a time.time(),
    when given, and at least ``min_age_s`` old). Returns (files removed, bytes freed)."""
    if not os.path.isdir(shm_dir):
        return 0, 0
    now = time.time()
    removed = freed = 0
    for name in sorted(os.listdir(shm_dir)):
        if not (name.startswith(PREFIX) and name.endswith("_el")):
            continue
        el = os.path.join(shm_dir, name)
        try:
            mtime = os.stat(el).st_mtime
        except OSError:
            continue
        if now - mtime < min_age_s or (newer_than is not None and mtime < newer_than) or _owner_alive(el):
            continue
        base = name[: -len("_el")]
        for victim in (base, f"sem.{base}_mutex", name):
            path = os.path.join(shm_dir, victim)
            try:
                size = os.stat(path).st_size
                os.remove(path)
            except OSError:
                continue
            removed += 1
            freed += size
    return removed, freed
