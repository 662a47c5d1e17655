"""Checkpoint and policy-snapshot files: atomic writes, validated reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from ..config import TrainConfig
from ..models import ActorCritic

CHECKPOINT_FORMAT = "excavation-prpd-checkpoint"
SNAPSHOT_FORMAT = "excavation-prpd-policy"
CHECKPOINT_VERSION = 1


def atomic_torch_save(obj, path: str | Path) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: a crash or kill
    mid-write leaves the previous file intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        latest = path / "checkpoints" / "latest.pt"
        if latest.is_file():
            return latest
        raise FileNotFoundError(f"{path} is a folder without checkpoints/latest.pt; pass a checkpoint file or a run folder")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = resolve_checkpoint_path(path)
    try:
        # Our own files: they hold numpy/python RNG states, which weights_only refuses.
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (CHECKPOINT_FORMAT, SNAPSHOT_FORMAT):
        raise ValueError(f"{path} is not a training checkpoint or policy snapshot of this project")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')!r}, this code reads {CHECKPOINT_VERSION}")
    ckpt["_path"] = str(path)
    return ckpt


def load_policy(path: str | Path, map_location="cpu") -> tuple[ActorCritic, dict]:
    """The policy of a checkpoint or stage snapshot, with its metadata (dims, action bounds, config...)."""
    ckpt = load_checkpoint(path, map_location)
    cfg = TrainConfig.from_dict(ckpt["config"])
    policy = ActorCritic(ckpt["obs_dim"], ckpt["act_dim"], cfg.policy)
    policy.load_state_dict(ckpt["policy"])
    policy.eval()
    return policy, ckpt


def code_revision() -> str | None:
    """``git describe`` of the source tree this code runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None
