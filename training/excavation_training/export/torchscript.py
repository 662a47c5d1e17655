"""Export a trained policy as a TorchScript bundle (format in ``export/bundle.py``)."""

from __future__ import annotations

import copy
import datetime as _dt
import json
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

import excavation_contract as contract

from ..models import ActorCritic
from .bundle import FORMAT_VERSION, META_FILE, POLICY_FILE, file_sha256, load_bundle


class DeterministicPolicy(nn.Module):
    """obs (physical) -> mean action (physical): normalise, actor MLP, clip to [-1, 1], map to bounds.

    The same module drives evaluation and is what gets scripted, so the bundle's action is by
    construction the training policy's deterministic action.
    """

    def __init__(self, policy: ActorCritic, action_low: torch.Tensor, action_high: torch.Tensor) -> None:
        super().__init__()
        mean, scale = policy.obs_normalizer.affine()
        self.register_buffer("obs_mean", mean.float().cpu())
        self.register_buffer("obs_scale", scale.float().cpu())
        low, high = torch.as_tensor(action_low).float().cpu(), torch.as_tensor(action_high).float().cpu()
        self.register_buffer("act_center", (high + low) / 2)
        self.register_buffer("act_half_range", (high - low) / 2)
        # A plain Sequential copy: scriptable and detached from the training module.
        self.mlp = nn.Sequential(*[copy.deepcopy(m) for m in policy.actor]).cpu().eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs - self.obs_mean) / self.obs_scale
        a = self.mlp(x).clamp(-1.0, 1.0)
        return self.act_center + self.act_half_range * a


def policy_mean_action(policy: ActorCritic, obs: torch.Tensor, action_low, action_high) -> torch.Tensor:
    """The training policy's deterministic action in physical units, computed the training way."""
    low, high = torch.as_tensor(action_low).float(), torch.as_tensor(action_high).float()
    with torch.no_grad():
        a = policy.action_mean(obs).clamp(-1.0, 1.0)
    return (high + low) / 2 + (high - low) / 2 * a


def export_bundle(
    policy: ActorCritic,
    out_dir: str | Path,
    *,
    action_low,
    action_high,
    training: dict,
    evaluation: dict,
    config: dict,
    code_revision: str | None,
    probe_observations: torch.Tensor | None = None,
    layout: dict | None = None,
    check_contract: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``out_dir/policy.pt`` + ``policy.json`` (atomically: a temporary folder renamed into place),
    then load it back with ``load_bundle`` so a bundle that would fail on the robot fails here."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    layout = layout if layout is not None else contract.layout_dict()
    obs_dim, act_dim = len(layout["observation"]), len(layout["action"])
    if (policy.obs_dim, policy.act_dim) != (obs_dim, act_dim):
        raise ValueError(
            f"policy dims (obs {policy.obs_dim}, act {policy.act_dim}) do not match the layout's "
            f"({obs_dim}, {act_dim}); only contract-shaped policies can be exported for the robot"
        )
    module = DeterministicPolicy(policy, action_low, action_high).eval()
    scripted = torch.jit.script(module)
    if probe_observations is None:
        gen = torch.Generator().manual_seed(0)
        mean, scale = module.obs_mean, module.obs_scale
        probe_observations = mean + scale * torch.randn(8, obs_dim, generator=gen)
    probe_observations = probe_observations.float().cpu()
    with torch.no_grad():
        probe_actions = scripted(probe_observations)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        scripted.save(str(tmp / POLICY_FILE))
        meta = {
            "format_version": FORMAT_VERSION,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "layout": layout,
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "action_low": [float(v) for v in torch.as_tensor(action_low).flatten()],
            "action_high": [float(v) for v in torch.as_tensor(action_high).flatten()],
            "control_period_s": layout["control_period_s"],
            "bucket": layout["bucket"],
            "training": training,
            "evaluation": evaluation,
            "config": config,
            "code_revision": code_revision,
            "policy_sha256": file_sha256(tmp / POLICY_FILE),
            "probe": {"observations": probe_observations.tolist(), "actions": probe_actions.tolist()},
        }
        (tmp / META_FILE).write_text(json.dumps(_json_safe(meta), indent=2) + "\n")
        load_bundle(tmp, check_contract=check_contract)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _json_safe(x):
    """NaN/inf are not JSON; write them as null."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, torch.Tensor):
        return _json_safe(x.tolist())
    return x


__all__ = ["DeterministicPolicy", "export_bundle", "policy_mean_action"]
