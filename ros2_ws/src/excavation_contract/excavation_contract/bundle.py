"""Policy bundle format (``policy.pt`` + ``policy.json``) and its validating loader.

This module (in the ROS package, so the robot needs no training stack) imports only the standard library, numpy, torch and the ``excavation`` contract -- never
the simulator or the training stack -- so the robot-side policy node can load bundles with it.

A bundle folder holds:

- ``policy.pt``: TorchScript, ``forward(obs: Tensor[B, obs_dim]) -> Tensor[B, act_dim]``: the
  deterministic (mean) action in physical units, with observation normalisation and action bounds
  baked in.
- ``policy.json``: ``format_version``; ``layout`` (``excavation_contract.layout_dict()``: observation and
  action fields, action limit, control period, bucket geometry); ``obs_dim``/``act_dim``;
  ``action_low``/``action_high``; ``control_period_s``; ``bucket``; ``training`` (resolution schedule,
  final resolution, per-stage history); ``evaluation`` (success rate per evaluated resolution and
  how it was measured); ``config`` (the training config); ``code_revision``; ``policy_sha256``;
  ``probe`` (observations and the actions the exporter computed for them).

``load_bundle(path)`` checks all of it and raises ``BundleError`` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import excavation_contract as contract

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
POLICY_FILE = "policy.pt"
META_FILE = "policy.json"
REQUIRED_KEYS = (
    "format_version",
    "layout",
    "obs_dim",
    "act_dim",
    "action_low",
    "action_high",
    "control_period_s",
    "bucket",
    "training",
    "evaluation",
    "config",
    "code_revision",
    "policy_sha256",
    "probe",
)
PROBE_ATOL = 1e-5  # scripted outputs vs the exporter's, same machine class; float32 round-off only


class BundleError(ValueError):
    """A policy bundle is missing, malformed or does not match the contract."""


@dataclass
class PolicyBundle:
    """A loaded, validated bundle. Call it with observations (numpy or torch, (obs_dim,) or (B, obs_dim))."""

    path: Path
    module: torch.jit.ScriptModule
    meta: dict[str, Any]

    @property
    def obs_dim(self) -> int:
        return int(self.meta["obs_dim"])

    @property
    def act_dim(self) -> int:
        return int(self.meta["act_dim"])

    @property
    def control_period_s(self) -> float:
        return float(self.meta["control_period_s"])

    def __call__(self, obs):
        as_numpy = isinstance(obs, np.ndarray) or not isinstance(obs, torch.Tensor)
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32) if as_numpy else obs, dtype=torch.float32)
        single = x.dim() == 1
        if single:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"observation must have shape ({self.obs_dim},) or (B, {self.obs_dim}), got {tuple(x.shape)}")
        with torch.no_grad():
            y = self.module(x)
        if single:
            y = y[0]
        return y.numpy() if as_numpy else y


def _is_number(v) -> bool:
    """A JSON number that fits a float (not a bool, not a string, not an int beyond 1e308)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(value) -> np.ndarray | None:
    """``value`` (a number or nested lists of numbers) as a float array, or None if anything else is in it."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif not _is_number(v):
            return None
    try:
        return np.asarray(value, dtype=np.float64)
    except ValueError:  # ragged
        return None


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except zipfile.BadZipFile:  # e.g. a damaged end record claiming a multi-disk archive
        return False


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_layout(layout: dict, expected: dict | None = None) -> None:
    """Raise BundleError at the first difference between a bundle's layout and the contract's."""
    expected = expected if expected is not None else contract.layout_dict()
    if not isinstance(layout, dict):
        raise BundleError(f"policy.json 'layout' must be a mapping, got {type(layout).__name__}")
    if not _is_int(layout.get("contract_version")) or layout.get("contract_version") != expected["contract_version"]:
        raise BundleError(
            f"layout mismatch: bundle contract_version {layout.get('contract_version')!r}, "
            f"this contract is version {expected['contract_version']}"
        )
    for part in ("observation", "action"):
        got, want = layout.get(part), expected[part]
        if not isinstance(got, list) or len(got) != len(want):
            n = len(got) if isinstance(got, list) else got
            raise BundleError(f"layout mismatch: bundle has {n} {part} fields, the contract has {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            for key in ("name", "unit", "frame"):
                if not isinstance(g, dict) or g.get(key) != w[key]:
                    g_val = g.get(key) if isinstance(g, dict) else g
                    raise BundleError(
                        f"layout mismatch: {part} field {i} {key} is {g_val!r} in the bundle, {w[key]!r} in the contract"
                    )
    limit = _numbers(layout.get("action_limit"))
    limit = np.asarray([]) if limit is None else limit
    want_limit = np.asarray(expected["action_limit"], dtype=float)
    if limit.shape != want_limit.shape or not np.allclose(limit, want_limit, rtol=0, atol=1e-9):
        raise BundleError(
            f"layout mismatch: action_limit {reprlib.repr(layout.get('action_limit'))} in the bundle, {expected['action_limit']} in the contract"
        )
    want_bucket = json.loads(json.dumps(expected["bucket"]))  # tuples -> lists, as stored in JSON
    if layout.get("bucket") != want_bucket:
        raise BundleError(f"layout mismatch: bucket geometry {layout.get('bucket')!r} in the bundle, {want_bucket} in the contract")
    period = layout.get("control_period_s")
    if not _is_number(period) or not math.isclose(float(period), expected["control_period_s"], rel_tol=1e-9):
        raise BundleError(
            f"layout mismatch: control_period_s {reprlib.repr(layout.get('control_period_s'))} in the bundle, "
            f"{expected['control_period_s']} in the contract"
        )


def load_bundle(path: str | Path, *, check_contract: bool = True, device: str = "cpu") -> PolicyBundle:
    """Load and validate a bundle folder; raise ``BundleError`` with a clear message if anything is off.

    Checks: both files exist; policy.json parses and has every required key; the format version is
    known; the layout equals ``excavation_contract``'s (unless ``check_contract=False``, for toy
    policies); dims agree with the layout; policy.pt matches its recorded sha256 and loads as
    TorchScript; on the recorded probe observations (and a zero observation) it returns finite actions
    of shape (B, act_dim) within the action bounds, equal to the exporter's outputs.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"policy bundle {folder} does not exist or is not a folder")
    meta_path, policy_path = folder / META_FILE, folder / POLICY_FILE
    for p in (meta_path, policy_path):
        if not p.is_file():
            raise BundleError(f"policy bundle {folder} is missing {p.name}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise BundleError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} must hold a JSON object")
    version = meta.get("format_version")
    if not _is_int(version) or version not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(
            f"{meta_path}: unknown format_version {version!r}; this loader reads {list(SUPPORTED_FORMAT_VERSIONS)}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise BundleError(f"{meta_path} lacks required keys {missing}")

    layout = meta["layout"]
    if check_contract:
        check_layout(layout)
    obs_dim, act_dim = meta["obs_dim"], meta["act_dim"]
    fields = {part: layout.get(part) if isinstance(layout, dict) else None for part in ("observation", "action")}
    n_obs, n_act = (len(f) if isinstance(f, list) else -1 for f in fields.values())
    if not (_is_int(obs_dim) and _is_int(act_dim)):
        raise BundleError(f"{meta_path}: obs_dim and act_dim must be integers, got obs_dim={obs_dim!r}, act_dim={act_dim!r}")
    if obs_dim != n_obs or act_dim != n_act:
        raise BundleError(
            f"{meta_path}: obs_dim/act_dim ({obs_dim!r}, {act_dim!r}) disagree with the layout's "
            f"{n_obs} observation and {n_act} action fields"
        )
    low, high = _numbers(meta["action_low"]), _numbers(meta["action_high"])
    if low is None or high is None:
        low = high = np.zeros(0)  # not numbers: reported below with the values found
    if (low.shape != (act_dim,) or high.shape != (act_dim,) or not np.all(np.isfinite(low))
            or not np.all(np.isfinite(high)) or not np.all(low < high)):
        raise BundleError(f"{meta_path}: action_low/action_high must be {act_dim} finite values with low < high, "
                          f"got action_low={reprlib.repr(meta['action_low'])}, action_high={reprlib.repr(meta['action_high'])}")
    period = meta["control_period_s"]
    layout_period = layout.get("control_period_s") if isinstance(layout, dict) else None
    if not (_is_number(period) and math.isfinite(period) and period > 0):
        raise BundleError(f"{meta_path}: control_period_s must be a positive number of seconds, got {reprlib.repr(period)}")
    if _is_number(layout_period) and not math.isclose(float(period), float(layout_period), rel_tol=1e-9):
        raise BundleError(f"{meta_path}: control_period_s {period!r} disagrees with the layout's {layout_period!r}")
    for key in ("training", "evaluation", "config"):
        if not isinstance(meta[key], dict):
            raise BundleError(f"{meta_path}: {key!r} must be a JSON object, got {reprlib.repr(meta[key])}")

    digest = file_sha256(policy_path)
    if digest != meta["policy_sha256"] and not _is_zip(policy_path):
        # A TorchScript file is a zip archive: one that is not is cut short or damaged, not another export.
        raise BundleError(
            f"{policy_path} is damaged: not a complete TorchScript archive ({policy_path.stat().st_size} bytes, "
            f"sha256 {digest[:12]}... where policy.json records {str(meta['policy_sha256'])[:12]}...); "
            f"copy it again or re-export the bundle"
        )
    if digest != meta["policy_sha256"]:
        raise BundleError(
            f"{policy_path} does not match policy.json (sha256 {digest[:12]}..., recorded "
            f"{str(meta['policy_sha256'])[:12]}...): the two files come from different exports"
        )
    try:
        module = torch.jit.load(str(policy_path), map_location=device)
    except Exception as exc:  # torch raises several types for corrupt archives
        raise BundleError(f"{policy_path} is not a loadable TorchScript module: {exc}") from None
    module.eval()

    probe = meta["probe"]
    try:
        probe_obs = torch.as_tensor(probe["observations"], dtype=torch.float32)
        probe_act = torch.as_tensor(probe["actions"], dtype=torch.float32)
    except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as exc:
        raise BundleError(f"{meta_path}: 'probe' must hold 'observations' and 'actions' arrays ({exc})") from None
    if probe_obs.dim() != 2 or probe_obs.shape[1] != obs_dim or probe_act.shape != (probe_obs.shape[0], act_dim):
        raise BundleError(
            f"{meta_path}: probe observations must be (B, {obs_dim}) and actions (B, {act_dim}), got "
            f"{tuple(probe_obs.shape)} and {tuple(probe_act.shape)}"
        )
    obs = torch.cat([torch.zeros(1, obs_dim), probe_obs]).to(device)
    try:
        with torch.no_grad():
            out = module(obs)
    except Exception as exc:
        raise BundleError(f"{policy_path} fails on a probe observation of shape {tuple(obs.shape)}: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (obs.shape[0], act_dim):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BundleError(f"{policy_path} returns {shape} for observations {tuple(obs.shape)}; expected ({obs.shape[0]}, {act_dim})")
    out = out.detach().float().cpu()
    if not torch.isfinite(out).all():
        raise BundleError(f"{policy_path} returns non-finite actions (NaN/inf) on probe observations")
    tol = 1e-6 * np.maximum(1.0, np.abs(high))
    if (out.numpy() < low - tol).any() or (out.numpy() > high + tol).any():
        raise BundleError(f"{policy_path} returns actions outside [action_low, action_high]")
    if not torch.allclose(out[1:], probe_act, atol=PROBE_ATOL, rtol=1e-4):
        err = (out[1:] - probe_act).abs().max().item()
        raise BundleError(f"{policy_path} does not reproduce the exporter's probe actions (max error {err:.3g})")
    return PolicyBundle(folder, module, meta)


__all__ = [
    "BundleError",
    "FORMAT_VERSION",
    "META_FILE",
    "POLICY_FILE",
    "PolicyBundle",
    "check_layout",
    "file_sha256",
    "load_bundle",
]
