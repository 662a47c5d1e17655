"""Build small policy bundles for the ROS tests and the benchmark's smoke check (no training needed).

``python tests/ros/make_test_bundle.py OUT_DIR`` writes a bundle whose TorchScript policy is a
stateless scoop heuristic (approach behind the rock, go below it, slide under, lift when the rock is
in the bucket), in the exact format ``load_bundle`` validates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

import excavation_contract as contract


class ScoopHeuristic(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("limit", torch.as_tensor(contract.ACTION_LIMIT, dtype=torch.float32))
        # Where each group sits in the observation, from the contract (TorchScript cannot call
        # unpack_observation, so the indices are taken from the same table here).
        g = contract.OBS_GROUPS
        self.register_buffer("tip_idx", torch.as_tensor(g["bucket_tip"], dtype=torch.long))
        self.register_buffer("rock_idx", torch.as_tensor(g["rock"], dtype=torch.long))
        self.pitch_i = int(g["bucket_pitch"][0])
        self.rib_i = int(g["rock_in_bucket"][0])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        tip, rock = obs.index_select(1, self.tip_idx), obs.index_select(1, self.rock_idx)
        pitch, rib = obs[:, self.pitch_i], obs[:, self.rib_i]
        behind = rock + torch.tensor([-0.08, 0.0, 0.06])
        under = rock + torch.tensor([0.04, 0.0, -0.045])
        low = rock + torch.tensor([-0.08, 0.0, -0.045])
        near_x = (tip[:, 0] - (rock[:, 0] - 0.08)).abs() < 0.015
        is_low = tip[:, 2] < rock[:, 2] - 0.03
        goal = torch.where(is_low[:, None], under, torch.where(near_x[:, None], low, behind))
        lift = rib > 0.5
        goal = torch.where(lift[:, None], tip + torch.tensor([0.0, 0.0, 0.05]), goal)
        goal_pitch = torch.where(lift, torch.full_like(pitch, -0.35), torch.zeros_like(pitch))
        a = torch.cat([goal - tip, (goal_pitch - pitch)[:, None]], dim=1)
        return torch.maximum(torch.minimum(a, self.limit), -self.limit)


def write_bundle(out_dir, module: nn.Module | None = None, evaluation: dict | None = None) -> Path:
    from excavation_contract.bundle import FORMAT_VERSION, file_sha256

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script((module or ScoopHeuristic()).eval())
    scripted.save(str(out / "policy.pt"))
    layout = contract.layout_dict()
    probe = torch.randn(4, contract.OBS_DIM, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        acts = scripted(probe)
    meta = {
        "format_version": FORMAT_VERSION,
        "layout": json.loads(json.dumps(layout)),
        "obs_dim": contract.OBS_DIM,
        "act_dim": contract.ACT_DIM,
        "action_low": (-contract.ACTION_LIMIT).tolist(),
        "action_high": contract.ACTION_LIMIT.tolist(),
        "control_period_s": contract.CONTROL_PERIOD_S,
        "bucket": json.loads(json.dumps(layout["bucket"])),
        "training": {"note": "test heuristic, not trained", "final_resolution_mm": 50.0},
        "evaluation": evaluation if evaluation is not None else {"success_rate": {}},
        "config": {},
        "code_revision": None,
        "policy_sha256": file_sha256(out / "policy.pt"),
        "probe": {"observations": probe.tolist(), "actions": acts.tolist()},
    }
    (out / "policy.json").write_text(json.dumps(meta, indent=2))
    return out


if __name__ == "__main__":
    print(write_bundle(sys.argv[1] if len(sys.argv) > 1 else "test_bundle"))
